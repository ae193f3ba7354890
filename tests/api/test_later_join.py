"""Adding another core's node (`nodes:add`, `nodes:join`): the handshake with that node,
only on hosts the gateway may contact, then AddNode on the gateway's core."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from mn_api.adapters.grpc.runtime import GrpcRuntime
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import Settings
from mn_api.entrypoints.fake_core import FakeCore
from tests.support import CORE_TOKEN, FakeClock, asgi_client, check_problem, free_port

API = "/api/v1"
MN1, MN2 = "mn1@127.0.0.1", "mn2@127.0.0.1"
JOIN_TOKEN = "join-secret"


@pytest.fixture
async def core() -> AsyncIterator[FakeCore]:
    """Two simulated nodes, each on a port of its own, that take nodes in with JOIN_TOKEN."""
    runtime = InMemoryRuntime(auto_run=False, clock=FakeClock(), nodes=2)
    core = FakeCore(runtime, token=CORE_TOKEN, join_token=JOIN_TOKEN)
    await core.start("127.0.0.1", ports=[0, 0])
    yield core
    await core.stop(grace=None)


@pytest.fixture(params=["memory", "grpc"])
async def client(
    request: pytest.FixtureRequest, core: FakeCore, settings_factory: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway of mn1 (its runtime in process, or over gRPC), allowed to contact
    127.0.0.1 only."""
    settings = settings_factory(cluster_join_hosts_raw="127.0.0.1")
    if request.param == "memory":
        async with asgi_client(settings, core.runtime) as client:
            yield client
        return
    remote = GrpcRuntime(f"127.0.0.1:{core.ports[MN1]}", timeout_seconds=5, auth_token=CORE_TOKEN)
    try:
        async with asgi_client(settings, remote) as client:
            yield client
    finally:
        await remote.close()


async def test_a_node_is_added_after_its_handshake(
    client: httpx.AsyncClient, core: FakeCore
) -> None:
    body = {"host": "127.0.0.1", "token": JOIN_TOKEN, "grpc_port": core.ports[MN2]}
    for route in ("nodes:add", "nodes:join"):
        answer = await client.post(f"{API}/system/cluster/{route}", json=body)
        assert answer.status_code == 200, answer.text
        added = answer.json()
        assert added["version"] == 1 and added["ok"] is True and added["host"] == "127.0.0.1"
        assert (added["node_name"], added["status"]) == (MN2, "connected")
        handshake = added["handshake"]
        assert handshake["node_name"] == MN2 and handshake["runtime_mode"] == "full"
        assert handshake["grpc_port"] == core.ports[MN2]
        # The other node's secrets are never passed on.
        assert not {"grpc_auth_token", "grpc_admin_token", "redis_url"} & set(handshake)
        assert CORE_TOKEN not in answer.text and "redis://" not in answer.text
    # The handshake named the gateway's own node (mn1) as the one joining: unchanged.
    status = (await client.get(f"{API}/nodes/{MN1}/drain")).json()
    assert status["status"] == "healthy"
    handshakes = core.call_log.received("NetworkHandshake")
    assert len(handshakes) == 2 and not any(call["authorization"] for call in handshakes)


async def test_hosts_the_gateway_may_not_contact_are_refused_before_any_call(
    client: httpx.AsyncClient, core: FakeCore
) -> None:
    for host in ("10.1.2.3", "localhost", "metadata.internal"):
        answer = await client.post(
            f"{API}/system/cluster/nodes:add",
            json={"host": host, "token": JOIN_TOKEN, "grpc_port": core.ports[MN2]},
        )
        assert answer.status_code == 403, answer.text
        assert check_problem(answer.json())["error"] == "join_host_not_allowed"
    assert core.call_log.received("NetworkHandshake") == []


async def test_a_refused_token_and_an_unreachable_node_are_told_apart(
    client: httpx.AsyncClient, core: FakeCore
) -> None:
    refused = await client.post(
        f"{API}/system/cluster/nodes:add",
        json={"host": "127.0.0.1", "token": "guess", "grpc_port": core.ports[MN2]},
    )
    assert refused.status_code == 403
    assert check_problem(refused.json())["error"] == "join_refused"
    assert "guess" not in refused.text
    nobody = await client.post(
        f"{API}/system/cluster/nodes:join",
        json={"host": "127.0.0.1", "token": JOIN_TOKEN, "grpc_port": free_port()},
    )
    assert nobody.status_code == 502
    assert check_problem(nobody.json())["error"] == "remote_core_unavailable"


async def test_bad_join_requests_are_refused(client: httpx.AsyncClient) -> None:
    for body in (
        {"host": "http://127.0.0.1", "token": JOIN_TOKEN},
        {"host": "-127.0.0.1", "token": JOIN_TOKEN},
        {"host": "127.0.0.1", "token": "two words"},
        {"host": "127.0.0.1", "token": ""},
        {"host": "127.0.0.1", "token": JOIN_TOKEN, "grpc_port": 0},
        {"host": "127.0.0.1"},
    ):
        answer = await client.post(f"{API}/system/cluster/nodes:add", json=body)
        assert answer.status_code == 422, body
        assert check_problem(answer.json())["error"] == "validation_error"


async def test_by_default_only_the_cores_own_host_may_be_contacted() -> None:
    settings = Settings(runtime="grpc", grpc_target_raw="10.0.0.5:50051,[::1]:50052")
    assert settings.cluster_join_hosts == ("10.0.0.5", "::1")
    assert Settings(runtime="memory").cluster_join_hosts == ()
    named = Settings(runtime="grpc", cluster_join_hosts_raw="a.example, 10.0.0.9")
    assert named.cluster_join_hosts == ("a.example", "10.0.0.9")
