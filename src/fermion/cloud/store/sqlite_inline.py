"""SQLite on the event loop's own thread, behind the interface SQLAlchemy expects of aiosqlite.

aiosqlite runs every cursor call (execute, fetch, close...) on a helper thread and wakes the
event loop for each result: a key upload, some ten statements, costs ~80 thread hand-offs, and
on a busy machine each hand-off waits for the scheduler. That, not SQLite, capped the API's
throughput (bench/api). Statements against a local WAL file take microseconds, so running them
inline is cheaper than any hand-off. It blocks the loop only while SQLite works, and for no
lock waits in practice: readers never wait in WAL mode, and writers of this process already
queue on the store's asyncio lock before ``BEGIN IMMEDIATE`` (another *process* writing at the
same moment, e.g. ``fermion admin``, can make one write wait up to ``busy_timeout``).

Used through ``create_async_engine(..., async_creator=connect_factory(path))`` with the
``sqlite+aiosqlite`` dialect, which then never starts an aiosqlite thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any


class _Cursor:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
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


def connect_factory(path: str) -> Callable[[], Awaitable[InlineConnection]]:
    """An ``async_creator`` for ``create_async_engine`` opening the SQLite file ``path``."""

    async def connect() -> InlineConnection:
        # The pool may hand a connection to another task, never to another thread.
        return InlineConnection(sqlite3.connect(path, check_same_thread=False))

    return connect
