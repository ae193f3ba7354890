"""An operation's events followed live over HTTP (a real gateway in front of mn-fake-core
1.2.31), and the stream resumed by sequence after the client left."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest

from tests.support import CORE_CREDENTIALS, FakeCoreProcess, GatewayProcess, free_port, read_sse

pytestmark = pytest.mark.slow
API = "/api/v1"
MN2 = "mn2@127.0.0.1"
# A batch job: a drain leaves it to finish until the drain's deadline, then moves it.
BATCH = {
    "manifest_version": "1",
    "graph_id": "batch",
    "daemon": True,
    "nodes": [
        {"node_id": "a", "agent_type": "router"},
        {"node_id": "b", "agent_type": "router"},
        {"node_id": "c", "agent_type": "aggregator"},
    ],
    "edges": [
        {"from_node": "a", "to_node": "b", "message_type": "task"},
        {"from_node": "b", "to_node": "c", "message_type": "task"},
    ],
    "entrypoints": ["a"],
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    first, second = free_port(), free_port()
    core = FakeCoreProcess(
        first, "--release", "1.2.31", "--ports", f"{first},{second}", *CORE_CREDENTIALS
    ).start()
    process = GatewayProcess(
        tmp_path_factory.mktemp("operations"),
        "grpc",
        core=core,
        MN_API_SSE_HEARTBEAT_SECONDS="0.3",
    )
    try:
        yield process.start()
    finally:
        process.stop()
        core.stop()


@pytest.fixture
async def client(gateway: GatewayProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.base, timeout=60) as client:
        yield client


async def _read(client: httpx.AsyncClient, url: str, stop=None, **headers: str) -> list[dict]:
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        return await read_sse(response.aiter_lines(), stop=stop)


async def test_a_waiting_operation_is_followed_and_resumed_by_sequence(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        answer = await client.post(f"{API}/jobs", json={"manifest": BATCH})
        assert answer.status_code == 201, answer.text
    # A one second deadline: the batch jobs wait, then the core's recovery pass moves them.
    drain = await client.post(f"{API}/nodes/{MN2}/drain", json={"deadline_ms": 1000})
    assert drain.status_code == 200, drain.text
    operation_id = drain.json()["operation_id"]
    url = f"{API}/operations/{operation_id}/events"

    # The client leaves after the first event that says the operation waits.
    first = await _read(
        client, url, stop=lambda event, _: event.get("event") == "operation_deferred"
    )
    numbered = [e for e in first if "id" in e]
    assert [int(e["id"]) for e in numbered] == list(range(1, len(numbered) + 1))
    assert numbered[0]["event"] == "operation_created"
    deferred = orjson.loads(numbered[-1]["data"])
    assert deferred["status"] == "waiting"
    assert deferred["counters"]["deferred"] >= 1

    # Back with the last sequence it saw: what follows, live, until the operation ends.
    rest = await _read(client, url, **{"Last-Event-ID": numbered[-1]["id"]})
    resumed = [e for e in rest if "id" in e]
    assert [int(e["id"]) for e in resumed] == list(
        range(len(numbered) + 1, len(numbered) + 1 + len(resumed))
    )
    assert resumed[-1]["event"] == "operation_completed"
    # While the operation waited, comment lines kept the connection open.
    assert any("heartbeat" in e.get("comments", ()) for e in rest)
    document = (await client.get(f"{API}/operations/{operation_id}")).json()
    assert document["status"] in ("completed", "completed_with_failures")
    assert (await client.get(url, headers={"Last-Event-ID": resumed[-1]["id"]})).status_code == 204
