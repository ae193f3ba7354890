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

import atexit
import logging
import os
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mn_api._version import __version__

# Where the server span of a request waits, in its ASGI scope, to be named.
SPAN_KEY = "mn_api.span"
# How long stopping waits for the collector: one that does not answer must not hold the
# process (the exporters would otherwise retry for their own timeouts, each time).
STOP_SECONDS = 3.0
# The packages tracing needs, and the extra that installs them.
# The extra as installed from a checkout; from a built wheel, the wheel's file with [otel].
EXTRA = ".[otel]"
_REQUIRED = (
    "opentelemetry.sdk",
    "opentelemetry.exporter.otlp.proto.grpc",
    "opentelemetry.instrumentation.asgi",
    "opentelemetry.instrumentation.grpc",
    "opentelemetry.instrumentation.redis",
    "opentelemetry.instrumentation.sqlite3",
    "opentelemetry.instrumentation.httpx",
)

log = logging.getLogger(__name__)

_started: Otlp | None = None


class TracingUnavailable(RuntimeError):
    """OTLP export is asked for, but the packages it needs are not installed."""


def missing_packages() -> list[str]:
    """The modules OTLP export needs that cannot be imported here."""
    from importlib.util import find_spec

    absent = []
    for name in _REQUIRED:
        try:
            found = find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            absent.append(name)
    return absent


def unavailable_reason() -> str | None:
    """One line saying what to install, when the OpenTelemetry packages are missing."""
    absent = missing_packages()
    if not absent:
        return None
    return (
        f"OTLP export is asked for (OTEL_EXPORTER_OTLP_*), but {absent[0]} is not "
        f"installed: install the otel extra, pip install '{EXTRA}' in the gateway's "
        "checkout (or pip install '<the gateway's wheel file>[otel]')"
    )


def start(*, traces: bool, metrics: bool) -> Otlp:
    """This process's exporters: one set, however many apps it builds."""
    global _started
    if _started is None:
        reason = unavailable_reason()
        if reason is not None:
            raise TracingUnavailable(reason)
        _started = Otlp(traces=traces, metrics=metrics)
        atexit.register(_started.stop)
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
        # False once the collector failed to answer within a bounded wait.
        self._answering = True
        self.tracer_provider: Any = trace.NoOpTracerProvider()
        self.meter_provider: Any = NoOpMeterProvider()
        if traces:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
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
            self.meter_provider = MeterProvider(
                resource=resource, metric_readers=[reader], shutdown_on_exit=False
            )
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

    def flush(self, within: float = STOP_SECONDS) -> bool:
        """Send what is still buffered, waiting at most `within` seconds; whether it went."""
        self._answering = self._answering and _bounded(
            self._providers("force_flush"), within, "flushing"
        )
        return self._answering

    def stop(self, within: float = STOP_SECONDS) -> bool:
        """Shut the providers down (at exit), waiting at most `within` seconds; not at all
        once a flush found the collector not answering (the shutdown would wait on it too)."""
        if not self._answering:
            return False
        self._answering = _bounded(self._providers("shutdown"), within, "stopping")
        return self._answering

    def _providers(self, method: str) -> list[Callable[[], object]]:
        return [
            getattr(provider, method)
            for provider in (self.tracer_provider, self.meter_provider)
            if hasattr(provider, method)
        ]


def _bounded(calls: list[Callable[[], object]], within: float, doing: str) -> bool:
    """Run the calls on a daemon thread and wait for them at most `within` seconds: a
    collector that hangs leaves that thread behind, never the caller (or the exit)."""
    done = threading.Event()

    def run() -> None:
        for call in calls:
            try:
                call()
            except Exception:  # an exporter's failure is its own to log
                log.debug("OTLP %s failed", doing, exc_info=True)
        done.set()

    threading.Thread(target=run, name=f"otlp-{doing}", daemon=True).start()
    if done.wait(within):
        return True
    log.warning(
        "OTLP %s gave up after %.0f s: the collector did not answer; what was buffered is dropped",
        doing,
        within,
    )
    return False


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
