"""create_app(): builds the FastAPI application around a container; nothing runs at import."""

from __future__ import annotations

import gc
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from mn_api._version import __version__
from mn_api.config import Settings, startup_summary
from mn_api.container import Container, Running, build_container
from mn_api.entrypoints.heap import HeapTrimmer, fix_glibc_thresholds, glibc_trim
from mn_api.entrypoints.http import problems
from mn_api.entrypoints.http.auth import Authenticator, Gatekeeper
from mn_api.entrypoints.http.deps import HttpServices
from mn_api.entrypoints.http.hot_routes import HotRoutes
from mn_api.entrypoints.http.middleware import GatewayMiddleware
from mn_api.entrypoints.http.openapi import install_openapi
from mn_api.entrypoints.http.responses import JsonResponse
from mn_api.entrypoints.http.routers import (
    backups,
    bundles,
    definitions,
    deployments,
    events,
    jobs,
    launches,
    nodes,
    operations,
    progress,
    registry,
    resources,
    schedules,
    system,
    webhooks,
)
from mn_api.entrypoints.http.routers import runtime as operator_routes
from mn_api.entrypoints.http.webui import install_webui, is_ui_path
from mn_api.entrypoints.logging_setup import write_synchronously

_ASSETS = "/docs-assets"
GC_THRESHOLD = 50_000
# The docs pages may load nothing from anywhere but the gateway itself (ReDoc, for one,
# would fetch its logo from a CDN).
_DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'"
)

log = logging.getLogger("mn_api")


# FastAPI releases that trace by themselves once a tracer provider is set would add spans
# of their own beside the gateway's, and log exceptions with their stacks: off.
_NO_FRAMEWORK_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


class GatewayApp(FastAPI):
    """FastAPI, entered through the gateway's own front layers (`front`) for HTTP."""

    front: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.front is not None:
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def framework(self, scope: Any, receive: Any, send: Any) -> None:
        """The framework itself: its middleware, routing and error handlers."""
        await super().__call__(scope, receive, send)


def create_app(container: Container | None = None, *, fast_path: bool = True) -> FastAPI:
    """The gateway's ASGI app; the container decides which runtime and stores it uses.
    Without `fast_path` every request goes through the framework's routes (the parity
    test compares the two)."""
    container = container or build_container()
    settings = container.settings()
    # Started before anything opens a channel or a connection, so that each is traced.
    otlp = _otlp(settings) if settings.traces or settings.otlp_metrics else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        log.info("%s", startup_summary(settings))
        running = Running(container)
        await running.start()
        # Everything built so far lives as long as the process: keeping it out of the
        # collector's sight makes full collections short, and with them the worst latencies.
        gc.collect()
        gc.freeze()
        # Requests free what they allocate by reference counting; the cycle collector only
        # needs to run now and then, not every 700 allocations.
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        fix_glibc_thresholds()
        trimmer = HeapTrimmer(trim=glibc_trim())
        trimmer.start()
        try:
            yield
        finally:
            await trimmer.stop()
            await running.stop()
            container.telemetry().process_ended()
            if otlp is not None:
                otlp.flush()
            # The process may be ended by a signal right after the server's last lines.
            write_synchronously()

    app = GatewayApp(
        title="MirrorNeuron API",
        version=__version__,
        summary="HTTP gateway for the MirrorNeuron multi-agent workflow runtime",
        lifespan=lifespan,
        default_response_class=JsonResponse,
        # Operation ids are the endpoints' names (submit_job, get_job, ...), which reads
        # well in generated clients.
        generate_unique_id_function=lambda route: route.name,
        docs_url=None,
        redoc_url=None,
        **_NO_FRAMEWORK_TELEMETRY,
    )
    app.state.container = container
    gatekeeper = Gatekeeper(
        Authenticator(settings.api_tokens, settings.read_tokens),
        container.rate_limiter() if settings.rate_limit else None,
    )
    app.state.gatekeeper = gatekeeper
    app.state.services = HttpServices.of(container)
    problems.install(app)

    routers = (
        system.public,
        system.probes,
        system.router,
        system.exposition,
        operator_routes.router,
        jobs.router,
        jobs.colon_router,
        events.router,
        progress.router,
        bundles.router,
        launches.router,
        webhooks.router,
        resources.router,
        registry.router,
        definitions.router,
        backups.router,
        schedules.router,
        deployments.router,
        operations.router,
        nodes.router,
    )
    for router in routers:
        app.include_router(router)
    install_openapi(app, auth_enabled=settings.auth_enabled, rate_limited=bool(settings.rate_limit))
    _install_docs(app)
    if settings.webui_dir is not None:
        install_webui(app, settings.webui_dir, auth_enabled=settings.auth_enabled)

    # The gateway's own layers wrap the whole framework (its error and routing layers
    # included), so the hot routes can be answered in front of it.
    front: Any = app.framework
    if fast_path:
        front = HotRoutes(
            app.framework,
            app.state.services.services,
            {
                route.name: route
                for router in routers
                for route in router.routes
                if isinstance(route, APIRoute)
            },
        )
    app.front = GatewayMiddleware(
        front,
        limit_bytes=settings.request_size_limit_bytes,
        telemetry=container.telemetry(),
        gatekeeper=gatekeeper,
        public_paths=frozenset(
            {
                *(route.path for route in system.public.routes),  # type: ignore[attr-defined]
                *(route.path for route in system.probes.routes),  # type: ignore[attr-defined]
                "/docs",
                "/redoc",
                app.openapi_url or "/openapi.json",
            }
        ),
        public_prefixes=(f"{_ASSETS}/",),
        public_requests=is_ui_path if settings.webui_dir is not None else None,
        on_response=otlp.on_response if otlp is not None and settings.traces else None,
    )
    # CORS outermost: the gateway's own answers (401, 413, 429, 503) carry its headers too,
    # so a browser client can read them and back off.
    if settings.cors_allow_origins:
        app.front = CORSMiddleware(
            app.front,
            allow_origins=list(settings.cors_allow_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "Last-Event-ID",
                "X-Request-ID",
            ],
            expose_headers=["Location", "X-Request-ID", "Retry-After", "Idempotent-Replayed"],
        )
    if otlp is not None:
        app.front = otlp.wrap(app.front)
    # Outermost of all: every layer (traces, CORS, rate limits, failed tokens, logs) sees
    # the client a trusted proxy forwarded, never the proxy's own address.
    if settings.trusted_proxies:
        app.front = ProxyHeadersMiddleware(app.front, list(settings.trusted_proxies))
    return app


def _otlp(settings: Settings) -> Any:
    # Imported only when the OTEL_* variables ask for it: otherwise no exporter,
    # instrumentation or provider is loaded.
    from mn_api.entrypoints import otlp

    return otlp.start(traces=settings.traces, metrics=settings.otlp_metrics)


def _install_docs(app: FastAPI) -> None:
    """Swagger UI and ReDoc served from packaged assets, so the docs work offline."""
    assets = files("fastapi_offline") / "static"
    app.mount(_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - docs",
            swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_ASSETS}/favicon.png",
        )
        page.headers["Content-Security-Policy"] = _DOCS_POLICY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - reference",
            redoc_js_url=f"{_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = _DOCS_POLICY
        return page
