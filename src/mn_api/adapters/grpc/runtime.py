"""GrpcRuntime: the RuntimePort spoken over the MirrorNeuron core's gRPC services."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from mn_api.adapters.core_refusals import refusal_error
from mn_api.adapters.grpc.errors import (
    COORDINATOR_GONE_TEXT,
    core_text,
    is_unclear_refusal,
    refusal_meaning,
    translate,
)
from mn_api.adapters.grpc.later import fields_of
from mn_api.adapters.grpc.later import method as later_method
from mn_api.adapters.grpc.nodes import READS, CoreNode, CoreNodes, undecodable
from mn_api.adapters.grpc.protos import cluster_pb2, job_pb2, observability_pb2
from mn_api.adapters.grpc.wire import (
    SeenEvents,
    is_heartbeat,
    job_document,
    loads,
    read_document,
    type_of,
)
from mn_api.application.context import request_id
from mn_api.application.ports import JobAck, ReplayAck, RuntimePort, Telemetry
from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import (
    CoordinatorGoneError,
    InvalidTransitionError,
    JobNotFoundError,
    RequestValidationError,
)
from mn_api.domain.events import TERMINAL_EVENT_STATUS, EventRecord, Heartbeat
from mn_api.domain.status import is_terminal

if TYPE_CHECKING:
    from mn_api.config import Settings

T = TypeVar("T")

# Room for the manifest and the map framing around payloads that fill the body limit.
SEND_OVERHEAD = 1024 * 1024
# Once a polled job's status says it ended without the event that ended it in its history,
# the history is read once more, this long after: a core records the status a moment before
# the event (within 20 ms), or lost the event. What that read holds is the whole history.
FINISHING_READS = 1
FINISHING_PAUSE = 0.2
# The code a call is counted under when its answer was no message of its kind (a core
# speaking another protocol): gRPC itself calls it OK.
UNDECODABLE = "UNDECODABLE"
# Protobuf framing of a SubmitJob request: the tags and lengths around each field.
SUBMIT_FRAMING_BYTES = 64 * 1024


class GrpcRuntime(RuntimePort):
    """The core's nodes reached through CoreNodes: one channel per node and process,
    created inside the running event loop, calls failing over from node to node.

    Every unary call carries the configured deadline; event streams carry none, since
    following a job may last as long as the job.
    """

    def __init__(
        self,
        target: str | Sequence[str],
        *,
        authority: str | None = None,
        timeout_seconds: float | None = 10.0,
        auth_token: str | None = None,
        admin_token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        max_send_bytes: int = 5 * 1024 * 1024 + SEND_OVERHEAD,
        legacy_poll_seconds: float = 0.5,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._nodes = CoreNodes(
            [target] if isinstance(target, str) else list(target),
            authority=authority,
            credentials=credentials,
            max_send_bytes=max_send_bytes,
        )
        self._timeout = timeout_seconds
        self._auth = ("authorization", f"Bearer {auth_token}") if auth_token else None
        # ClearJobs: 1.2.5 to 1.2.22 compare `admin_token` with their separate admin secret;
        # 1.2.31 reads the metadata instead, so the secret goes there too when no auth is set.
        self._admin_token = admin_token or auth_token or ""
        self._admin_auth = (
            self._auth
            if self._auth or not self._admin_token
            else ("authorization", f"Bearer {self._admin_token}")
        )
        # What is left for the manifest and payloads once the message's framing is counted.
        self.message_limit_bytes = max_send_bytes - SUBMIT_FRAMING_BYTES
        self._poll = legacy_poll_seconds
        self._telemetry = telemetry

    @classmethod
    def from_settings(cls, settings: Settings, telemetry: Telemetry | None = None) -> GrpcRuntime:
        return cls(
            settings.grpc_addresses,
            authority=settings.grpc_authority,
            timeout_seconds=settings.grpc_timeout_seconds,
            auth_token=settings.grpc_auth_token,
            admin_token=settings.grpc_admin_token,
            credentials=channel_credentials(settings),
            max_send_bytes=settings.request_size_limit_bytes + SEND_OVERHEAD,
            telemetry=telemetry,
        )

    # -- channel ---------------------------------------------------------------------

    @property
    def targets(self) -> list[str]:
        """The core nodes this runtime calls, in the order it fails over."""
        return self._nodes.targets

    async def start(self) -> None:
        self._nodes.connect()

    async def close(self) -> None:
        await self._nodes.close()

    def _metadata(self, auth: tuple[str, str] | bool | None = True) -> tuple[tuple[str, str], ...]:
        rid = ("x-request-id", request_id.get() or uuid.uuid4().hex)
        credentials = self._auth if auth is True else auth or None
        return (rid, credentials) if credentials else (rid,)

    async def _unary(
        self,
        rpc: str,
        call: Callable[[CoreNode], Callable[..., Awaitable[T]]],
        request: Any,
        *,
        job_id: str | None = None,
        node_name: str | None = None,
        deadline: float | None = None,
        auth: tuple[str, str] | bool | None = True,
        refusal: Callable[[grpc.aio.AioRpcError], Exception] | None = None,
    ) -> T:
        """One call, on the current node; a read whose node does not answer (or any call
        that never reached it) is made again on the next node, once per node at most."""
        read = rpc in READS
        for tries_left in range(len(self._nodes) - 1, -1, -1):
            node = self._nodes.current()
            started = time.perf_counter()
            try:
                response = await call(node)(
                    request, timeout=deadline or self._timeout, metadata=self._metadata(auth)
                )
            except grpc.aio.AioRpcError as err:
                self._measured(rpc, err.code().name, started)
                if tries_left and self._nodes.moves_on(node, err, read=read):
                    continue
                if err.code() is grpc.StatusCode.INTERNAL and "RST_STREAM" in (err.details() or ""):
                    raise self._nodes.reset_by_core(node, err, rpc) from err
                if refusal is not None:
                    raise refusal(err) from err
                if job_id is not None and is_unclear_refusal(err, rpc):
                    raise await self._unclear_refusal(err, rpc, job_id) from err
                raise translate(err, rpc=rpc, job_id=job_id, node_name=node_name) from err
            except asyncio.CancelledError:
                self._measured(rpc, "CANCELLED", started)  # the caller went away
                raise
            if response is None:
                self._measured(rpc, UNDECODABLE, started)
                raise undecodable(rpc)
            self._measured(rpc, "OK", started)
            return response  # type: ignore[no-any-return]
        raise AssertionError("unreachable: the last try raises or answers")

    def _measured(self, rpc: str, code: str, started: float) -> None:
        if self._telemetry is not None:
            self._telemetry.core_call(rpc, code, time.perf_counter() - started)

    async def _unclear_refusal(self, err: grpc.aio.AioRpcError, rpc: str, job_id: str) -> Exception:
        """A refusal whose text names no reason: the core is asked whether the job exists."""
        try:
            details = (await self.get_job(job_id)).value
        except JobNotFoundError as missing:
            return missing
        text = core_text(err.details() or "")
        if COORDINATOR_GONE_TEXT in text.lower():
            job = details.get("job") if isinstance(details, dict) else None
            status = job.get("status") if isinstance(job, dict) else None
            return CoordinatorGoneError(job_id, status if isinstance(status, str) else "unknown")
        if refusal_meaning(text) == "ambiguous" or err.code() is grpc.StatusCode.NOT_FOUND:
            # The job exists: the core refused the call for its status.
            return InvalidTransitionError(text or "the core refused the operation")
        return translate(err, rpc=rpc, job_id=job_id)

    # -- the port --------------------------------------------------------------------

    async def submit_job(self, manifest_json: str, payloads: Mapping[str, bytes]) -> JobAck:
        try:
            request = job_pb2.SubmitJobRequest(manifest_json=manifest_json, payloads=payloads)
        except (ValueError, TypeError) as err:  # text protobuf cannot encode (not UTF-8)
            raise RequestValidationError(
                "the manifest or a payload name cannot be sent to the runtime",
                [{"loc": ["body"], "msg": "must be valid UTF-8 text", "type": "value_error"}],
            ) from err
        response = await self._unary("SubmitJob", attrgetter("jobs.SubmitJob"), request)
        return JobAck(response.job_id, response.status)

    async def get_job(self, job_id: str) -> JsonDocument:
        response = await self._unary(
            "GetJob", attrgetter("jobs.GetJob"), job_pb2.GetJobRequest(job_id=job_id), job_id=job_id
        )
        document = job_document(response.job_json.encode())
        if document is None:
            raise JobNotFoundError(job_id)
        return document

    async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
        request = job_pb2.ListJobsRequest(limit=limit, include_terminal=include_terminal)
        response = await self._unary("ListJobs", attrgetter("jobs.ListJobs"), request)
        return read_document(response.jobs_json)

    async def cancel_job(self, job_id: str) -> JobAck:
        response = await self._unary(
            "CancelJob",
            attrgetter("jobs.CancelJob"),
            job_pb2.CancelJobRequest(job_id=job_id),
            job_id=job_id,
        )
        return JobAck(response.job_id or job_id, response.status)

    async def pause_job(self, job_id: str) -> JobAck:
        response = await self._unary(
            "PauseJob",
            attrgetter("jobs.PauseJob"),
            job_pb2.PauseJobRequest(job_id=job_id),
            job_id=job_id,
        )
        return JobAck(response.job_id or job_id, response.status)

    async def resume_job(self, job_id: str) -> JobAck:
        response = await self._unary(
            "ResumeJob",
            attrgetter("jobs.ResumeJob"),
            job_pb2.ResumeJobRequest(job_id=job_id),
            job_id=job_id,
        )
        return JobAck(response.job_id or job_id, response.status)

    async def clear_jobs(self) -> int:
        response = await self._unary(
            "ClearJobs",
            attrgetter("jobs.ClearJobs"),
            job_pb2.ClearJobsRequest(admin_token=self._admin_token),
            auth=self._admin_auth,
        )
        return int(response.cleared_count)

    async def cancel_all_jobs(self) -> JsonDocument:
        response = await self._unary(
            "CancelAllJobs",
            attrgetter("jobs.CancelAllJobs"),
            job_pb2.CancelAllJobsRequest(),
            auth=self._admin_auth,
        )
        return JsonDocument((response.result_json or "{}").encode(), loads)

    async def remove_node(self, node_name: str) -> str:
        response = await self._unary(
            "RemoveNode",
            attrgetter("cluster.RemoveNode"),
            cluster_pb2.RemoveNodeRequest(node_name=node_name),
            node_name=node_name,
            auth=self._admin_auth,
        )
        return response.status or "removed"

    async def replay_dead_letter(self, job_id: str, event_index: int) -> ReplayAck:
        request = job_pb2.ReplayDeadLetterRequest(job_id=job_id, event_index=event_index)
        response = await self._unary(
            "ReplayDeadLetter", attrgetter("jobs.ReplayDeadLetter"), request, job_id=job_id
        )
        return ReplayAck(response.job_id or job_id, response.status, response.agent_id)

    async def system_summary(self) -> JsonDocument:
        response = await self._unary(
            "GetSystemSummary",
            attrgetter("cluster.GetSystemSummary"),
            cluster_pb2.GetSystemSummaryRequest(),
        )
        return read_document(response.summary_json)

    async def ping(self, deadline_seconds: float) -> None:
        await self._unary(
            "GetSystemSummary",
            attrgetter("cluster.GetSystemSummary"),
            cluster_pb2.GetSystemSummaryRequest(),
            deadline=deadline_seconds,
        )

    async def call_service(
        self, method: str, request: Mapping[str, Any], *, kind: str = "record"
    ) -> dict[str, Any]:
        called = later_method(method)
        message = called.request(**request)

        def multicallable(node: CoreNode) -> Callable[..., Awaitable[Any]]:
            return node.channel.unary_unary(  # type: ignore[no-any-return]
                called.path,
                request_serializer=called.request.SerializeToString,
                response_deserializer=called.answer.FromString,
            )

        answer = await self._unary(
            called.name, multicallable, message, refusal=partial(_refused, kind=kind)
        )
        return fields_of(answer)

    async def stream_service(  # type: ignore[override]
        self, method: str, request: Mapping[str, Any], *, kind: str = "record"
    ) -> AsyncIterator[dict[str, Any]]:
        called = later_method(method)
        node = self._nodes.current()
        call = node.channel.unary_stream(
            called.path,
            request_serializer=called.request.SerializeToString,
            response_deserializer=called.answer.FromString,
        )(called.request(**request), metadata=self._metadata())
        started = time.perf_counter()
        code = "CANCELLED"
        try:
            async for answer in call:
                if answer is None:
                    code = UNDECODABLE
                    raise undecodable(called.name)
                yield fields_of(answer)
            code = "OK"
        except grpc.aio.AioRpcError as err:
            code = err.code().name
            raise _refused(err, kind=kind) from err
        finally:
            call.cancel()
            self._measured(called.name, code, started)

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
        heartbeat_ms = int(heartbeat_seconds * 1000) if heartbeat_seconds else 0
        request = observability_pb2.StreamEventsRequest(
            job_id=job_id, follow=follow, heartbeat_interval_ms=heartbeat_ms
        )
        position = 0  # the next position not yet passed on
        last_raw = b""
        quiet_since = time.monotonic()
        # Reads left after the one under way, once the job's status says it ended: a core
        # may record the status a moment before the event that ended it reaches the history.
        finishing: int | None = None
        known = False  # whether the job is known to exist
        moves_left = len(self._nodes) - 1  # to other nodes, before any event came
        while True:
            node = self._nodes.current()
            call = node.observability.StreamEvents(request, metadata=self._metadata())
            index = 0
            passed_on = position
            seen = SeenEvents() if follow else None
            started = time.perf_counter()
            code = "CANCELLED"  # unless the stream runs to its end or fails
            try:
                async for response in call:
                    if response is None:
                        code = UNDECODABLE
                        raise undecodable("StreamEvents")
                    raw = response.event_json.encode()
                    if is_heartbeat(raw):
                        if not known and index == 0:
                            # Cores answer an unknown job with heartbeats, never an error.
                            await self.get_job(job_id)
                            known = True
                        yield Heartbeat()
                        continue
                    if seen is not None and seen.repeat(raw):
                        continue  # sent twice at the boundary of history and live events
                    index += 1
                    if index <= position:
                        continue  # already passed on by an earlier read
                    position = index
                    last_raw = raw
                    if index - 1 > after:
                        # Read now: an event that is not JSON is never passed on as if it were.
                        yield EventRecord(index - 1, JsonDocument(raw, loads, loads(raw)))
                code = "OK"
            except grpc.aio.AioRpcError as err:
                code = err.code().name
                if moves_left and self._nodes.moves_on(node, err, read=True):
                    # Read again from the next node: what was passed on is skipped by
                    # position, so nothing is lost or repeated.
                    moves_left -= 1
                    continue
                raise translate(err, rpc="StreamEvents", job_id=job_id) from err
            finally:
                call.cancel()
                self._measured("StreamEvents", code, started)
            moves_left = len(self._nodes) - 1
            if index == 0 and not known:
                await self.get_job(job_id)  # an empty stream may be an unknown job
                known = True
            if not follow or finishing == 0 or type_of(last_raw) in TERMINAL_EVENT_STATUS:
                return
            if position > passed_on:
                quiet_since = time.monotonic()
            if finishing is not None:
                finishing -= 1
                await asyncio.sleep(min(self._poll, FINISHING_PAUSE))
                continue
            # The stream ended before the job did: this core does not follow.
            status = (await self.get_job(job_id)).value.get("job", {}).get("status", "")
            if is_terminal(status):
                # Read again after a pause: it picks up the event that ended the job.
                finishing = FINISHING_READS - 1
                await asyncio.sleep(min(self._poll, FINISHING_PAUSE))
                continue
            await asyncio.sleep(self._poll)
            if heartbeat_seconds and time.monotonic() - quiet_since >= heartbeat_seconds:
                quiet_since = time.monotonic()
                yield Heartbeat()


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """TLS for the core's channels when MN_GRPC_TLS_CA_FILE is set (with the client's own
    certificate when one is given); None: plain text."""
    if settings.grpc_tls_ca_file is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=settings.grpc_tls_ca_file.read_bytes(),
        private_key=settings.grpc_tls_key_file.read_bytes() if settings.grpc_tls_key_file else None,
        certificate_chain=(
            settings.grpc_tls_cert_file.read_bytes() if settings.grpc_tls_cert_file else None
        ),
    )


def _refused(err: grpc.aio.AioRpcError, *, kind: str) -> Exception:
    """A later service's refusal as the domain error it means."""
    return refusal_error(err.code().name, core_text(err.details() or ""), kind=kind)
