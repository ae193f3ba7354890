"""SqliteWebhookStore: subscriptions, watches and deliveries in the gateway's SQLite file."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from mn_api.adapters.sqlite import SqliteDatabase, Statements
from mn_api.application.ports import WebhookStore
from mn_api.domain.errors import WebhookDeliveryBusyError, WebhookDeliveryNotFoundError
from mn_api.domain.webhooks.records import Delivery, DeliveryState, Subscription, Watch

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_subscriptions_job ON webhook_subscriptions (job_id);
CREATE TABLE IF NOT EXISTS webhook_watches (
    job_id TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL,
    status TEXT,
    owner TEXT,
    available_at REAL NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    event_index INTEGER NOT NULL,
    doc TEXT NOT NULL,
    pending INTEGER NOT NULL,
    owner TEXT,
    available_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_job ON webhook_deliveries (job_id, event_index);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (pending, available_at);
"""


class SqliteWebhookStore(WebhookStore):
    """Claims are `UPDATE`s inside immediate transactions; `available_at` is both the
    time a free row is due and the end of the lease of a held one."""

    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path, _SCHEMA, "webhook store")

    async def subscribe(self, subscriptions: Sequence[Subscription], watch: Watch) -> None:
        def work(db: Statements) -> None:
            db.executemany(
                "INSERT INTO webhook_subscriptions (id, job_id, doc) VALUES (?, ?, ?)",
                [(s.id, s.job_id, _dump(s.as_dict())) for s in subscriptions],
            )
            db.execute(
                "INSERT OR IGNORE INTO webhook_watches "
                "(job_id, cursor, status, owner, available_at, done, updated_at) "
                "VALUES (?, ?, ?, NULL, 0, 0, 0)",
                (watch.job_id, watch.cursor, watch.status),
            )

        await self._db.transaction(work)

    async def subscriptions(self, job_id: str) -> list[Subscription]:
        rows = await self._db.run(
            lambda db: db.execute(
                "SELECT doc FROM webhook_subscriptions WHERE job_id = ? ORDER BY rowid", (job_id,)
            ).fetchall()
        )
        return [Subscription.from_dict(orjson.loads(row[0])) for row in rows]

    async def claim_watches(
        self, owner: str, now: float, lease_until: float, limit: int
    ) -> list[Watch]:
        def work(db: Statements) -> list[Watch]:
            rows = db.execute(
                "SELECT job_id, cursor, status FROM webhook_watches "
                "WHERE done = 0 AND available_at <= ? ORDER BY available_at LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE webhook_watches SET owner = ?, available_at = ?, updated_at = ? "
                "WHERE job_id = ?",
                [(owner, lease_until, now, row[0]) for row in rows],
            )
            return [Watch(*row) for row in rows]

        return await self._db.transaction(work)

    async def advance_watch(self, watch: Watch, owner: str, lease_until: float) -> bool:
        changed = await self._db.run(
            lambda db: (
                db.execute(
                    "UPDATE webhook_watches SET cursor = ?, status = ?, available_at = ? "
                    "WHERE job_id = ? AND owner = ? AND done = 0",
                    (watch.cursor, watch.status, lease_until, watch.job_id, owner),
                ).rowcount
            )
        )
        return changed == 1

    async def end_watch(self, job_id: str, owner: str, retry_at: float | None) -> None:
        await self._db.run(
            lambda db: db.execute(
                "UPDATE webhook_watches SET owner = NULL, done = ?, available_at = ?, "
                "updated_at = ? WHERE job_id = ? AND owner = ?",
                (int(retry_at is None), retry_at or 0, time.time(), job_id, owner),
            )
        )

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        await self._db.run(
            lambda db: db.executemany(
                "INSERT OR IGNORE INTO webhook_deliveries "
                "(id, job_id, event_index, doc, pending, owner, available_at, updated_at) "
                "VALUES (?, ?, ?, ?, 1, NULL, ?, ?)",
                [
                    (
                        d.id,
                        d.job_id,
                        d.event_index,
                        _dump(d.as_dict()),
                        d.next_attempt_at or d.created_at,
                        d.created_at,
                    )
                    for d in deliveries
                ],
            )
        )

    async def claim_deliveries(
        self, owner: str, now: float, lease_until: float, limit: int
    ) -> list[Delivery]:
        def work(db: Statements) -> list[Delivery]:
            rows = db.execute(
                "SELECT id, doc FROM webhook_deliveries WHERE pending = 1 AND available_at <= ? "
                "ORDER BY available_at LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE webhook_deliveries SET owner = ?, available_at = ? WHERE id = ?",
                [(owner, lease_until, row[0]) for row in rows],
            )
            return [Delivery.from_dict(orjson.loads(row[1])) for row in rows]

        return await self._db.transaction(work)

    async def claim_delivery(
        self, job_id: str, delivery_id: str, owner: str, now: float, lease_until: float
    ) -> Delivery:
        def work(db: Statements) -> Delivery:
            row = db.execute(
                "SELECT doc, owner, available_at FROM webhook_deliveries "
                "WHERE id = ? AND job_id = ?",
                (delivery_id, job_id),
            ).fetchone()
            if row is None:
                raise WebhookDeliveryNotFoundError(job_id, delivery_id)
            if row[1] is not None and row[2] > now:
                raise WebhookDeliveryBusyError("this delivery is being sent right now")
            db.execute(
                "UPDATE webhook_deliveries SET owner = ?, available_at = ? WHERE id = ?",
                (owner, lease_until, delivery_id),
            )
            return Delivery.from_dict(orjson.loads(row[0]))

        return await self._db.transaction(work)

    async def save_delivery(self, delivery: Delivery, owner: str) -> bool:
        pending = delivery.state is DeliveryState.PENDING
        changed = await self._db.run(
            lambda db: (
                db.execute(
                    "UPDATE webhook_deliveries SET doc = ?, pending = ?, owner = NULL, "
                    "available_at = ?, updated_at = ? WHERE id = ? AND owner = ?",
                    (
                        _dump(delivery.as_dict()),
                        int(pending),
                        delivery.next_attempt_at or 0,
                        delivery.attempts[-1].at if delivery.attempts else delivery.created_at,
                        delivery.id,
                        owner,
                    ),
                ).rowcount
            )
        )
        return changed == 1

    async def release_delivery(self, delivery_id: str, owner: str) -> None:
        await self._db.run(
            lambda db: db.execute(
                "UPDATE webhook_deliveries SET owner = NULL, available_at = 0 "
                "WHERE id = ? AND owner = ?",
                (delivery_id, owner),
            )
        )

    async def deliveries(self, job_id: str) -> list[Delivery]:
        rows = await self._db.run(
            lambda db: db.execute(
                "SELECT doc FROM webhook_deliveries WHERE job_id = ? ORDER BY event_index, rowid",
                (job_id,),
            ).fetchall()
        )
        return [Delivery.from_dict(orjson.loads(row[0])) for row in rows]

    async def purge(self, before: float) -> None:
        def work(db: Statements) -> None:
            db.execute(
                "DELETE FROM webhook_deliveries WHERE pending = 0 AND updated_at < ?", (before,)
            )
            db.execute(
                "DELETE FROM webhook_watches WHERE done = 1 AND updated_at < ? AND job_id NOT IN "
                "(SELECT job_id FROM webhook_deliveries WHERE pending = 1)",
                (before,),
            )
            db.execute(
                "DELETE FROM webhook_subscriptions WHERE job_id NOT IN "
                "(SELECT job_id FROM webhook_watches)"
            )

        await self._db.transaction(work)


def _dump(data: object) -> str:
    return orjson.dumps(data).decode()
