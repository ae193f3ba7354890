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
