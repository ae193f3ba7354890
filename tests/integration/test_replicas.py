"""Several gateway processes acting as one: through Redis, or through one host's disk."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import (
    FakeCoreProcess,
    GatewayProcess,
    RedisServer,
    make_zip,
    pipeline_manifest,
)

pytestmark = pytest.mark.slow
API = "/api/v1"
MANIFEST = (
    b'{"manifest_version": "1", "graph_id": "bundled", '
    b'"nodes": [{"node_id": "a", "agent_type": "sensor"}], "entrypoints": ["a"]}'
)


@pytest.fixture
def replicas(
    tmp_path: Path, core: FakeCoreProcess, redis_url: str
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateways on different hosts' disks, sharing only Redis and the core."""
    pair = [
        GatewayProcess(
            tmp_path / name,
            "grpc",
            core=core,
            MN_REDIS_URL=redis_url,
            MN_API_BUNDLE_DIR=str(tmp_path / name / "bundles"),
        )
        for name in ("a", "b")
    ]
    for gateway in pair:
        (gateway.tmp_path).mkdir()
        gateway.start()
    yield pair[0], pair[1]
    for gateway in pair:
        gateway.stop()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[GatewayProcess]:
    """One gateway serving through two worker processes, without Redis."""
    gateway = GatewayProcess(tmp_path, "memory", args=("--workers", "2"), MN_FAKE_STEP_MS="2")
    yield gateway.start()
    gateway.stop()


async def _upload(client: httpx.AsyncClient, base: str) -> httpx.Response:
    return await client.post(
        f"{base}{API}/bundles/upload",
        files={"bundle": ("b.zip", make_zip({"manifest.json": MANIFEST}))},
    )


async def _same_key_everywhere(client: httpx.AsyncClient, bases: list[str]) -> list[httpx.Response]:
    body = {"manifest": pipeline_manifest()}
    return await asyncio.gather(
        *(
            client.post(f"{base}{API}/jobs", json=body, headers={"Idempotency-Key": "once"})
            for base in bases
        )
    )


def _exactly_one_job(answers: list[httpx.Response]) -> None:
    fresh = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    assert len(fresh) == 1, [(a.status_code, a.text) for a in answers]
    for answer in answers:
        if answer is fresh[0]:
            continue
        assert answer.status_code in (201, 409), answer.text
        if answer.status_code == 201:
            assert answer.headers["idempotent-replayed"] == "true"
            assert answer.json() == fresh[0].json()
        else:
            assert answer.json()["error"] == "idempotency_key_in_flight"


async def test_replicas_share_bundles_and_keys_through_redis(replicas: tuple) -> None:
    a, b = replicas
    async with httpx.AsyncClient(timeout=30) as client:
        uploaded = await _upload(client, a.base)
        assert uploaded.status_code == 201
        submitted = await client.post(
            f"{b.base}{API}/jobs", json={"bundle_id": uploaded.json()["bundle_id"]}
        )
        assert submitted.status_code == 201, submitted.text

        answers = await _same_key_everywhere(client, [a.base, b.base] * 3)
        _exactly_one_job(answers)
        jobs = (await client.get(f"{a.base}{API}/jobs")).json()["data"]
        assert len(jobs) == 2  # the bundle's job and exactly one keyed job


async def test_workers_of_one_host_share_bundles_and_keys_on_disk(
    workers: GatewayProcess,
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        uploads = await asyncio.gather(*(_upload(client, workers.base) for _ in range(6)))
        ids = [u.json()["bundle_id"] for u in uploads]
        submits = await asyncio.gather(
            *(client.post(f"{workers.base}{API}/jobs", json={"bundle_id": i}) for i in ids * 2)
        )
        assert all(s.status_code == 201 for s in submits), [s.text for s in submits]

        answers = await _same_key_everywhere(client, [workers.base] * 8)
        _exactly_one_job(answers)
        listed = (await client.get(f"{workers.base}{API}/jobs", params={"limit": 100})).json()
        assert len(listed["data"]) == 13
        # Every worker answers from the same runtime.
        seen = {
            len(
                (await client.get(f"{workers.base}{API}/jobs", params={"limit": 100})).json()[
                    "data"
                ]
            )
            for _ in range(10)
        }
        assert seen == {13}


async def test_redis_going_away_gives_503_not_a_hang(tmp_path: Path, core: FakeCoreProcess) -> None:
    redis = RedisServer().start()
    gateway = GatewayProcess(
        tmp_path, "grpc", core=core, MN_REDIS_URL=redis.url, MN_API_RATE_LIMIT="1000/second"
    )
    gateway.start()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await _upload(client, gateway.base)).status_code == 201
            redis.stop()
            started = time.monotonic()
            for answer in (
                await _upload(client, gateway.base),
                await client.post(
                    f"{gateway.base}{API}/jobs",
                    headers={"Idempotency-Key": "k"},
                    json={"manifest": pipeline_manifest()},
                ),
                await client.get(f"{gateway.base}{API}/jobs"),
            ):
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"] == "shared_state_unavailable"
                assert answer.headers["retry-after"]
            assert time.monotonic() - started < 15
            assert (await client.get(f"{gateway.base}{API}/health")).status_code == 200
    finally:
        gateway.stop()
        redis.stop()


async def test_metrics_count_every_workers_requests(workers: GatewayProcess) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(20):
            assert (await client.get(f"{workers.base}{API}/system/summary")).status_code == 200
        line = (
            'mn_api_http_requests_total{method="GET",route="/api/v1/system/summary",status="200"}'
        )
        for _ in range(6):  # whichever worker answers the scrape reports all of them
            text = (await client.get(f"{workers.base}/metrics")).text
            counts = [float(li.split()[-1]) for li in text.splitlines() if li.startswith(line)]
            assert counts == [20.0]


def _workers_of(pid: int) -> set[int]:
    """The worker processes of a gateway (not its shared core)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = set()
    for child in map(int, children):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"multiprocessing.spawn" in command:
            found.add(child)
    return found


def _until(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time given"
        time.sleep(0.1)


def test_the_log_says_when_workers_start_die_are_replaced_and_stop(
    workers: GatewayProcess,
) -> None:
    log = workers.tmp_path / "api.log"
    parent = workers.process.pid
    _until(lambda: len(_workers_of(parent)) == 2)
    _until(lambda: log.read_text().count("Application startup complete") == 2)
    first = _workers_of(parent)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    seen: dict[str, set[int]] = {}

    def replaced() -> bool:
        # One reading of the workers, kept: the one that met the condition is used.
        seen["workers"] = _workers_of(parent)
        return len(seen["workers"]) == 2 and victim not in seen["workers"]

    _until(replaced)
    (replacement,) = seen["workers"] - first
    _until(lambda: log.read_text().count("Application startup complete") == 3)
    workers.stop()

    text = log.read_text()
    assert f"Started parent process [{parent}]" in text
    assert f"Child process [{victim}] died" in text
    assert f"Started server process [{replacement}]" in text
    # Each worker alive at the stop says so to the end, and so does the supervisor.
    for pid in (first - {victim}) | {replacement}:
        assert f"Finished server process [{pid}]" in text
    assert text.count("Application shutdown complete") == 2
    assert f"Stopping parent process [{parent}]" in text
