"""The floor: a bare ASGI app that forwards each request to the core and hands back its bytes.

    MN_GRPC_TARGET=127.0.0.1:50051 uvicorn bench.forwarder:app --loop uvloop --http httptools

One grpc.aio channel, no auth, no validation, no metrics, no logs: what any gateway must at
least spend per request. GET /api/v1/jobs/{id}, GET /api/v1/jobs, POST /api/v1/jobs and
GET /api/v1/jobs/{id}/events answer the core's documents untouched (the events as a JSON
array of the core's event texts), so the benchmark compares like with like.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

import grpc
import orjson

from mn_api.adapters.grpc.protos import (
    job_pb2,
    job_pb2_grpc,
    observability_pb2,
    observability_pb2_grpc,
)

JSON = [(b"content-type", b"application/json")]
_channel: grpc.aio.Channel | None = None
_jobs: Any = None
_events: Any = None


def _stubs() -> tuple[Any, Any]:
    global _channel, _jobs, _events
    if _channel is None:
        _channel = grpc.aio.insecure_channel(
            os.environ.get("MN_GRPC_TARGET", "127.0.0.1:50051"),
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        _jobs = job_pb2_grpc.JobServiceStub(_channel)
        _events = observability_pb2_grpc.ObservabilityServiceStub(_channel)
    return _jobs, _events


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON})
    await send({"type": "http.response.body", "body": body})


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    jobs, events = _stubs()
    method, parts = scope["method"], scope["path"].strip("/").split("/")
    if parts[:3] != ["api", "v1", "jobs"]:
        await _answer(send, 200, b'{"status":"ok"}')
        return
    if len(parts) == 3 and method == "GET":
        query = parse_qs(scope["query_string"].decode())
        limit = int(query.get("limit", ["20"])[0])
        reply = await jobs.ListJobs(job_pb2.ListJobsRequest(limit=limit, include_terminal=True))
        await _answer(send, 200, reply.jobs_json.encode())
    elif len(parts) == 3 and method == "POST":
        body = orjson.loads(await _body(receive))
        reply = await jobs.SubmitJob(job_pb2.SubmitJobRequest(manifest_json=body["manifest_json"]))
        await _answer(send, 201, orjson.dumps({"job_id": reply.job_id, "status": reply.status}))
    elif len(parts) == 4:
        reply = await jobs.GetJob(job_pb2.GetJobRequest(job_id=parts[3]))
        await _answer(send, 200, reply.job_json.encode())
    elif len(parts) == 5 and parts[4] == "events":
        await send({"type": "http.response.start", "status": 200, "headers": JSON})
        first = True
        call = events.StreamEvents(observability_pb2.StreamEventsRequest(job_id=parts[3]))
        async for event in call:
            await send(
                {
                    "type": "http.response.body",
                    "body": (b"[" if first else b",") + event.event_json.encode(),
                    "more_body": True,
                }
            )
            first = False
        await send({"type": "http.response.body", "body": b"[]" if first else b"]"})
    else:
        await _answer(send, 404, b"{}")
