"""Idempotency-Key on bad days: the store dies, freezes or comes back empty, the core's
answer is lost. Whatever happens, a retry never starts a second job, and nobody is told
something false.

Each case runs on one host's SQLite file and on a real Redis server this test owns.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from mn_api.adapters.idempotency.redis import RedisIdempotencyStore
from mn_api.adapters.idempotency.sqlite import SqliteIdempotencyStore
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.application.ports import JobAck
from mn_api.domain.errors import (
    RuntimeTimeoutError,
    RuntimeUnavailableError,
    SharedStateUnavailableError,
)
from tests.support import RedisServer, asgi_client, eventually, pipeline_manifest

API = "/api/v1"
BODY = {"manifest": pipeline_manifest()}


class Core:
    """The in-memory runtime, with a hook run after each submission it accepted."""

    def __init__(self) -> None:
        self.runtime = InMemoryRuntime(step_seconds=0.002)
        self.after_submit: Callable[[JobAck], Awaitable[None]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runtime, name)

    async def submit_job(self, manifest_json: str, payloads: Any) -> JobAck:
        ack = await self.runtime.submit_job(manifest_json, payloads)
        if self.after_submit is not None:
            await self.after_submit(ack)
        return ack

    def jobs(self) -> int:
        return len(self.runtime._jobs)


class Store:
    """Where the keys live, and how this test breaks it."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.redis = RedisServer().start() if kind == "redis" else None
        self.broken = False

    def settings(self, settings_factory: Callable[..., Any]) -> Any:
        extra = {"redis_url": self.redis.url} if self.redis else {}
        return settings_factory(bundle_dir=self.tmp_path / "state", **extra)

    def kill(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        else:
            self.broken = True

    def restart(self) -> None:
        """Redis comes back empty (no persistence); the SQLite file comes back as it was."""
        if self.redis is not None:
            self.redis.start()
        else:
            self.broken = False

    def freeze(self) -> None:
        if self.redis is not None:
            self.redis.process.send_signal(signal.SIGSTOP)
        else:
            self.broken = True

    def thaw(self) -> None:
        if self.redis is not None:
            self.redis.process.send_signal(signal.SIGCONT)
        else:
            self.broken = False

    def stop(self) -> None:
        if self.redis is not None:
            self.thaw()
            self.redis.stop()


class Breakable:
    """A store adapter that fails as an unreachable store does while `store.broken`."""

    def __init__(self, inner: Any, store: Store) -> None:
        self._inner = inner
        self._store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._store.broken:
                raise SharedStateUnavailableError("the idempotency store cannot be used")
            return await method(*args, **kwargs)

        return call


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "redis" and not RedisServer.available():
        pytest.skip("redis-server is not installed (make test installs it)")
    kept = Store(request.param, tmp_path)
    yield kept
    kept.stop()


@pytest.fixture
def core() -> Core:
    return Core()


@pytest.fixture
async def replicas(
    store: Store, core: Core, settings_factory: Callable[..., Any]
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two gateways sharing the store and the core, so that what one recorded is seen by
    the other (not only remembered in its own process)."""
    settings = store.settings(settings_factory)
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            if store.redis is not None:
                redis = Redis.from_url(store.redis.url, socket_timeout=2, socket_connect_timeout=2)
                stack.push_async_callback(redis.aclose)
                inner: Any = RedisIdempotencyStore(redis)
            else:
                inner = SqliteIdempotencyStore(Path(settings.bundle_dir) / "state.sqlite3")
            client = await stack.enter_async_context(
                asgi_client(
                    settings, core, lifespan=True, idempotency_store=Breakable(inner, store)
                )
            )
            clients.append(client)
        yield clients


async def post(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post(f"{API}/jobs", json=BODY, headers={"Idempotency-Key": key})


@pytest.mark.parametrize("fault", ["killed", "frozen"])
async def test_an_answer_the_store_could_not_take_is_still_the_callers(
    replicas: list[httpx.AsyncClient], store: Store, core: Core, fault: str
) -> None:
    async def break_store(_ack: JobAck) -> None:
        store.kill() if fault == "killed" else store.freeze()

    core.after_submit = break_store
    first = await post(replicas[0], "k-store")
    assert first.status_code == 201, first.text  # the runtime's true answer, not 503
    core.after_submit = None
    # Meanwhile the gateway that answered still replays it from what it holds.
    again = await post(replicas[0], "k-store")
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    store.restart() if fault == "killed" else store.thaw()
    gateway = replicas[0]._transport.app.state.services.services.idempotency  # type: ignore[attr-defined]
    await eventually(lambda: gateway.waiting == 0, within=20)  # written once the store is back
    elsewhere = await post(replicas[1], "k-store")
    assert elsewhere.status_code == 201, elsewhere.text
    assert elsewhere.json()["job_id"] == first.json()["job_id"]
    assert elsewhere.headers["idempotent-replayed"] == "true"
    assert core.jobs() == 1


async def test_an_answer_lost_after_the_core_acted_is_never_run_again(
    replicas: list[httpx.AsyncClient], core: Core
) -> None:
    async def lose_the_answer(_ack: JobAck) -> None:
        raise RuntimeTimeoutError("the runtime did not answer in time")

    core.after_submit = lose_the_answer
    first = await post(replicas[0], "k-timeout")
    assert first.status_code == 504
    core.after_submit = None
    for client in replicas:
        again = await post(client, "k-timeout")
        assert again.status_code == 409, again.text
        assert again.json()["error"] == "idempotency_outcome_unknown"
        assert "new key" in again.json()["detail"]
    assert core.jobs() == 1


async def test_a_request_that_never_left_may_be_sent_again(
    replicas: list[httpx.AsyncClient], core: Core
) -> None:
    original = core.runtime.submit_job

    async def refuse(*_args: Any) -> JobAck:
        raise RuntimeUnavailableError("the runtime cannot be reached", may_have_run=False)

    core.runtime.submit_job = refuse  # type: ignore[method-assign]
    first = await post(replicas[0], "k-down")
    assert first.status_code == 503
    core.runtime.submit_job = original  # type: ignore[method-assign]
    again = await post(replicas[1], "k-down")
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert core.jobs() == 1


async def test_a_caller_that_leaves_mid_call_leaves_an_unknown_outcome(
    replicas: list[httpx.AsyncClient], core: Core
) -> None:
    entered = asyncio.Event()

    async def hang(_ack: JobAck) -> None:
        entered.set()
        await asyncio.Event().wait()

    core.after_submit = hang
    call = asyncio.create_task(post(replicas[0], "k-gone"))
    await entered.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    core.after_submit = None
    again = await post(replicas[1], "k-gone")
    assert again.status_code == 409 and again.json()["error"] == "idempotency_outcome_unknown"
    assert core.jobs() == 1
