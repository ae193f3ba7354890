"""A real mn-api process held down the way an attacker (or a bad network) would try:
oversized and endless headers, silent and trickling connections, more connections than it
can hold, bodies sent before a token. Each gets a prompt, bounded problem answer, and the
gateway keeps serving everyone else."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import GatewayProcess, check_problem, pipeline_manifest

TOKEN = "hostile-traffic-admin-token"
LIMITS = {
    "MN_API_TOKEN": TOKEN,
    "MN_API_HEADER_TIMEOUT_SECONDS": "1",
    "MN_API_BODY_IDLE_TIMEOUT_SECONDS": "1",
    "MN_API_KEEP_ALIVE_SECONDS": "1",
    "MN_API_MAX_CONNECTIONS": "40",
    "MN_API_MAX_HEADER_BYTES": "8192",
    "MN_API_MAX_HEADERS": "50",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("hostile"), **LIMITS).start()
    yield process
    process.stop()


def exchange(gateway: GatewayProcess, data: bytes, *, wait: float = 5.0) -> tuple[float, bytes]:
    """Send `data` on a fresh connection; the seconds until the server closed it, and
    everything it sent."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=wait) as sock:
        with contextlib.suppress(OSError):  # the server may close before all was sent
            sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return time.monotonic() - started, answer


def answer_of(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def problem_of(answer: bytes) -> tuple[int, dict]:
    status, body = answer_of(answer)
    return status, check_problem(body)


def healthy(gateway: GatewayProcess) -> bool:
    """Whether the gateway still answers others (within the client's own 5 s)."""
    return httpx.get(f"{gateway.base}/api/v1/health", timeout=5).status_code == 200


@pytest.mark.parametrize(
    "head",
    [
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"a" * 48_000_000 + b"\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\n" + b"X-N: 1\r\n" * 1_000_000 + b"\r\n",
        b"GET /api/v1/health?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["100k-header", "48M-header", "million-lines", "long-url"],
)
def test_oversized_headers_are_431_at_once(gateway: GatewayProcess, head: bytes) -> None:
    _seconds, answer = exchange(gateway, head)
    status, problem = problem_of(answer)
    assert status == 431 and problem["error"] == "headers_too_large"
    assert problem["request_id"]
    assert healthy(gateway)


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"", "headers"),  # connects and says nothing
        (b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n", "headers"),  # never ends its headers
        (
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{",
            "body",
        ),
    ],
    ids=["silent", "unfinished-headers", "unfinished-body"],
)
def test_connections_that_stall_are_closed_with_408(
    gateway: GatewayProcess, data: bytes, what: str
) -> None:
    seconds, answer = exchange(gateway, data)
    status, problem = problem_of(answer)
    assert status == 408 and problem["error"] == "request_timeout"
    assert what in problem["detail"]
    assert seconds > 0.8  # closed by the limit (1 s here), not at once


def test_a_trickle_of_header_bytes_does_not_keep_a_connection(gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        answer = b""
        with contextlib.suppress(OSError):
            for byte in b"GET /api/v1/health HTTP/1.1\r\nHost: xxxxxxxxxxxxxxxxxxxxxxxxxx\r\n":
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        with contextlib.suppress(OSError):
            answer = sock.recv(65536)
    assert b" 408 " in answer.split(b"\r\n")[0]


def test_an_idle_keep_alive_connection_is_closed(gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b"}"):
            first += sock.recv(65536)
        assert b" 200 " in first
        assert sock.recv(65536) == b""  # closed by the server (the socket waits 5 s at most)


def test_connections_beyond_the_cap_are_refused_promptly(gateway: GatewayProcess) -> None:
    held = [socket.create_connection(("127.0.0.1", gateway.port)) for _ in range(40)]
    try:
        time.sleep(0.2)
        _seconds, answer = exchange(
            gateway, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        status, problem = problem_of(answer)
        assert status == 503 and problem["error"] == "too_many_connections"
        assert b"retry-after" in answer.lower()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert healthy(gateway)


def test_a_stream_outlives_every_idle_limit(gateway: GatewayProcess) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    manifest = pipeline_manifest(worker={"simulate": {"delay_ms": 2500}})
    job = httpx.post(
        f"{gateway.base}/api/v1/jobs", json={"manifest": manifest}, headers=headers, timeout=5
    ).json()["job_id"]
    started = time.monotonic()
    with httpx.stream(
        "GET", f"{gateway.base}/api/v1/jobs/{job}/events/stream", headers=headers, timeout=30
    ) as stream:
        text = "".join(stream.iter_text())
    assert time.monotonic() - started > 2  # longer than the header, body and idle limits
    assert "event: end" in text


def test_a_body_arriving_with_its_headers_is_not_counted_as_headers(
    gateway: GatewayProcess,
) -> None:
    # One write: the server's first read holds the headers and far more than the header
    # limit of body bytes. Only the headers count against that limit.
    manifest = pipeline_manifest(router={"padding": "p" * 200_000})
    body = json.dumps({"manifest": manifest}).encode()
    _seconds, answer = exchange(
        gateway,
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + f"Authorization: Bearer {TOKEN}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body,
    )
    status, answered = answer_of(answer)
    assert status == 201, answered


def test_no_body_is_read_before_the_token_is_checked(gateway: GatewayProcess) -> None:
    # A big body is announced but never sent: the refusal comes from the headers alone.
    for auth in (b"", b"Authorization: Bearer wrong\r\n"):
        _seconds, answer = exchange(
            gateway,
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n"
            + auth
            + b"Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n",
        )
        # Had the body been awaited, the body limit would have answered 408 instead.
        status, problem = problem_of(answer)
        assert status == 401 and problem["error"] == "unauthorized"


def test_head_is_answered_on_get_routes(gateway: GatewayProcess) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    job = httpx.post(
        f"{gateway.base}/api/v1/jobs",
        json={"manifest": {**pipeline_manifest(), "daemon": True}},
        headers=headers,
        timeout=5,
    ).json()["job_id"]
    for path in (
        "/api/v1/health",
        "/api/v1/jobs",
        f"/api/v1/jobs/{job}",
        f"/api/v1/jobs/{job}/graph",
        f"/api/v1/jobs/{job}/events",
        f"/api/v1/jobs/{job}/events/stream",  # a stream that would never end on GET
        "/openapi.json",
    ):
        get = httpx.get(
            f"{gateway.base}{path}", headers=headers, timeout=5, params={"follow": "false"}
        )
        head = httpx.head(f"{gateway.base}{path}", headers=headers, timeout=5)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
    missing = httpx.head(f"{gateway.base}/api/v1/jobs/nope-1", headers=headers, timeout=5)
    assert missing.status_code == 404
    httpx.post(f"{gateway.base}/api/v1/jobs/{job}/cancel", headers=headers, timeout=5)


def test_the_gateway_answers_while_attacked(gateway: GatewayProcess, tmp_path: Path) -> None:
    stop = threading.Event()

    def attack() -> None:
        while not stop.is_set():
            exchange(gateway, b"GET / HTTP/1.1\r\nX: " + b"a" * 1_000_000, wait=2)

    attackers = [threading.Thread(target=attack) for _ in range(4)]
    for thread in attackers:
        thread.start()
    try:
        time.sleep(0.3)
        answered = [healthy(gateway) for _ in range(20)]
    finally:
        stop.set()
        for thread in attackers:
            thread.join()
    assert all(answered)


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/jobs/j-1/events/stream", "/nowhere"])
@pytest.mark.parametrize("protocol", ["websocket", "h2c"])
def test_a_protocol_upgrade_is_refused_at_once(
    gateway: GatewayProcess, path: str, protocol: str
) -> None:
    """No route speaks WebSocket: an upgrade gets a problem at once, never a hang."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    _seconds, answer = exchange(gateway, request)
    status, problem = problem_of(answer)
    assert status == 404 and problem["error"] == "upgrade_not_supported"
    assert "Server-Sent Events" in problem["detail"]
    assert healthy(gateway)


@pytest.mark.parametrize("value", [b"abc", b"12x", b"1, 2", b"99999999999999999999999"])
def test_a_malformed_content_length_gets_its_documented_code(
    gateway: GatewayProcess, value: bytes
) -> None:
    request = b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\n{}"
    _seconds, answer = exchange(gateway, request)
    status, problem = problem_of(answer)
    assert (status, problem["error"]) == (400, "invalid_content_length")
    assert healthy(gateway)


def test_two_authorization_headers_are_refused(gateway: GatewayProcess) -> None:
    request = (
        b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer one\r\nAuthorization: Bearer two\r\n\r\n"
    )
    _seconds, answer = exchange(gateway, request)
    status, problem = problem_of(answer)
    assert (status, problem["error"]) == (400, "duplicate_authorization")


def test_a_body_that_never_finishes_arriving_submits_nothing(gateway: GatewayProcess) -> None:
    """The whole manifest arrives, but less than Content-Length promised: the request is
    incomplete, so no job may start (a client that retries would run it twice)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    listing = f"{gateway.base}/api/v1/jobs"
    before = len(httpx.get(listing, headers=headers, timeout=5).json()["data"])
    body = json.dumps({"manifest": pipeline_manifest()}).encode()
    request = (
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Length: %d\r\n\r\n" % (len(body) + 100)
    ) + body
    _seconds, answer = exchange(gateway, request)
    assert b" 201 " not in answer.split(b"\r\n", 1)[0]
    time.sleep(0.5)
    assert len(httpx.get(listing, headers=headers, timeout=5).json()["data"]) == before
