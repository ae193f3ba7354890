"""SqliteIdempotencyStore: keys in one SQLite file, shared by the processes of one host."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson

from mn_api.adapters.sqlite import SqliteDatabase, Statements
from mn_api.application.ports import Claim, IdempotencyStore, StoredAnswer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    answer BLOB,
    expires_at REAL NOT NULL
)
"""
# What `answer` holds for a request whose outcome is unknown; NULL is a claim in flight.
_UNKNOWN = b'{"unknown":true}'


class SqliteIdempotencyStore(IdempotencyStore):
    """Claims are single `INSERT`s inside an immediate transaction, so two processes
    racing on one key cannot both win. A claim's `expires_at` is its lease; an answer's,
    its time to live."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._db = SqliteDatabase(path, _SCHEMA, "idempotency store")
        self._clock = clock

    async def claim(
        self, key: str, fingerprint: str, lease_seconds: float, ttl_seconds: float
    ) -> Claim:
        now = self._clock()

        def work(db: Statements) -> Claim:
            db.execute(
                "DELETE FROM idempotency WHERE key = ? AND expires_at <= ? AND answer IS NOT NULL",
                (key, now),
            )
            # A claim whose holder let its lease run out may have reached the runtime.
            db.execute(
                "UPDATE idempotency SET answer = ?, expires_at = ? "
                "WHERE key = ? AND expires_at <= ? AND answer IS NULL",
                (_UNKNOWN, now + ttl_seconds, key, now),
            )
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
            if row[1] == _UNKNOWN:
                return Claim(won=False, fingerprint=row[0], unknown=True)
            return Claim(won=False, fingerprint=row[0], answer=_decode(row[1]))

        return await self._db.transaction(work)

    async def complete(
        self, key: str, fingerprint: str, answer: StoredAnswer, ttl_seconds: float
    ) -> None:
        await self._keep(key, fingerprint, _encode(answer), ttl_seconds)

    async def mark_unknown(self, key: str, fingerprint: str, ttl_seconds: float) -> None:
        await self._keep(key, fingerprint, _UNKNOWN, ttl_seconds)

    async def _keep(self, key: str, fingerprint: str, answer: bytes, ttl_seconds: float) -> None:
        """Write the record whether or not the claim is still there (a store restarted
        empty has lost it; the record must still be kept)."""
        expires = self._clock() + ttl_seconds
        await self._db.run(
            lambda db: db.execute(
                "INSERT INTO idempotency (key, fingerprint, answer, expires_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "answer = excluded.answer, expires_at = excluded.expires_at",
                (key, fingerprint, answer, expires),
            )
        )

    async def release(self, key: str) -> None:
        await self._db.run(
            lambda db: db.execute(
                "DELETE FROM idempotency WHERE key = ? AND answer IS NULL", (key,)
            )
        )

    async def purge(self, ttl_seconds: float) -> int:
        now = self._clock()

        def work(db: Statements) -> int:
            gone = db.execute(
                "DELETE FROM idempotency WHERE expires_at <= ? AND answer IS NOT NULL", (now,)
            ).rowcount
            db.execute(
                "UPDATE idempotency SET answer = ?, expires_at = ? "
                "WHERE expires_at <= ? AND answer IS NULL",
                (_UNKNOWN, now + ttl_seconds, now),
            )
            return gone

        return await self._db.transaction(work)


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
