"""GrpcRuntime: the RuntimePort spoken over the MirrorNeuron core's gRPC services."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import orjson

from mn_api.adapters.grpc.errors import translate
from mn_api.adapters.grpc.protos import (
    cluster_pb2,
    cluster_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    observability_pb2,
    observability_pb2_grpc,
)
from mn_api.application.context import request_id
from mn_api.application.ports import JobAck, ReplayAck, RuntimePort, Telemetry
from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import JobNotFoundError
from mn_api.domain.events import TERMINAL_EVENT_STATUS, EventRecord, Heartbeat
from mn_api.domain.status import is_terminal

if TYPE_CHECKING:
    from mn_api.config import Settings

T = TypeVar("T")

JOB_SERVICE = "mirrorneuron.job.v1.JobService"
CLUSTER_SERVICE = "mirrorneuron.cluster.v1.ClusterService"
OBSERVABILITY_SERVICE = "mirrorneuron.observability.v1.ObservabilityService"
RECEIVE_LIMIT = 64 * 1024 * 1024
# Room for the manifest and the map framing around payloads that fill the body limit.
SEND_OVERHEAD = 1024 * 1024

# Reads are retried on UNAVAILABLE with backoff; SubmitJob and other writes never are.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": JOB_SERVICE, "method": "GetJob"},
                    {"service": JOB_SERVICE, "method": "ListJobs"},
                    {"service": CLUSTER_SERVICE},
                    {"service": OBSERVABILITY_SERVICE},
                ],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def _loads(raw: bytes) -> Any:
    return orjson.loads(raw)


def _is_heartbeat(raw: bytes) -> bool:
    """Cores keep a quiet stream open with empty or `{"type": "heartbeat"}` messages."""
    if not raw:
        return True
    if len(raw) > 128 or b"heartbeat" not in raw:
        return False
    try:
        return orjson.loads(raw).get("type") == "heartbeat"
    except (orjson.JSONDecodeError, AttributeError):
        return False


class GrpcRuntime(RuntimePort):
    """One channel per process, created inside the running event loop.

    Every unary call carries the configured deadline; event streams carry none, since
    following a job may last as long as the job.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout_seconds: float | None = 10.0,
        auth_token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        max_send_bytes: int = 5 * 1024 * 1024 + SEND_OVERHEAD,
        legacy_poll_seconds: float = 0.5,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._target = target
        self._timeout = timeout_seconds
        self._auth = ("authorization", f"Bearer {auth_token}") if auth_token else None
        self._admin_token = auth_token or ""
        self._credentials = credentials
        self._max_send = max_send_bytes
        self._poll = legacy_poll_seconds
        self._telemetry = telemetry
        self._channel: grpc.aio.Channel | None = None
        self._jobs: job_pb2_grpc.JobServiceStub
        self._cluster: cluster_pb2_grpc.ClusterServiceStub
        self._observability: observability_pb2_grpc.ObservabilityServiceStub

    @classmethod
    def from_settings(cls, settings: Settings, telemetry: Telemetry | None = None) -> GrpcRuntime:
        credentials = None
        if settings.grpc_tls_ca_file is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=settings.grpc_tls_ca_file.read_bytes(),
                private_key=(
                    settings.grpc_tls_key_file.read_bytes() if settings.grpc_tls_key_file else None
                ),
                certificate_chain=(
                    settings.grpc_tls_cert_file.read_bytes()
                    if settings.grpc_tls_cert_file
                    else None
                ),
            )
        return cls(
            settings.grpc_target,
            timeout_seconds=settings.grpc_timeout_seconds,
            auth_token=settings.grpc_auth_token,
            credentials=credentials,
            max_send_bytes=settings.request_size_limit_bytes + SEND_OVERHEAD,
            telemetry=telemetry,
        )

    # -- channel ---------------------------------------------------------------------

    async def start(self) -> None:
        self._connect()

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close(grace=None)

    def _connect(self) -> None:
        if self._channel is not None:
            return
        options = [
            ("grpc.max_send_message_length", self._max_send),
            ("grpc.max_receive_message_length", RECEIVE_LIMIT),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _SERVICE_CONFIG),
            # Reconnect quickly once a core comes back instead of backing off for minutes.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
            ("grpc.keepalive_time_ms", 30_000),
        ]
        if self._credentials is not None:
            channel = grpc.aio.secure_channel(self._target, self._credentials, options=options)
        else:
            channel = grpc.aio.insecure_channel(self._target, options=options)
        self._channel = channel
        self._jobs = job_pb2_grpc.JobServiceStub(channel)
        self._cluster = cluster_pb2_grpc.ClusterServiceStub(channel)
        self._observability = observability_pb2_grpc.ObservabilityServiceStub(channel)

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        rid = ("x-request-id", request_id.get() or uuid.uuid4().hex)
        return (rid, self._auth) if self._auth else (rid,)

    async def _unary(
        self,
        rpc: str,
        call: Callable[..., Awaitable[T]],
        request: Any,
        *,
        job_id: str | None = None,
        deadline: float | None = None,
    ) -> T:
        try:
            return await call(request, timeout=deadline or self._timeout, metadata=self._metadata())
        except grpc.aio.AioRpcError as err:
            raise translate(err, rpc=rpc, job_id=job_id) from err

    # -- the port --------------------------------------------------------------------

    async def submit_job(self, manifest_json: str, payloads: Mapping[str, bytes]) -> JobAck:
        self._connect()
        request = job_pb2.SubmitJobRequest(manifest_json=manifest_json, payloads=payloads)
        response = await self._unary("SubmitJob", self._jobs.SubmitJob, request)
        return JobAck(response.job_id, response.status)

    async def get_job(self, job_id: str) -> JsonDocument:
        self._connect()
        response = await self._unary(
            "GetJob", self._jobs.GetJob, job_pb2.GetJobRequest(job_id=job_id), job_id=job_id
        )
        raw = response.job_json.encode()
        if raw.strip() in (b"", b"{}"):  # the core's answer for an unknown id
            raise JobNotFoundError(job_id)
        return JsonDocument(raw, _loads)

    async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
        self._connect()
        request = job_pb2.ListJobsRequest(limit=limit, include_terminal=include_terminal)
        response = await self._unary("ListJobs", self._jobs.ListJobs, request)
        return JsonDocument(response.jobs_json.encode(), _loads)

    async def cancel_job(self, job_id: str) -> JobAck:
        self._connect()
        response = await self._unary(
            "CancelJob",
            self._jobs.CancelJob,
            job_pb2.CancelJobRequest(job_id=job_id),
            job_id=job_id,
        )
        return JobAck(response.job_id or job_id, response.status)

    async def pause_job(self, job_id: str) -> JobAck:
        self._connect()
        response = await self._unary(
            "PauseJob", self._jobs.PauseJob, job_pb2.PauseJobRequest(job_id=job_id), job_id=job_id
        )
        return JobAck(response.job_id or job_id, response.status)

    async def resume_job(self, job_id: str) -> JobAck:
        self._connect()
        response = await self._unary(
            "ResumeJob",
            self._jobs.ResumeJob,
            job_pb2.ResumeJobRequest(job_id=job_id),
            job_id=job_id,
        )
        return JobAck(response.job_id or job_id, response.status)

    async def clear_jobs(self) -> int:
        self._connect()
        response = await self._unary(
            "ClearJobs",
            self._jobs.ClearJobs,
            job_pb2.ClearJobsRequest(admin_token=self._admin_token),
        )
        return int(response.cleared_count)

    async def replay_dead_letter(self, job_id: str, event_index: int) -> ReplayAck:
        self._connect()
        request = job_pb2.ReplayDeadLetterRequest(job_id=job_id, event_index=event_index)
        response = await self._unary(
            "ReplayDeadLetter", self._jobs.ReplayDeadLetter, request, job_id=job_id
        )
        return ReplayAck(response.job_id or job_id, response.status, response.agent_id)

    async def system_summary(self) -> JsonDocument:
        self._connect()
        response = await self._unary(
            "GetSystemSummary",
            self._cluster.GetSystemSummary,
            cluster_pb2.GetSystemSummaryRequest(),
        )
        return JsonDocument(response.summary_json.encode(), _loads)

    async def ping(self, deadline_seconds: float) -> None:
        self._connect()
        await self._unary(
            "GetSystemSummary",
            self._cluster.GetSystemSummary,
            cluster_pb2.GetSystemSummaryRequest(),
            deadline=deadline_seconds,
        )

    async def stream_events(
        self,
        job_id: str,
        *,
        follow: bool,
        after: int = -1,
        heartbeat_seconds: float | None = None,
    ) -> AsyncIterator[EventRecord | Heartbeat]:
        """Positions are counted in stream order, as the core sends history oldest first.

        A core that ignores `follow` ends the stream after the history; the history is then
        read again every `legacy_poll_seconds` and only what is new is passed on.
        """
        self._connect()
        heartbeat_ms = int(heartbeat_seconds * 1000) if heartbeat_seconds else 0
        request = observability_pb2.StreamEventsRequest(
            job_id=job_id, follow=follow, heartbeat_interval_ms=heartbeat_ms
        )
        position = 0  # the next position not yet passed on
        last_raw = b""
        quiet_since = time.monotonic()
        finishing = False
        while True:
            call = self._observability.StreamEvents(request, metadata=self._metadata())
            index = 0
            passed_on = position
            started = time.perf_counter()
            code = "CANCELLED"  # unless the stream runs to its end or fails
            try:
                async for response in call:
                    raw = response.event_json.encode()
                    if _is_heartbeat(raw):
                        yield Heartbeat()
                        continue
                    index += 1
                    if index <= position:
                        continue  # already passed on by an earlier read
                    position = index
                    last_raw = raw
                    if index - 1 > after:
                        yield EventRecord(index - 1, JsonDocument(raw, _loads))
                code = "OK"
            except grpc.aio.AioRpcError as err:
                code = err.code().name
                raise translate(err, rpc="StreamEvents", job_id=job_id) from err
            finally:
                call.cancel()
                if self._telemetry is not None:
                    self._telemetry.core_call("StreamEvents", code, time.perf_counter() - started)
            if not follow or finishing or _type_of(last_raw) in TERMINAL_EVENT_STATUS:
                return
            if position > passed_on:
                quiet_since = time.monotonic()
            # The stream ended before the job did: this core does not follow.
            status = (await self.get_job(job_id)).value.get("job", {}).get("status", "")
            if is_terminal(status):
                finishing = True  # one more read picks up the events that ended it
                continue
            await asyncio.sleep(self._poll)
            if heartbeat_seconds and time.monotonic() - quiet_since >= heartbeat_seconds:
                quiet_since = time.monotonic()
                yield Heartbeat()


def _type_of(raw: bytes) -> str:
    if not raw:
        return ""
    kind = orjson.loads(raw).get("type")
    return kind if isinstance(kind, str) else ""
