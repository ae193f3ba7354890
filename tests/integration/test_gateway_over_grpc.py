"""The gateway against mn-fake-core: credentials, request ids, TLS and legacy cores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import httpx
import pytest
import trustme

from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from mn_api.container import build_container
from mn_api.entrypoints.fake_core import FakeCore
from mn_api.entrypoints.http import create_app
from tests.support import pipeline_manifest

API = "/api/v1"


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real container choosing GrpcRuntime from settings, as `mn-api` would."""
    container = build_container(settings)
    app = create_app(container)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


@asynccontextmanager
async def fake_core(**options) -> AsyncIterator[FakeCore]:
    credentials = options.pop("credentials", None)
    legacy = options.pop("legacy", False)
    runtime = InMemoryRuntime(release="1.1" if legacy else "1.2.31", step_seconds=0.001)
    core = FakeCore(runtime, replay=not legacy, **options)
    await core.start("127.0.0.1", 0, credentials=credentials)
    try:
        yield core
    finally:
        await core.stop(grace=None)


async def test_token_and_request_id_reach_the_core(settings_factory: Callable) -> None:
    async with fake_core(token="core-secret") as core:
        settings = settings_factory(
            runtime="grpc", grpc_target_raw=f"127.0.0.1:{core.port}", grpc_auth_token="core-secret"
        )
        async with gateway(settings) as client:
            response = await client.post(
                f"{API}/jobs",
                headers={"X-Request-ID": "trace-42"},
                json={"manifest": pipeline_manifest()},
            )
            assert response.status_code == 201
        _method, metadata = next(c for c in core.call_log.calls if c[0].endswith("/SubmitJob"))
        assert metadata["x-request-id"] == "trace-42"
        assert metadata["authorization"] == "Bearer core-secret"


async def test_a_core_refusing_the_gateway_is_a_502(settings_factory: Callable) -> None:
    async with fake_core(token="core-secret") as core:
        settings = settings_factory(
            runtime="grpc", grpc_target_raw=f"127.0.0.1:{core.port}", grpc_auth_token="stale"
        )
        async with gateway(settings) as client:
            # Pausing is protected; listing is never checked by a real core.
            assert (await client.get(f"{API}/jobs")).status_code == 200
            response = await client.post(f"{API}/jobs/ghost-1-000000000000/pause")
    assert response.status_code == 502
    assert response.json()["error"] == "runtime_auth_failed"
    assert "stale" not in response.text and "core-secret" not in response.text


async def test_replay_on_a_legacy_core_is_501(settings_factory: Callable) -> None:
    async with fake_core(legacy=True) as core:
        settings = settings_factory(runtime="grpc", grpc_target_raw=f"127.0.0.1:{core.port}")
        async with gateway(settings) as client:
            manifest = pipeline_manifest(worker={"simulate": {"drop_first": 1}})
            job_id = (await client.post(f"{API}/jobs", json={"manifest": manifest})).json()["id"]
            for _ in range(500):
                job = (await client.get(f"{API}/jobs/{job_id}")).json()
                if job["job"]["status"] == "completed":
                    break
            response = await client.post(f"{API}/jobs/{job_id}/dead-letters/0/replay")
    assert response.status_code == 501
    assert response.json()["error"] == "not_supported"
    assert "ReplayDeadLetter" in response.json()["detail"]


@pytest.mark.parametrize("mutual", [False, True])
async def test_tls_and_mutual_tls(settings_factory: Callable, tmp_path: Path, mutual: bool) -> None:
    authority = trustme.CA()
    server_cert = authority.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    key_chain = (
        server_cert.private_key_pem.bytes(),
        b"".join(blob.bytes() for blob in server_cert.cert_chain_pems),
    )
    tls: dict = {}
    if mutual:
        client_cert = authority.issue_cert("gateway@mirrorneuron")
        cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
        cert_file.write_bytes(b"".join(b.bytes() for b in client_cert.cert_chain_pems))
        key_file.write_bytes(client_cert.private_key_pem.bytes())
        tls = {"grpc_tls_cert_file": cert_file, "grpc_tls_key_file": key_file}
    credentials = grpc.ssl_server_credentials(
        [key_chain],
        root_certificates=authority.cert_pem.bytes() if mutual else None,
        require_client_auth=mutual,
    )
    async with fake_core(credentials=credentials) as core:
        settings = settings_factory(
            runtime="grpc",
            grpc_target_raw=f"localhost:{core.port}",
            grpc_tls_ca_file=ca_file,
            **tls,
        )
        async with gateway(settings) as client:
            assert (await client.get(f"{API}/ready")).status_code == 200
            assert (await client.get(f"{API}/jobs")).json() == {"data": []}
        plain = settings_factory(
            runtime="grpc", grpc_target_raw=f"localhost:{core.port}", grpc_timeout_seconds=2
        )
        async with gateway(plain) as client:
            assert (await client.get(f"{API}/ready")).status_code == 503


async def test_a_core_listing_thousands_of_problems_is_still_a_manifest_refusal() -> None:
    """A core writes every problem into the status message, which gRPC carries as metadata:
    3,000 of them (about 330 KB) must read as 422 with the count, not as an overload."""
    from mn_api.adapters.grpc.protos import job_pb2_grpc
    from mn_api.adapters.grpc.runtime import GrpcRuntime
    from mn_api.domain.errors import ManifestInvalidError
    from mn_api.entrypoints.fake_core import elixir_list

    problems = [f"nodes[{i}].agent_type must be one of router, executor" for i in range(3000)]

    class Refusing(job_pb2_grpc.JobServiceServicer):
        async def SubmitJob(self, request: object, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, elixir_list(problems))

    server = grpc.aio.server(options=[("grpc.max_metadata_size", 4 << 20)])
    job_pb2_grpc.add_JobServiceServicer_to_server(Refusing(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    runtime = GrpcRuntime(f"127.0.0.1:{port}", timeout_seconds=5)
    try:
        with pytest.raises(ManifestInvalidError) as refused:
            await runtime.submit_job("{}", {})
    finally:
        await runtime.close()
        await server.stop(None)
    assert refused.value.total == 3000
    assert refused.value.errors == problems[:100]


async def test_event_types_the_gateway_does_not_know_pass_through_untouched() -> None:
    """Newer cores write types (workflow_step_*, backpressure_rejected, ...) and fields the
    gateway has never heard of: each event reaches the client byte for byte."""
    from mn_api.adapters.grpc.protos import observability_pb2, observability_pb2_grpc
    from mn_api.adapters.grpc.runtime import GrpcRuntime
    from mn_api.domain.events import EventRecord

    events = [
        b'{"type":"job_pending","timestamp":"2026-12-01T09:00:00.000Z","job_id":"j-1"}',
        b'{"type":"workflow_step_started","timestamp":"2026-12-01T09:00:00.001Z",'
        b'"job_id":"j-1","step":{"n":1.50,"k":[true,null]},"version":1}',
        b'{"type":"backpressure_rejected","timestamp":"2026-12-01T09:00:00.002Z",'
        b'"job_id":"j-1","agent_id":"w","payload":{"queue":"mailbox"}}',
    ]

    class History(observability_pb2_grpc.ObservabilityServiceServicer):
        async def StreamEvents(self, request: object, context: object) -> object:
            for raw in events:
                yield observability_pb2.EventResponse(event_json=raw.decode(), version=1)

    server = grpc.aio.server()
    observability_pb2_grpc.add_ObservabilityServiceServicer_to_server(History(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    runtime = GrpcRuntime(f"127.0.0.1:{port}", timeout_seconds=5)
    try:
        passed = [
            item.document.raw
            async for item in runtime.stream_events("j-1", follow=False)
            if isinstance(item, EventRecord)
        ]
    finally:
        await runtime.close()
        await server.stop(None)
    assert passed == events
