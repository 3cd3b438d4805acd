"""SQLite on the event loop's own thread, behind the interface SQLAlchemy expects of aiosqlite.

aiosqlite runs every cursor call (execute, fetch, close...) on a helper thread and wakes the
event loop for each result: a key upload, some ten statements, costs ~80 thread hand-offs, and
on a busy machine each hand-off waits for the scheduler. That, not SQLite, capped the API's
throughput (bench/api). Statements against a local WAL file take microseconds, so running them
inline is cheaper than any hand-off. It blocks the loop only while SQLite works, and for no
lock waits in practice: readers never wait in WAL mode, and writers of this process already
queue on the store's asyncio lock before ``BEGIN IMMEDIATE`` (another *process* writing at the
same moment, e.g. ``fermion admin`` or another ``fermion serve --workers`` process, holds the
lock: ``BEGIN IMMEDIATE`` then waits with ``asyncio.sleep`` between tries, see
``begin_immediate``, so the loop keeps serving while it waits).

Used through ``create_async_engine(..., async_creator=connect_factory(path))`` with the
``sqlite+aiosqlite`` dialect, which then never starts an aiosqlite thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

_BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"
BUSY_TIMEOUT_MS = 30_000
# Every connection the cloud opens: WAL (readers never wait for the writer), foreign keys on,
# and synchronous=NORMAL, which in WAL mode survives a process crash (what a SIGKILL is); only a
# power cut can lose the last commits, never corrupt the file.
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
)
# Another process holds the lock for one transaction, a few ms at most (its key uploads commit
# together: ``store.direct.GroupCommit``); sleeping longer than that leaves the file idle while
# requests queue up here (with the former 20 ms cap a waiting process could sleep up to 20 ms
# past the moment the lock came free). A try is one failed lock attempt, microseconds.
_FIRST_WAIT = 0.0005
_LONGEST_WAIT = 0.002


async def begin_immediate(conn: sqlite3.Connection, timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """``BEGIN IMMEDIATE``, waiting for another process's write lock without blocking the loop.

    SQLite's own busy handler sleeps in the calling thread (1, 2, 5, 10... ms), which here is
    the event loop's: with several ``fermion serve`` processes sharing the file, every request of
    the waiting process would stall. So the busy timeout is 0 for this one statement, and the
    wait is ``asyncio.sleep`` with a short, growing back-off; after ``timeout_ms`` the last
    "database is locked" error is raised, as the busy handler would have.
    """
    conn.execute("PRAGMA busy_timeout=0")
    try:
        wait = _FIRST_WAIT
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                conn.execute(_BEGIN_IMMEDIATE)
                return
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(wait)
            wait = min(wait * 2, _LONGEST_WAIT)
    finally:
        conn.execute(f"PRAGMA busy_timeout={timeout_ms}")


class _Cursor:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
        if sql == _BEGIN_IMMEDIATE:
            await begin_immediate(self._cursor.connection)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> _Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    async def nextset(self) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _Immediate:
    """Stands in for aiosqlite's work queue, which SQLAlchemy uses to set isolation_level."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    """The slice of ``aiosqlite.Connection`` that SQLAlchemy's aiosqlite dialect calls."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._connection = conn  # truthy while open; SQLAlchemy checks it before commit
        self._tx = _Immediate()

    def cursor(self) -> _Cursor:
        return _Cursor(self._conn.cursor())

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._conn.close()
            self._connection = None

    def stop(self) -> None:
        if self._connection is not None:
            self._conn.close()
            self._connection = None

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._conn.isolation_level = value


def open_writer(path: str) -> sqlite3.Connection:
    """A plain connection for ``store.direct`` (autocommit; transactions begun explicitly)."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


def connect_factory(path: str) -> Callable[[], Awaitable[InlineConnection]]:
    """An ``async_creator`` for ``create_async_engine`` opening the SQLite file ``path``."""

    async def connect() -> InlineConnection:
        # The pool may hand a connection to another task, never to another thread.
        return InlineConnection(sqlite3.connect(path, check_same_thread=False))

    return connect
