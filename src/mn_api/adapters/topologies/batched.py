"""BatchedTopologyStore: topologies written behind the answer, many in one write.

Keeping a topology is best effort (a job's graph still shows what its events tell), so a
submission need not wait for its own write: the topology is parsed at once, read back from
memory until it is written, and written with the others that came meanwhile in one
transaction (SQLite) or one pipeline (Redis), shortly after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

import orjson

from mn_api.application.ports import TopologyStore
from mn_api.domain.errors import DomainError
from mn_api.domain.graph import topology_of

log = logging.getLogger("mn_api.jobs")

# How long a topology may wait for the others that come after it.
GATHER_SECONDS = 0.2


class BatchedTopologyStore(TopologyStore):
    def __init__(self, inner: TopologyStore, gather_seconds: float = GATHER_SECONDS) -> None:
        self._inner = inner
        self._gather = gather_seconds
        self._pending: dict[str, bytes] = {}
        self._writer: asyncio.Task[None] | None = None

    async def save(self, job_id: str, manifest_json: str) -> None:
        self._pending[job_id] = orjson.dumps(topology_of(orjson.loads(manifest_json)))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_soon())

    async def save_many(self, topologies: Sequence[tuple[str, bytes]]) -> None:
        await self._inner.save_many(topologies)

    async def load(self, job_id: str) -> Mapping[str, Any] | None:
        blob = self._pending.get(job_id)
        if blob is not None:
            return orjson.loads(blob)
        return await self._inner.load(job_id)

    async def forget(self, job_id: str) -> None:
        self._pending.pop(job_id, None)
        await self._inner.forget(job_id)

    async def purge(self) -> int:
        return await self._inner.purge()

    async def flush(self) -> None:
        """Write what waits now."""
        batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            await self._inner.save_many(list(batch.items()))
        except DomainError:
            log.warning("%d topologies could not be kept", len(batch))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with suppress(asyncio.CancelledError):
                await self._writer
        await self.flush()

    async def _write_soon(self) -> None:
        await asyncio.sleep(self._gather)
        await self.flush()
