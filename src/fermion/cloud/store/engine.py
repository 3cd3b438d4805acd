"""One engine and one connection pool per process, and the two kinds of session the cloud uses.

SQLite allows one writer at a time. A deferred transaction that reads and then writes can fail at
once with "database is locked" when another writer got there first, without waiting at all, so
every write transaction here starts with ``BEGIN IMMEDIATE`` (it waits for ``busy_timeout``) and,
within one process, writers queue on an asyncio lock instead of spinning on the file lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from fermion.cloud.store.sqlite_inline import connect_factory

_BEGIN_OPTION = "fermion_begin"
_SQLITE_BUSY_MS = 30_000


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=False, **kwargs)
    database = make_url(url).database
    if database and database != ":memory:" and "async_creator" not in kwargs:
        # Statements run on the loop's thread instead of aiosqlite's (see sqlite_inline).
        kwargs["async_creator"] = connect_factory(database)
    engine = create_async_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (see the begin hook) instead of the driver's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # NORMAL in WAL mode survives a process crash (what a SIGKILL is); only a power cut can
        # lose the last commits, never corrupt the file.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
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
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

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

    async def close(self) -> None:
        await self.engine.dispose()
