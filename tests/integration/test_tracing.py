"""Traces and metrics over OTLP: a real gateway process exports to an OTLP/gRPC receiver
in this test.

The receiver is built on the `opentelemetry-proto` service definitions; the core is a
fake core in this process too, so the test sees the `traceparent` each core call carries.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.entrypoints.fake_core import FakeCore
from tests.support import (
    CORE_ADMIN_TOKEN,
    CORE_TOKEN,
    GATEWAY_CORE_ENV,
    GatewayProcess,
    WebhookReceiver,
    eventually,
    pipeline_manifest,
    webhook_secret,
)

pytestmark = pytest.mark.slow
API = "/api/v1"
SECRET = webhook_secret("tracing")


class MetricsReceiver(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Keeps the data points of every metric exported to it, by metric name."""

    def __init__(self) -> None:
        self.points: dict[str, list[dict[str, Any]]] = {}

    async def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    data = getattr(metric, metric.WhichOneof("data"))
                    self.points.setdefault(metric.name, []).extend(
                        _attributes(point.attributes) for point in data.data_points
                    )
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span exported to it, with its service's name, and every metric."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Span]] = []
        self.metrics = MetricsReceiver()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = _attributes(resource_spans.resource.attributes).get("service.name", "")
            for scope_spans in resource_spans.scope_spans:
                self.spans += [(service, span) for span in scope_spans.spans]
        return trace_service_pb2.ExportTraceServiceResponse()

    async def start(self) -> OtlpReceiver:
        self._server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self.metrics, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)

    def of_trace(self, trace_id: bytes) -> list[Span]:
        return [span for _, span in self.spans if span.trace_id == trace_id]


class SilentCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """A collector that takes every export and never answers it."""

    def __init__(self) -> None:
        self.exports = 0

    async def Export(self, request: Any, context: Any) -> Any:
        self.exports += 1
        await asyncio.Event().wait()


def _attributes(attributes: Any) -> dict[str, Any]:
    values = {}
    for item in attributes:
        kind = item.value.WhichOneof("value")
        values[item.key] = getattr(item.value, kind) if kind else None
    return values


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    otlp = await OtlpReceiver().start()
    yield otlp
    await otlp.stop()


@pytest.fixture
async def core() -> AsyncIterator[FakeCore]:
    fake = FakeCore(
        InMemoryRuntime(step_seconds=0.002), token=CORE_TOKEN, admin_token=CORE_ADMIN_TOKEN
    )
    await fake.start("127.0.0.1", 0)
    yield fake
    await fake.stop(grace=None)


@pytest.fixture
def hooks() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(SECRET).start()
    yield receiver
    receiver.stop()


def _traceparent() -> tuple[str, bytes, bytes]:
    trace_id, parent = secrets.token_bytes(16), secrets.token_bytes(8)
    return f"00-{trace_id.hex()}-{parent.hex()}-01", trace_id, parent


async def _spans(receiver: OtlpReceiver, trace_id: bytes, *names: str) -> dict[str, Span]:
    """The trace's spans by name, once those named have arrived (batched every 50 ms)."""

    def arrived() -> dict[str, Span] | None:
        spans = {span.name: span for span in receiver.of_trace(trace_id)}
        return spans if set(names) <= set(spans) else None

    try:
        return await eventually(arrived, within=20)
    except AssertionError:
        raise AssertionError(sorted(s.name for s in receiver.of_trace(trace_id))) from None


def _children(spans: dict[str, Span], parent: Span) -> dict[str, Span]:
    return {name: s for name, s in spans.items() if s.parent_span_id == parent.span_id}


@pytest.fixture(params=["local", "redis"])
def shared_state(request: pytest.FixtureRequest) -> dict[str, str]:
    """Where the gateway keeps its shared state: SQLite beside it, or Redis."""
    if request.param == "local":
        return {}
    return {"MN_REDIS_URL": request.getfixturevalue("redis_url")}


async def test_requests_core_calls_and_stores_are_traced(
    tmp_path: Path,
    receiver: OtlpReceiver,
    core: FakeCore,
    hooks: WebhookReceiver,
    shared_state: dict[str, str],
) -> None:
    env = {
        "MN_RUNTIME": "grpc",
        "MN_GRPC_TARGET": f"127.0.0.1:{core.port}",
        **GATEWAY_CORE_ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
        "MN_API_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "MN_API_WEBHOOK_INSECURE_HOSTS": "127.0.0.1",
        "MN_API_WEBHOOK_SECRET": SECRET,
        "MN_API_WEBHOOK_POLL_SECONDS": "0.1",
    }
    gateway = GatewayProcess(tmp_path, "grpc", **env, **shared_state)
    # The core and the receiver answer from this loop: the gateway starts from a thread.
    await asyncio.to_thread(gateway.start)
    try:
        async with httpx.AsyncClient(base_url=gateway.base + API, timeout=30) as client:
            await _submission_is_one_trace(client, receiver, core, hooks, shared_state)
            finished = await _a_stream_is_one_span_around_its_core_stream(client, receiver)
            await _a_failing_core_call_is_an_error_span(client, receiver, finished)
            await _requests_are_measured(receiver)
    finally:
        await asyncio.to_thread(gateway.stop)
    assert {service for service, _ in receiver.spans} == {"mn-api"}


async def _requests_are_measured(receiver: OtlpReceiver) -> None:
    """The HTTP server's and the webhook client's request durations arrive as OTLP
    metrics, by method and status."""

    def answered() -> set[tuple[str, int]]:
        points = receiver.metrics.points.get("http.server.request.duration", [])
        return {(p["http.request.method"], p["http.response.status_code"]) for p in points}

    await eventually(lambda: {("POST", 201), ("POST", 409), ("GET", 200)} <= answered())
    attempts = receiver.metrics.points.get("http.client.request.duration", [])
    assert {"POST"} == {p["http.request.method"] for p in attempts}


async def _submission_is_one_trace(
    client: httpx.AsyncClient,
    receiver: OtlpReceiver,
    core: FakeCore,
    hooks: WebhookReceiver,
    shared_state: dict[str, str],
) -> None:
    traceparent, trace_id, parent = _traceparent()
    answer = await client.post(
        "/jobs",
        json={
            "manifest": pipeline_manifest(),
            "webhook": {"url": hooks.url + "?token=kept-out-of-spans", "events": ["job_running"]},
        },
        headers={"traceparent": traceparent, "Idempotency-Key": "traced", "X-Request-ID": "rq-1"},
    )
    assert answer.status_code == 201, answer.text
    spans = await _spans(
        receiver, trace_id, "POST /api/v1/jobs", "/mirrorneuron.job.v1.JobService/SubmitJob"
    )
    server = spans["POST /api/v1/jobs"]
    assert server.kind == Span.SPAN_KIND_SERVER
    assert server.parent_span_id == parent  # the caller's trace, continued
    attributes = _attributes(server.attributes)
    assert attributes["http.route"] == "/api/v1/jobs"
    assert attributes["http.response.status_code"] == 201
    assert attributes["mn_api.request_id"] == "rq-1"

    children = _children(spans, server)
    submit = children["/mirrorneuron.job.v1.JobService/SubmitJob"]
    assert submit.kind == Span.SPAN_KIND_CLIENT
    assert _attributes(submit.attributes)["rpc.grpc.status_code"] == 0
    # The core received the same trace, with the core call's span as its parent.
    sent = [m for method, m in core.call_log.calls if method.endswith("/SubmitJob")][-1]
    assert sent["traceparent"].split("-")[1:3] == [trace_id.hex(), submit.span_id.hex()]

    # The idempotency key's claim and answer, in the store of this deployment.
    store_spans = [s for s in receiver.of_trace(trace_id) if s.parent_span_id == server.span_id]
    systems = {_attributes(s.attributes).get("db.system") for s in store_spans}
    assert ("redis" if shared_state else "sqlite") in systems

    # A webhook attempt is a client span of its own, without the URL's query.
    await eventually(lambda: hooks.accepted, within=20)

    def attempts() -> list[dict[str, Any]]:
        found = []
        for _, span in receiver.spans:
            attributes = _attributes(span.attributes)
            if span.kind == Span.SPAN_KIND_CLIENT and "/hooks" in attributes.get("url.full", ""):
                found.append(attributes)
        return found

    attempt = (await eventually(attempts, within=20))[0]
    assert attempt["url.full"] == hooks.url
    assert attempt["http.response.status_code"] == 204


async def _a_failing_core_call_is_an_error_span(
    client: httpx.AsyncClient, receiver: OtlpReceiver, job_id: str
) -> None:
    traceparent, trace_id, _ = _traceparent()
    # The core refuses to pause a job that has ended.
    answer = await client.post(f"/jobs/{job_id}/pause", headers={"traceparent": traceparent})
    assert answer.status_code == 409, answer.text
    call_name = "/mirrorneuron.job.v1.JobService/PauseJob"
    spans = await _spans(receiver, trace_id, "POST /api/v1/jobs/{job_id}/pause", call_name)
    server = spans["POST /api/v1/jobs/{job_id}/pause"]
    assert _attributes(server.attributes)["http.response.status_code"] == 409
    call = _children(spans, server)[call_name]
    assert _attributes(call.attributes)["rpc.grpc.status_code"] != 0
    assert call.status.code == Status.STATUS_CODE_ERROR


async def _a_stream_is_one_span_around_its_core_stream(
    client: httpx.AsyncClient, receiver: OtlpReceiver
) -> str:
    """Returns the finished job it streamed."""
    job_id = (await client.post("/jobs", json={"manifest": pipeline_manifest()})).json()["job_id"]

    async def finished() -> bool:
        # From the listing: a job's details read its history (for recent_events), and the
        # stream below would then be served from what was read.
        listing = (await client.get("/jobs")).json()["data"]
        return any(j["job_id"] == job_id and j["status"] == "completed" for j in listing)

    await eventually(finished, within=20)
    traceparent, trace_id, _ = _traceparent()
    async with client.stream(
        "GET", f"/jobs/{job_id}/events/stream", headers={"traceparent": traceparent}
    ) as stream:
        assert stream.status_code == 200
        body = b"".join([chunk async for chunk in stream.aiter_bytes()])
    assert b"job_completed" in body
    stream_call = "/mirrorneuron.observability.v1.ObservabilityService/StreamEvents"
    route = "GET /api/v1/jobs/{job_id}/events/stream"
    spans = await _spans(receiver, trace_id, route, stream_call)
    server = spans[route]
    call = _children(spans, server)[stream_call]
    assert call.kind == Span.SPAN_KIND_CLIENT
    # The stream's span lasts as long as the stream it carried.
    assert server.end_time_unix_nano >= call.end_time_unix_nano
    return job_id


async def test_a_collector_that_never_answers_does_not_hold_the_stop(tmp_path: Path) -> None:
    """The exporters would wait out their timeouts and retries (about 50 s here): the
    gateway gives the collector a bounded wait, says so, and ends."""
    collector = SilentCollector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    gateway = GatewayProcess(
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_METRICS_EXPORTER="none",
    )
    await asyncio.to_thread(gateway.start)
    try:
        async with httpx.AsyncClient(base_url=gateway.base + API, timeout=30) as client:
            for _ in range(3):
                assert (await client.get("/health")).status_code == 200
        await eventually(lambda: collector.exports > 0, within=20)
        process = gateway.process
        assert process is not None
        process.terminate()
        # Well under the exporters' own wait: a stop held by the collector times out here.
        code = await asyncio.to_thread(process.wait, 20)
        gateway.process = None
    finally:
        await asyncio.to_thread(gateway.stop)
        await server.stop(None)
    assert code == 0
    log = (tmp_path / "api.log").read_text()
    assert "OTLP flushing gave up after 3 s: the collector did not answer" in log
