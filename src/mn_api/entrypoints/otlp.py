"""OpenTelemetry traces and metrics over OTLP/gRPC, switched on by the standard `OTEL_*`
variables (read into `Settings.traces` and `Settings.otlp_metrics`).

Traces: each request gets a server span named by its route template, continuing an
incoming `traceparent`, with a child span for each core call (carrying `traceparent` to
the core), each Redis command, each SQLite statement and each webhook attempt.
Metrics: the instrumentations' HTTP server and client measurements (request durations,
active requests, body sizes). The SDK and its instrumentations read every other `OTEL_*`
variable themselves (headers, TLS, sampler, batching, export interval, resource).

Without the variables this module is never imported: nothing is loaded, and the request
path does not change.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mn_api import __version__

# Where the server span of a request waits, in its ASGI scope, to be named.
SPAN_KEY = "mn_api.span"

_started: Otlp | None = None


def start(*, traces: bool, metrics: bool) -> Otlp:
    """This process's exporters: one set, however many apps it builds."""
    global _started
    if _started is None:
        _started = Otlp(traces=traces, metrics=metrics)
    return _started


class Otlp:
    """The providers of this process and the hooks the gateway's layers call."""

    def __init__(self, *, traces: bool, metrics: bool) -> None:
        # The stable HTTP conventions (http.response.status_code, url.full, ...), unless the
        # operator chose otherwise; read by the instrumentations when they load.
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
        from opentelemetry import trace
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.sdk.resources import Resource

        resource = Resource.create(_defaults())
        self.tracer_provider: Any = trace.NoOpTracerProvider()
        self.meter_provider: Any = NoOpMeterProvider()
        if traces:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self.tracer_provider = TracerProvider(resource=resource)
            self.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(self.tracer_provider)
        if metrics:
            from opentelemetry import metrics as metrics_api
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            reader = PeriodicExportingMetricReader(OTLPMetricExporter())
            self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
            metrics_api.set_meter_provider(self.meter_provider)
        providers = {"tracer_provider": self.tracer_provider}
        if traces:
            GrpcAioInstrumentorClient().instrument(**providers)
            RedisInstrumentor().instrument(**providers)
            SQLite3Instrumentor().instrument(**providers)
        HTTPXClientInstrumentor().instrument(
            **providers,
            meter_provider=self.meter_provider,
            request_hook=_without_query,
            async_request_hook=_without_query_async,
        )

    def wrap(self, app: Any) -> Any:
        """The server span and measurements around the gateway's layers."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(
            app,
            server_request_hook=_keep_span,
            exclude_spans=["receive", "send"],
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
        )

    @staticmethod
    def on_response(scope: Any, method: str, route: str, status: int, rid: str) -> None:
        """Name the request's span once its route is known (its response is starting)."""
        span = scope.get(SPAN_KEY)
        if span is None or not span.is_recording():
            return
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
        span.set_attribute("mn_api.request_id", rid)

    def flush(self) -> None:
        """Send what is still buffered (the providers themselves shut down at exit)."""
        for provider in (self.tracer_provider, self.meter_provider):
            if hasattr(provider, "force_flush"):
                provider.force_flush()


def _defaults() -> dict[str, Any]:
    """The resource's defaults; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win."""
    given = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    defaults: dict[str, Any] = {}
    if "service.version=" not in given:
        defaults["service.version"] = __version__
    if not (os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in given):
        defaults["service.name"] = "mn-api"
    return defaults


def _keep_span(span: Any, scope: Any) -> None:
    scope[SPAN_KEY] = span


async def _without_query_async(span: Any, request: Any) -> None:
    _without_query(span, request)


def _without_query(span: Any, request: Any) -> None:
    """Webhook URLs may carry secrets in their query: a span keeps the rest of it."""
    if span is None or not span.is_recording():
        return
    parts = urlsplit(str(request.url))
    span.set_attribute("url.full", urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
