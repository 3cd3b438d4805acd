"""One engine and one connection pool per process, and the two kinds of session the cloud uses.

SQLite allows one writer at a time. A deferred transaction that reads and then writes can fail at
once with "database is locked" when another writer got there first, without waiting at all, so
every write transaction here starts with ``BEGIN IMMEDIATE`` (it waits for another process's
lock without blocking the loop: ``sqlite_inline.begin_immediate``) and, within one process,
writers queue on an asyncio lock instead of spinning on the file lock. Key uploads go further
(``Store.grouped_write``): those that queue up commit together, one transaction per turn on the
lock instead of one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from fermion.cloud.store.direct import (
    GroupCommit,
    Runner,
    SessionRunner,
    pooled_reads,
    pooled_transaction,
    sqlite_reads,
    sqlite_transaction,
)
from fermion.cloud.store.sqlite_inline import PRAGMAS, open_writer

_BEGIN_OPTION = "fermion_begin"
T = TypeVar("T")


def _sqlite_file(url: str, kwargs: dict[str, Any]) -> bool:
    """Whether this SQLite database is a file the store may open plain sqlite3 connections to
    (the direct path: ``store.direct``), beside the engine's."""
    database = make_url(url).database
    return bool(database) and database != ":memory:" and "async_creator" not in kwargs


def private_sqlite_file(url: str) -> None:
    """The SQLite file of ``url`` readable by its owner only (0600), made so before SQLite
    first creates it: it holds every token hash, password hash and key. SQLite gives its
    ``-wal`` and ``-shm`` files the database file's mode; files left by an older version are
    tightened here too."""
    database = make_url(url).database if url.startswith("sqlite") else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=False, **kwargs)
    engine = create_async_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (see the begin hook) instead of the driver's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


class Store:
    """The database: an engine, its pool, and read/write sessions."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # Hot paths run on the driver connection where we know the driver (see store.direct).
        self._direct = (
            _sqlite_file(url, engine_kwargs)
            if self.is_sqlite
            else url.startswith("postgresql+asyncpg")
        )
        # SQLite: writes of this process take turns anyway (the write lock), so the direct path
        # keeps one connection of its own instead of a pool checkout per transaction.
        self._sqlite_writer: sqlite3.Connection | None = None
        self._sqlite_reader: sqlite3.Connection | None = None
        self.compiled_cache: dict[Any, Any] = {}  # statement -> store.direct.Compiled
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._group = (
            GroupCommit(self, self._write_lock, self._writer)
            if self._direct and self._write_lock is not None
            else None
        )

    def _writer(self) -> sqlite3.Connection:
        if self._sqlite_writer is None:
            self._sqlite_writer = open_writer(make_url(self.url).database or "")
        return self._sqlite_writer

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; nothing it does is committed."""
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose changes commit together on a clean exit and roll back on an error."""
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._sessions() as session:
            await session.connection(execution_options={_BEGIN_OPTION: "IMMEDIATE"})
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()

    @asynccontextmanager
    async def direct_write(self) -> AsyncIterator[Runner]:
        """Like ``write``, for Core statements only, run on the driver (``store.direct``).

        Commits on a clean exit, rolls back on an error. Where there is no direct path (an
        in-memory SQLite, another driver) the statements run through a session instead.
        """
        if not self._direct:
            async with self.write() as session:
                yield SessionRunner(session)
            return
        if self._write_lock is None:
            async with self.engine.connect() as conn, pooled_transaction(self, conn) as runner:
                yield runner
            return
        async with self._write_lock, sqlite_transaction(self, self._writer()) as runner:
            yield runner

    async def grouped_write(self, work: Callable[[Runner], Awaitable[T]]) -> T:
        """``work`` in a ``direct_write`` transaction; its result once that has committed.

        On SQLite (the direct path) work of this process that arrives while a write is under
        way is committed together with others in the next transaction, each in a savepoint of
        its own (``store.direct.GroupCommit``); ``work`` may run again from the start if SQLite
        drops a whole transaction, so it must only act through the runner. Elsewhere (PostgreSQL,
        whose row locks let writers run side by side) it is one transaction per call.
        """
        if self._group is None:
            async with self.direct_write() as runner:
                return await work(runner)
        return await self._group.run(work)

    @asynccontextmanager
    async def direct_read(self) -> AsyncIterator[Runner]:
        """Like ``read``, for Core statements only, run on the driver (``store.direct``).

        Each statement reads its own snapshot (no transaction around them). SQLite: one
        connection of the store's own, which is safe because its statements run to the end
        on the loop's thread before anything else does.
        """
        if not self._direct:
            async with self.read() as session:
                yield SessionRunner(session)
            return
        if not self.is_sqlite:
            async with self.engine.connect() as conn, pooled_reads(self, conn) as runner:
                yield runner
            return
        if self._sqlite_reader is None:
            self._sqlite_reader = open_writer(make_url(self.url).database or "")
        async with sqlite_reads(self, self._sqlite_reader) as runner:
            yield runner

    async def close(self) -> None:
        for conn in (self._sqlite_writer, self._sqlite_reader):
            if conn is not None:
                conn.close()
        self._sqlite_writer = self._sqlite_reader = None
        await self.engine.dispose()
