"""SqliteDatabase: one SQLite file shared by the processes of a host, used off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from mn_api.domain.errors import SharedStateUnavailableError

T = TypeVar("T")


def _setup(db: Statements, schema: str) -> None:
    """WAL and the schema. Switching to WAL takes a lock that SQLite's busy timeout does not
    wait for, so connections opened at the same moment (the first ones of a new file)
    take turns."""
    for attempt in range(50):
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.01 * (attempt + 1))
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)


class Statements:
    """What the stores run on a connection. Each statement runs on a cursor of its own, as
    `Connection.execute` does internally, so that a tracer wrapping the connection's
    cursors sees every statement."""

    __slots__ = ("_connection",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        return self._connection.cursor().execute(sql, parameters)

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        return self._connection.cursor().executemany(sql, rows)

    def executescript(self, script: str) -> sqlite3.Cursor:
        return self._connection.cursor().executescript(script)


class SqliteDatabase:
    """A connection per thread (WAL, so readers never wait for the writer); every call
    runs in a worker thread, and any SQLite failure becomes SharedStateUnavailableError."""

    def __init__(self, path: Path, schema: str, what: str) -> None:
        self._path = Path(path)
        self._schema = schema
        self._what = what
        self._local = threading.local()

    def _db(self) -> Statements:
        db = getattr(self._local, "db", None)
        if db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            db = Statements(sqlite3.connect(self._path, timeout=10, isolation_level=None))
            _setup(db, self._schema)
            self._local.db = db
        return db

    async def run(self, work: Callable[[Statements], T]) -> T:
        def call() -> T:
            try:
                return work(self._db())
            except sqlite3.Error as err:
                raise SharedStateUnavailableError(f"the {self._what} cannot be used") from err

        return await asyncio.to_thread(call)

    async def transaction(self, work: Callable[[Statements], T]) -> T:
        """`work` inside `BEGIN IMMEDIATE`: no other process writes until it commits."""

        def atomic(db: Statements) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await self.run(atomic)
