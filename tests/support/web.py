"""In-process HTTP and gRPC helpers: the app's client, receivers, resolvers, cores."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager, contextmanager
from typing import Any

# The benchmark's process helpers serve the tests as they are.


@asynccontextmanager
async def asgi_client(
    settings,
    runtime,
    *,
    raise_app_exceptions: bool = True,
    lifespan: bool = False,
    peer: tuple[str, int] = ("127.0.0.1", 123),
    **overrides,
):
    """An httpx client for an app built by create_app() around `settings` and `runtime`
    (and any other container providers named in `overrides`), connecting from `peer`; with
    `lifespan`, the app's startup and shutdown run around the client, as a server would."""
    from contextlib import AsyncExitStack

    import httpx
    from dependency_injector import providers

    from mn_api.container import build_container
    from mn_api.entrypoints.http import create_app

    container = build_container(settings)
    container.core.override(providers.Object(runtime))
    for name, value in overrides.items():
        getattr(container, name).override(providers.Object(value))
    app = create_app(container)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions, client=peer)
    async with AsyncExitStack() as stack:
        if lifespan:
            await stack.enter_async_context(app.router.lifespan_context(app))
        client = httpx.AsyncClient(transport=transport, base_url="http://gateway.test")
        yield await stack.enter_async_context(client)


@contextmanager
def local_http_server(do_post):
    """An HTTP server on 127.0.0.1 whose POSTs run `do_post(handler)` in its own thread;
    yields its base URL and stops with the block."""
    import threading
    from contextlib import suppress
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            with suppress(OSError):  # the client may hang up first
                do_post(self)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def map_resolver(table: dict[str, list[list[str]]]):
    """A HostResolver answering from `table`: each host's answers in turn, the last sticks."""
    from mn_api.application.ports import HostResolver

    class MapResolver(HostResolver):
        async def resolve(self, host: str, port: int) -> list[str]:
            answers = table.get(host, [[]])
            return answers.pop(0) if len(answers) > 1 else answers[0]

    return MapResolver()


def webhook_secret(seed: str) -> str:
    """A Standard Webhooks secret (`whsec_<base64>`) made from a readable seed."""
    import base64

    return "whsec_" + base64.b64encode(seed.encode().ljust(24, b"_")).decode()


WEBHOOK_SECRET = webhook_secret("receiver-shared-secret-0123456789")


class WebhookReceiver:
    """A webhook receiver on 127.0.0.1 that verifies each delivery with the published
    `standardwebhooks` library, knowing only `secret`, and answers `fail_first` failures
    (500) for each delivery id first. A delivery counts as accepted before its answer
    leaves; `accept_delay` holds that answer back, as a slow receiver or network would."""

    def __init__(self, secret: str, *, fail_first: int = 0, status: int = 204) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.status = status
        self.accept_delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []
        self._server: Any = None

    def verify(self, headers: Any, body: bytes) -> bool:
        from standardwebhooks import Webhook, WebhookVerificationError

        try:
            Webhook(self.secret).verify(body, dict(headers.items()))
        except WebhookVerificationError:
            return False
        return True

    def start(self) -> WebhookReceiver:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                record = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": json.loads(body),
                    "verified": receiver.verify(self.headers, body),
                }
                ident = self.headers.get("webhook-id")
                tries = sum(1 for r in receiver.requests if r["headers"].get("webhook-id") == ident)
                receiver.requests.append(record)
                status = 500 if tries < receiver.fail_first else receiver.status
                if status < 300 and record["verified"]:
                    receiver.accepted.append(record)
                    time.sleep(receiver.accept_delay)
                elif not record["verified"]:
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@asynccontextmanager
async def scripted_core(servicer, *services):
    """A gRPC server on a free loopback port serving `servicer` for each of `services` (the
    generated `add_..._to_server` functions), and a GrpcRuntime connected to it."""
    import grpc

    from mn_api.adapters.grpc.runtime import GrpcRuntime

    server = grpc.aio.server()
    for add_to_server in services:
        add_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    runtime = GrpcRuntime(f"127.0.0.1:{port}", timeout_seconds=5)
    try:
        yield runtime
    finally:
        await runtime.close()
        await server.stop(None)
