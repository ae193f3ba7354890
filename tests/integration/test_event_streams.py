"""Live event streams and large histories, against real gateway processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support import GatewayProcess, pipeline_manifest, read_sse

pytestmark = pytest.mark.slow
API = "/api/v1"


@pytest.fixture(scope="module", params=["memory", "grpc", "grpc_legacy"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        tmp_path_factory.mktemp(request.param),
        request.param,
        MN_FAKE_STEP_MS="5",
        MN_API_SSE_HEARTBEAT_SECONDS="0.3",
    )
    yield process.start()
    process.stop()


@pytest.fixture
async def client(server: GatewayProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        yield client


def _long_manifest(messages: int = 30, **extra) -> dict:
    manifest = pipeline_manifest()
    manifest["initial_inputs"] = {"router": [{"n": i} for i in range(messages)]}
    # The worker takes its time, so the job is still running while a client reads it.
    manifest["nodes"][1]["config"] = {"simulate": {"delay_ms": 40}}
    manifest.update(extra)
    return manifest


async def _submit(client: httpx.AsyncClient, manifest: dict) -> str:
    response = await client.post(f"{API}/jobs", json={"manifest": manifest})
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def _ids(events: list[dict]) -> list[int]:
    return [int(e["id"]) for e in events if "id" in e]


async def test_a_stream_follows_the_job_until_it_ends(client: httpx.AsyncClient) -> None:
    job_id = await _submit(client, _long_manifest(10))
    async with client.stream("GET", f"{API}/jobs/{job_id}/events/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = await read_sse(response.aiter_lines())
    assert events[0] == {"retry": "3000"}
    ids = _ids(events)
    assert ids == list(range(len(ids)))
    data = [orjson.loads(e["data"]) for e in events if "id" in e]
    assert data[0]["type"] == "job_pending" and data[-1]["type"] == "job_completed"
    assert events[-1] == {"event": "end", "data": "completed"}
    history = (await client.get(f"{API}/jobs/{job_id}/events")).json()["data"]
    assert data == history


async def test_the_workflow_progress_stream_is_live_until_the_job_ends(
    client: httpx.AsyncClient,
) -> None:
    """As the job page of Web UI 1.2.5 reads it: snapshots as the job moves, and the last
    one once it has ended; here the job is cancelled by another client mid-way."""
    manifest = _long_manifest(3)
    manifest["nodes"][1]["config"] = {"simulate": {"delay_ms": 600_000}}  # never done here
    job_id = await _submit(client, manifest)
    url = f"{API}/jobs/{job_id}/workflow-progress/stream"
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")

        async def cancel_once_running(event: dict, _events: list) -> bool:
            if event.get("event") == "snapshot":
                snapshot = orjson.loads(event["data"])
                if snapshot["agent_count"]["done"] >= 1 and not cancels:
                    # The router took its first message and handed it on: live, and
                    # waiting on the worker.
                    cancels.append(await client.post(f"{API}/jobs/{job_id}/cancel"))
            return False

        cancels: list[httpx.Response] = []

        async with asyncio.timeout(60):
            events = await read_sse(response.aiter_lines(), on_event=cancel_once_running)
    snapshots = [orjson.loads(e["data"]) for e in events if e.get("event") == "snapshot"]
    assert [c.status_code for c in cancels] == [200], [c.text for c in cancels]
    assert len(snapshots) >= 2
    assert snapshots[0]["job_id"] == job_id
    assert any(s["status"] == "running" for s in snapshots)
    assert snapshots[-1]["status"] == "cancelled"
    sequences = [s["sequence"] for s in snapshots]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    assert events[-1] == {"retry": "3600000"}


@pytest.mark.parametrize("resume", ["header", "query"])
async def test_resuming_after_a_dropped_connection_loses_and_repeats_nothing(
    client: httpx.AsyncClient, resume: str
) -> None:
    job_id = await _submit(client, _long_manifest(30))
    url = f"{API}/jobs/{job_id}/events/stream"
    async with client.stream("GET", url) as response:
        first = await read_sse(
            response.aiter_lines(), stop=lambda _e, events: len(_ids(events)) >= 8
        )
    last = _ids(first)[-1]
    headers, params = {}, {}
    if resume == "header":
        headers["Last-Event-ID"] = str(last)
    else:
        params["last_event_id"] = str(last)
    async with client.stream("GET", url, headers=headers, params=params) as response:
        rest = await read_sse(response.aiter_lines())
    ids = _ids(first) + _ids(rest)
    assert ids == list(range(len(ids)))
    assert rest[-1] == {"event": "end", "data": "completed"}
    again = await client.get(url, headers={"Last-Event-ID": str(ids[-1])})
    assert again.status_code == 204, (ids, again.text)


async def test_an_idle_daemon_stream_carries_heartbeats(client: httpx.AsyncClient) -> None:
    job_id = await _submit(client, {**pipeline_manifest(), "daemon": True})
    try:
        async with client.stream("GET", f"{API}/jobs/{job_id}/events/stream") as response:
            events = await asyncio.wait_for(
                read_sse(
                    response.aiter_lines(),
                    stop=lambda e, _all: "heartbeat" in e.get("comments", []),
                ),
                10,
            )
        assert "heartbeat" in events[-1]["comments"]
    finally:
        await client.post(f"{API}/jobs/{job_id}/cancel")


async def test_follow_false_sends_the_history_and_closes(client: httpx.AsyncClient) -> None:
    job_id = await _submit(client, {**pipeline_manifest(), "daemon": True})
    try:
        await asyncio.sleep(0.3)
        response = await client.get(
            f"{API}/jobs/{job_id}/events/stream", params={"follow": "false"}
        )
        events = await read_sse(_lines(response.text))
        ids = _ids(events)
        assert ids == list(range(len(ids))) and len(ids) >= 4
        assert not any(e.get("event") == "end" for e in events)
    finally:
        await client.post(f"{API}/jobs/{job_id}/cancel")


async def _lines(text: str) -> AsyncIterator[str]:
    for line in text.split("\n"):
        yield line.rstrip("\r")


async def test_ndjson_carries_the_same_events(client: httpx.AsyncClient) -> None:
    job_id = await _submit(client, _long_manifest(5))
    async with client.stream(
        "GET", f"{API}/jobs/{job_id}/events/stream", headers={"Accept": "application/x-ndjson"}
    ) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [orjson.loads(line) async for line in response.aiter_lines() if line.strip()]
    assert lines[-1] == {"event": "end", "status": "completed"}
    history = (await client.get(f"{API}/jobs/{job_id}/events")).json()["data"]
    assert lines[:-1] == history


async def test_errors_come_before_the_stream_starts(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/jobs/ghost-1-000000000000/events/stream")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    bad = await client.get(f"{API}/jobs/x/events/stream", headers={"Last-Event-ID": "soon"})
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"


async def _open_streams(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    line = next(li for li in text.splitlines() if li.startswith("mn_api_event_streams_open "))
    return float(line.split()[1])


async def test_a_client_leaving_mid_stream_releases_it(client: httpx.AsyncClient) -> None:
    job_id = await _submit(client, {**pipeline_manifest(), "daemon": True})
    try:
        async with client.stream("GET", f"{API}/jobs/{job_id}/events/stream") as response:
            lines = response.aiter_lines()  # kept, so the connection stays open meanwhile
            await read_sse(lines, stop=lambda _e, events: len(events) >= 3)
            assert await _open_streams(client) == 1
        deadline = time.monotonic() + 10
        while await _open_streams(client) != 0:
            assert time.monotonic() < deadline, "the stream was not released"
            await asyncio.sleep(0.05)
    finally:
        await client.post(f"{API}/jobs/{job_id}/cancel")


async def test_a_hundred_thousand_events_read_page_by_page_match_the_full_read(
    client: httpx.AsyncClient,
) -> None:
    manifest = {
        "manifest_version": "1",
        "graph_id": "large",
        "nodes": [{"node_id": "sink", "agent_type": "aggregator"}],
        "entrypoints": ["sink"],
        "initial_inputs": {"sink": [{"n": i} for i in range(99_995)]},
    }
    job_id = await _submit(client, manifest)
    deadline = time.monotonic() + 120
    while (await client.get(f"{API}/jobs/{job_id}")).json()["job"]["status"] != "completed":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    full = await client.get(f"{API}/jobs/{job_id}/events")
    everything = full.json()
    assert len(everything["data"]) == 100_000 and everything["next_offset"] is None
    pages: list[dict] = []
    offset: int | None = 0
    while offset is not None:
        page = (
            await client.get(
                f"{API}/jobs/{job_id}/events", params={"offset": offset, "limit": 50_000}
            )
        ).json()
        pages.extend(page["data"])
        offset = page["next_offset"]
    assert pages == everything["data"]


def test_logs_name_the_stream_route(server: GatewayProcess) -> None:
    log = Path(server.tmp_path / "api.log").read_text()
    assert "/api/v1/jobs/{job_id}/events/stream" in log


def _core_reads(server: GatewayProcess) -> float:
    """The history reads the gateway has opened: closed StreamEvents calls, and those its
    journal holds open."""
    total = 0.0
    for line in httpx.get(f"{server.base}/metrics").text.splitlines():
        if (
            line.startswith("mn_api_core_calls_total{") and 'rpc="StreamEvents"' in line
        ) or line.startswith("mn_api_history_journal_core_streams "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _watch_until_cancelled(client: httpx.AsyncClient, url: str, after: int) -> list[int]:
    ids: list[int] = []
    try:
        headers = {"Last-Event-ID": str(after)}
        async with client.stream("GET", url, headers=headers) as response:
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    ids.append(int(line[3:]))
    except asyncio.CancelledError:
        pass
    return ids


async def test_many_watchers_and_reconnects_share_one_read_of_the_history(
    client: httpx.AsyncClient, server: GatewayProcess
) -> None:
    """Every watcher of a live job sees each new event, fed from one read of its history:
    the reads the gateway opens do not grow with the watchers or their reconnects."""
    job_id = await _submit(client, {**pipeline_manifest(), "daemon": True})
    url = f"{API}/jobs/{job_id}/events/stream"
    end = -1
    async with asyncio.timeout(20):
        while True:  # the job's start has settled
            history = (await client.get(f"{API}/jobs/{job_id}/events")).json()["data"]
            if len(history) - 1 == end and history[-1]["type"] != "job_pending":
                break
            end = len(history) - 1
            await asyncio.sleep(0.3)
    before = _core_reads(server)
    watchers = [asyncio.create_task(_watch_until_cancelled(client, url, end)) for _ in range(30)]
    await asyncio.sleep(1.0)
    for action in ("pause", "resume", "pause", "resume"):
        assert (await client.post(f"{API}/jobs/{job_id}/{action}")).status_code == 200
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.5)
    for watcher in watchers:
        watcher.cancel()
    seen = await asyncio.gather(*watchers)
    assert all(ids == list(range(end + 1, end + 5)) for ids in seen), seen
    for _ in range(10):  # EventSource reconnects, each resuming a little further back
        async with client.stream("GET", url, headers={"Last-Event-ID": str(end)}) as response:
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    break
    reads = _core_reads(server) - before
    if server.runtime != "grpc_legacy":
        # A following runtime (in process too): one catch-up read and one follower.
        assert reads <= 2, reads
    else:
        # A core that ignores `follow` is polled every half second, by one follower.
        assert reads <= 20, reads
    assert (await client.post(f"{API}/jobs/{job_id}/cancel")).status_code == 200
