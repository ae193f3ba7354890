"""Tokens, read-only tokens, the body limit and CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from mn_api.adapters.memory.runtime import InMemoryRuntime
from tests.support import asgi_client, pipeline_manifest

API = "/api/v1"


@pytest.fixture
async def secured(
    settings_factory: Callable, memory_runtime: InMemoryRuntime
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_factory(
        api_token="admin-one,admin-two",
        read_tokens_raw="reader",
        request_size_limit_bytes=2048,
        cors_allow_origins_raw="https://ui.example",
    )
    async with asgi_client(settings, memory_runtime) as client:
        yield client


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_protected_routes_need_a_token(secured: httpx.AsyncClient) -> None:
    for headers in ({}, _auth("wrong"), {"Authorization": "Basic YWRtaW4tb25lOg=="}):
        response = await secured.get(f"{API}/jobs", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_every_rotated_admin_token_works(secured: httpx.AsyncClient) -> None:
    for token in ("admin-one", "admin-two"):
        response = await secured.post(
            f"{API}/jobs", headers=_auth(token), json={"manifest": pipeline_manifest()}
        )
        assert response.status_code == 201


async def test_read_tokens_may_only_read(secured: httpx.AsyncClient) -> None:
    assert (await secured.get(f"{API}/jobs", headers=_auth("reader"))).status_code == 200
    for method, path in [
        ("POST", "/jobs"),
        ("DELETE", "/jobs"),
        ("POST", "/jobs/x/cancel"),
        ("POST", "/bundles/upload"),
    ]:
        response = await secured.request(method, f"{API}{path}", headers=_auth("reader"))
        assert response.status_code == 403 and response.json()["error"] == "forbidden"


async def test_public_routes_stay_public(secured: httpx.AsyncClient) -> None:
    assert (await secured.get(f"{API}/health")).json()["auth"] == "enabled"
    assert (await secured.get(f"{API}/ready")).status_code == 200
    assert (await secured.get("/openapi.json")).status_code == 200
    assert (await secured.get("/docs")).status_code == 200


async def test_refused_requests_never_reach_the_runtime(
    secured: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    await secured.post(f"{API}/jobs", json={"manifest": pipeline_manifest()})
    await secured.post(
        f"{API}/jobs", headers=_auth("reader"), json={"manifest": pipeline_manifest()}
    )
    listed = await memory_runtime.list_jobs(0, True)
    assert listed.value["data"] == []


async def test_a_declared_body_over_the_limit_is_413(secured: httpx.AsyncClient) -> None:
    response = await secured.post(f"{API}/jobs", headers=_auth("admin-one"), content=b"x" * 4096)
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "request_too_large" and body["limit_bytes"] == 2048


async def test_a_chunked_body_over_the_limit_is_413(
    secured: httpx.AsyncClient, memory_runtime: InMemoryRuntime
) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(10_000):
            sent += 512
            yield b" " * 512

    response = await secured.post(
        f"{API}/jobs",
        content=endless(),
        headers={**_auth("admin-one"), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["limit_bytes"] == 2048
    assert sent < 100_000  # reading stopped near the limit, not at the end of the body
    assert (await memory_runtime.list_jobs(0, True)).value["data"] == []


async def test_a_chunked_upload_over_the_limit_is_413(secured: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="bundle"; filename="a.zip"\r\n\r\n'
        for _ in range(100):
            yield b"\x00" * 1024

    response = await secured.post(
        f"{API}/bundles/upload",
        content=chunks(),
        headers={**_auth("admin-one"), "content-type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize("value", ["abc", "-5", "1e3", "99999999999999999999999"])
async def test_a_malformed_content_length_is_400(secured: httpx.AsyncClient, value: str) -> None:
    # Sent as raw ASGI because httpx refuses to send such a header itself.
    app = secured._transport.app  # type: ignore[attr-defined]
    messages: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": f"{API}/jobs",
        "raw_path": b"",
        "query_string": b"",
        "headers": [(b"content-length", value.encode())],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("t", 80),
        "client": ("c", 1),
        "root_path": "",
        "asgi": {"version": "3.0"},
    }
    await app(scope, receive, send)
    assert messages[0]["status"] == 400
    assert b"invalid_content_length" in messages[1]["body"]


async def test_cors_answers_only_listed_origins(secured: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = await secured.options(
        f"{API}/jobs", headers={"Origin": "https://ui.example", **preflight}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
    refused = await secured.options(
        f"{API}/jobs", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in refused.headers


async def test_the_gateways_own_refusals_carry_cors_headers(secured: httpx.AsyncClient) -> None:
    """A browser client must be able to read a 401 or a 413 to act on it."""
    origin = {"Origin": "https://ui.example"}
    unauthorized = await secured.get(f"{API}/jobs", headers=origin)
    too_large = await secured.post(
        f"{API}/jobs",
        content=b"{" + b" " * 4096 + b"}",
        headers={**origin, **_auth("admin-one"), "Content-Type": "application/json"},
    )
    for response, status in ((unauthorized, 401), (too_large, 413)):
        assert response.status_code == status
        assert response.headers["access-control-allow-origin"] == "https://ui.example"
        assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
    stranger = await secured.get(f"{API}/jobs", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers


PROXY = ("10.9.8.7", 40000)


async def _guesses(client: httpx.AsyncClient, forwarded_for: str | None, count: int) -> list[int]:
    """Wrong tokens from one client, as the proxy forwards them: the answers' codes."""
    headers = {"Authorization": "Bearer wrong"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return [(await client.get(f"{API}/jobs", headers=headers)).status_code for _ in range(count)]


@pytest.mark.parametrize("trusted", ["10.9.8.7", "10.0.0.0/8", "10.9.8.7,192.0.2.1", "*"])
async def test_clients_behind_a_trusted_proxy_are_counted_apart(
    settings_factory: Callable, memory_runtime: InMemoryRuntime, trusted: str
) -> None:
    settings = settings_factory(
        api_token="admin", rate_limit="3/minute", trusted_proxies_raw=trusted
    )
    async with asgi_client(settings, memory_runtime, peer=PROXY) as client:
        assert await _guesses(client, "203.0.113.5", 4) == [401, 401, 401, 429]
        # Another client behind the same proxy has its own count.
        assert await _guesses(client, "198.51.100.7", 1) == [401]
        # Addresses the client wrote in front of the one the proxy added change nothing.
        if trusted != "*":
            assert await _guesses(client, "192.0.2.200, 203.0.113.5", 1) == [429]
        # Requests that name no client are the proxy's own, counted apart from the clients'.
        assert await _guesses(client, None, 4) == [401, 401, 401, 429]


@pytest.mark.parametrize("trusted", [None, "192.0.2.1"])
async def test_forwarded_addresses_from_an_untrusted_peer_are_ignored(
    settings_factory: Callable, memory_runtime: InMemoryRuntime, trusted: str | None
) -> None:
    settings = settings_factory(
        api_token="admin", rate_limit="3/minute", trusted_proxies_raw=trusted
    )
    async with asgi_client(settings, memory_runtime, peer=PROXY) as client:
        codes = [(await _guesses(client, f"203.0.113.{n}", 1))[0] for n in range(4)]
        # Each guess claimed another client: all of them were the peer's.
        assert codes == [401, 401, 401, 429]


@pytest.mark.parametrize("entry", ["proxy.internal", "10.0.0.0/33", "10.0.0.1/8/2", "::g"])
def test_a_trusted_proxy_must_be_an_address_or_a_network(
    settings_factory: Callable, entry: str
) -> None:
    with pytest.raises(ValueError, match=r"MN_API_TRUSTED_PROXIES: .* is neither an IP address"):
        settings_factory(trusted_proxies_raw=f"10.1.1.1,{entry}")


async def test_a_read_token_sees_no_receiver_path_nor_query(
    settings_factory: Callable, memory_runtime: InMemoryRuntime
) -> None:
    from tests.support import map_resolver, webhook_secret

    settings = settings_factory(
        api_token="admin",
        read_tokens_raw="reader",
        webhook_allowed_hosts_raw="hooks.example.com",
        webhook_secret=webhook_secret("redaction"),
    )
    secret_url = "https://hooks.example.com/services/T01/B02/s3cr3tpath?token=s3cr3tquery"
    resolver = map_resolver({"hooks.example.com": [["93.184.215.14"]]})
    async with asgi_client(settings, memory_runtime, resolver=resolver) as client:
        submitted = await client.post(
            f"{API}/jobs",
            json={"manifest": pipeline_manifest(), "webhook": {"url": secret_url}},
            headers=_auth("admin"),
        )
        assert submitted.status_code == 201, submitted.text
        listing = f"{API}/jobs/{submitted.json()['job_id']}/webhooks"
        as_reader = await client.get(listing, headers=_auth("reader"))
        as_admin = await client.get(listing, headers=_auth("admin"))
    assert as_reader.status_code == as_admin.status_code == 200
    (seen,) = as_reader.json()["subscriptions"]
    assert seen["url"] == "https://hooks.example.com/redacted?redacted"
    assert "s3cr3t" not in as_reader.text
    (full,) = as_admin.json()["subscriptions"]
    assert full["url"] == "https://hooks.example.com/services/T01/B02/s3cr3tpath?redacted"
    assert "s3cr3tquery" not in as_admin.text
