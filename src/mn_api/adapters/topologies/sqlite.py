"""SqliteTopologyStore: jobs' declared topologies in the host's shared SQLite file."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from mn_api.adapters.sqlite import SqliteDatabase
from mn_api.application.ports import TopologyStore
from mn_api.domain.graph import topology_of

# One B-tree, keyed by job id: a submission writes one row, and nothing else is indexed
# (the purge reads the whole table once a minute, off the loop).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS topologies (
    job_id TEXT PRIMARY KEY,
    topology BLOB NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""


class SqliteTopologyStore(TopologyStore):
    def __init__(
        self, path: Path, ttl_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = SqliteDatabase(path, _SCHEMA, "topology store")
        self._ttl = ttl_seconds
        self._clock = clock

    async def save(self, job_id: str, manifest_json: str) -> None:
        await self.save_many([(job_id, orjson.dumps(topology_of(orjson.loads(manifest_json))))])

    async def save_many(self, topologies: Sequence[tuple[str, bytes]]) -> None:
        expires = self._clock() + self._ttl
        rows = [(job_id, blob, expires) for job_id, blob in topologies]
        await self._db.transaction(
            lambda db: db.executemany(
                "INSERT OR REPLACE INTO topologies (job_id, topology, expires_at) VALUES (?, ?, ?)",
                rows,
            )
        )

    async def load(self, job_id: str) -> Mapping[str, Any] | None:
        now = self._clock()
        row = await self._db.run(
            lambda db: db.execute(
                "SELECT topology FROM topologies WHERE job_id = ? AND expires_at > ?",
                (job_id, now),
            ).fetchone()
        )
        return orjson.loads(row[0]) if row else None

    async def forget(self, job_id: str) -> None:
        await self._db.run(
            lambda db: db.execute("DELETE FROM topologies WHERE job_id = ?", (job_id,))
        )

    async def purge(self) -> int:
        now = self._clock()
        return await self._db.run(
            lambda db: db.execute("DELETE FROM topologies WHERE expires_at <= ?", (now,)).rowcount
        )
