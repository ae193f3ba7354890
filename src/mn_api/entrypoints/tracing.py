"""OpenTelemetry traces over OTLP/gRPC, switched on by the standard `OTEL_*` variables.

With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set (see
`Settings.tracing`), each
request gets a server span named by its route template, continuing an incoming
`traceparent`, with a child span for each core call (carrying `traceparent` to the core),
each Redis command, each SQLite statement and each webhook attempt. The SDK and its
instrumentations read every other `OTEL_*` variable themselves (headers, TLS, sampler,
batching, resource). Without the variables this module is never imported: nothing is
loaded, and the request path does not change.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mn_api import __version__

# Where the server span of a request waits, in its ASGI scope, to be named.
SPAN_KEY = "mn_api.span"


_started: Tracing | None = None


def start() -> Tracing:
    """This process's tracing: one tracer provider, however many apps it builds."""
    global _started
    if _started is None:
        _started = Tracing()
    return _started


class Tracing:
    """The tracer provider of this process and the hooks the gateway's layers call."""

    def __init__(self) -> None:
        # The stable HTTP conventions (http.response.status_code, url.full, ...), unless the
        # operator chose otherwise; read by the instrumentations when they load.
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over these defaults.
        given = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
        defaults: dict[str, Any] = {}
        if "service.version=" not in given:
            defaults["service.version"] = __version__
        if not (os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in given):
            defaults["service.name"] = "mn-api"
        resource = Resource.create(defaults)
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(self.provider)
        GrpcAioInstrumentorClient().instrument(tracer_provider=self.provider)
        RedisInstrumentor().instrument(tracer_provider=self.provider)
        SQLite3Instrumentor().instrument(tracer_provider=self.provider)
        HTTPXClientInstrumentor().instrument(
            tracer_provider=self.provider,
            request_hook=_without_query,
            async_request_hook=_without_query_async,
        )

    def wrap(self, app: Any) -> Any:
        """The server span around the gateway's layers; it continues `traceparent`."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(
            app,
            server_request_hook=_keep_span,
            exclude_spans=["receive", "send"],
            tracer_provider=self.provider,
        )

    @staticmethod
    def on_response(scope: Any, method: str, route: str, status: int, rid: str) -> None:
        """Name the request's span once its route is known (its response is starting)."""
        span = scope.get(SPAN_KEY)
        if span is None:
            return
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
        span.set_attribute("mn_api.request_id", rid)

    def flush(self) -> None:
        """Send what is still buffered (the provider itself shuts down at exit)."""
        self.provider.force_flush()


def _keep_span(span: Any, scope: Any) -> None:
    scope[SPAN_KEY] = span


async def _without_query_async(span: Any, request: Any) -> None:
    _without_query(span, request)


def _without_query(span: Any, request: Any) -> None:
    """Webhook URLs may carry secrets in their query: a span keeps the rest of it."""
    if span is None or not span.is_recording():
        return
    url = str(request.url)
    parts = urlsplit(url)
    span.set_attribute("url.full", urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
