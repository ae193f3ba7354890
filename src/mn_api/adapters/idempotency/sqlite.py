"""SqliteIdempotencyStore: keys in one SQLite file, shared by the processes of one host."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from mn_api.adapters.sqlite import SqliteDatabase
from mn_api.application.ports import Claim, IdempotencyStore, StoredAnswer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    answer BLOB,
    expires_at REAL NOT NULL
)
"""


class SqliteIdempotencyStore(IdempotencyStore):
    """Claims are single `INSERT`s inside an immediate transaction, so two processes
    racing on one key cannot both win."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._db = SqliteDatabase(path, _SCHEMA, "idempotency store")
        self._clock = clock

    async def claim(self, key: str, fingerprint: str, lease_seconds: float) -> Claim:
        now = self._clock()

        def work(db: sqlite3.Connection) -> Claim:
            db.execute("DELETE FROM idempotency WHERE key = ? AND expires_at <= ?", (key, now))
            inserted = db.execute(
                "INSERT OR IGNORE INTO idempotency (key, fingerprint, answer, expires_at) "
                "VALUES (?, ?, NULL, ?)",
                (key, fingerprint, now + lease_seconds),
            ).rowcount
            if inserted:
                return Claim(won=True, fingerprint=fingerprint)
            row = db.execute(
                "SELECT fingerprint, answer FROM idempotency WHERE key = ?", (key,)
            ).fetchone()
            return Claim(won=False, fingerprint=row[0], answer=_decode(row[1]))

        return await self._db.transaction(work)

    async def complete(
        self, key: str, fingerprint: str, answer: StoredAnswer, ttl_seconds: float
    ) -> None:
        expires = self._clock() + ttl_seconds
        await self._db.run(
            lambda db: db.execute(
                "UPDATE idempotency SET answer = ?, expires_at = ? WHERE key = ?",
                (_encode(answer), expires, key),
            )
        )

    async def release(self, key: str) -> None:
        await self._db.run(
            lambda db: db.execute(
                "DELETE FROM idempotency WHERE key = ? AND answer IS NULL", (key,)
            )
        )


def _encode(answer: StoredAnswer) -> bytes:
    return orjson.dumps(
        {"status": answer.status, "body": answer.body.decode("latin-1"), "headers": answer.headers}
    )


def _decode(blob: bytes | None) -> StoredAnswer | None:
    if blob is None:
        return None
    data = orjson.loads(blob)
    return StoredAnswer(
        data["status"], data["body"].encode("latin-1"), tuple(tuple(h) for h in data["headers"])
    )
