"""Hot-path statements run straight on the driver's connection, in a transaction of their own.

Through an ``AsyncSession`` a statement costs ~0.15 ms of Python before the database sees it
(the ORM's execute, the compiled-cache lookup, an execution context, result set-up, and a
greenlet switch for every driver call); a key upload has several. On the driver the same
statement costs what the database costs (~0.02 ms for SQLite on the loop's thread). So the key
upload runs its statements here:

- they stay SQLAlchemy Core statements (one definition, usable through a session too:
  ``SessionRunner``), compiled once per dialect;
- bind values go through the column types' own bind processors, so what is stored is exactly
  what the ORM would store (UTC datetimes, JSON, ...);
- rows come back through the selected columns' result processors, as from a session (UTC
  datetimes, booleans from SQLite's integers...).

Both sets of processors come from public APIs (``TypeEngine.dialect_impl(dialect)``'s
``bind_processor``/``result_processor``, a statement's ``exported_columns``), looked up once per
statement, so nothing here depends on SQLAlchemy's private compiler attributes;
tests/integration/cloud/test_cloud_store_direct.py checks that both paths store and read alike.

A driver error that is an integrity violation is raised as SQLAlchemy's ``IntegrityError``, as
through a session, so callers handle both paths alike.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from fermion.cloud.store.sqlite_inline import begin_immediate

if TYPE_CHECKING:
    from fermion.cloud.store.engine import Store

Params = dict[str, Any]
T = TypeVar("T")
log = logging.getLogger(__name__)


class Runner(Protocol):
    """Runs Core statements in a transaction: ``Direct`` or a session (``SessionRunner``)."""

    async def first(self, stmt: Executable, params: Params) -> Sequence[Any] | None: ...

    async def scalar(self, stmt: Executable, params: Params) -> Any: ...

    async def execute(self, stmt: Executable, params: Params) -> None: ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the transaction has committed (never if it rolls back)."""
        ...


_AFTER_COMMIT = "fermion_after_commit"


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, ()):
        callback()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


class SessionRunner:
    """The ``Runner`` interface over an ORM session, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.session.sync_session.info.setdefault(_AFTER_COMMIT, []).append(callback)

    async def first(self, stmt: Executable, params: Params) -> Sequence[Any] | None:
        return (await self.session.execute(stmt, params)).first()

    async def scalar(self, stmt: Executable, params: Params) -> Any:
        return await self.session.scalar(stmt, params)

    async def execute(self, stmt: Executable, params: Params) -> None:
        await self.session.execute(stmt, params)


@dataclass(frozen=True)
class Compiled:
    """A statement's SQL for one dialect, and how to turn named values into its arguments."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]  # values built into the statement, scalar column defaults
    generated: dict[str, Callable[[], Any]]  # Python-side column defaults (``default=utcnow``)
    processors: tuple[Callable[[Any], Any] | None, ...]
    results: tuple[Callable[[Any], Any] | None, ...] | None  # None: rows need no processing

    @classmethod
    def of(cls, stmt: Executable, dialect: Dialect) -> Compiled:
        compiled: Any = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError(f"statement needs per-execution SQL: {compiled}")
        names = tuple(compiled.positiontup or ())
        binds = compiled.binds
        defaults = {
            name: binds[name].effective_value
            for name in names
            if not binds[name].required and binds[name].callable is None
        }
        generated: dict[str, Callable[[], Any]] = {}
        # Columns left out of an INSERT (or an UPDATE's onupdate) whose default SQLAlchemy
        # computes in Python before executing: do what its execution context does.
        for column, default in [
            *((c, c.default) for c in compiled.insert_prefetch),
            *((c, c.onupdate) for c in compiled.update_prefetch),
        ]:
            if default.is_scalar:
                defaults[column.key] = default.arg
            elif default.is_callable:
                generated[column.key] = functools.partial(default.arg, None)
            else:
                raise ValueError(f"{column}: default {default!r} is not supported here")
        # The processors an execution through SQLAlchemy runs, from public type APIs only:
        # each type's implementation for this dialect, asked for its bind/result processor.
        processors = tuple(
            binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in _returned_columns(stmt)
        )
        return cls(
            str(compiled),
            names,
            defaults,
            generated,
            processors,
            results if any(results) else None,
        )

    def row(self, raw: Sequence[Any] | None) -> Sequence[Any] | None:
        if raw is None or self.results is None:
            return raw
        return tuple(
            value if process is None else process(value)
            for process, value in zip(self.results, raw, strict=True)
        )

    def args(self, params: Params) -> list[Any]:
        out = []
        for name, process in zip(self.names, self.processors, strict=True):
            if name in params:
                value = params[name]
            elif name in self.generated:
                value = self.generated[name]()
            else:
                try:
                    value = self.defaults[name]
                except KeyError:
                    raise KeyError(f"a value is required for bind parameter {name!r}") from None
            out.append(value if process is None else process(value))
        return out


def _returned_columns(stmt: Executable) -> Sequence[Any]:
    """The columns a statement's rows hold: a SELECT's, or a DML statement's RETURNING."""
    columns = getattr(stmt, "exported_columns", None)
    if columns is None:
        raise ValueError(f"no result columns known for {type(stmt).__name__}")
    return list(columns)


class Direct:
    """A ``Runner`` on the driver connection; see ``Store.direct_write``."""

    def __init__(self, store: Store, driver: _Driver) -> None:
        self._store = store
        self._driver = driver
        self.committed: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.committed.append(callback)

    def _compiled(self, stmt: Executable) -> Compiled:
        cache = self._store.compiled_cache
        found = cache.get(stmt)
        if found is None:
            found = cache[stmt] = Compiled.of(stmt, self._store.engine.dialect)
        return found

    async def first(self, stmt: Executable, params: Params) -> Sequence[Any] | None:
        c = self._compiled(stmt)
        return c.row(await self._driver.first(c.sql, c.args(params)))

    async def scalar(self, stmt: Executable, params: Params) -> Any:
        row = await self.first(stmt, params)
        return None if row is None else row[0]

    async def execute(self, stmt: Executable, params: Params) -> None:
        c = self._compiled(stmt)
        await self._driver.execute(c.sql, c.args(params))


class _Driver(Protocol):
    async def begin(self) -> None: ...
    async def first(self, sql: str, args: list[Any]) -> Sequence[Any] | None: ...
    async def execute(self, sql: str, args: list[Any]) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...
    def broken(self) -> bool: ...


class _Sqlite:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def begin(self) -> None:
        await begin_immediate(self.conn)

    async def first(self, sql: str, args: list[Any]) -> Sequence[Any] | None:
        try:
            cursor = self.conn.execute(sql, args)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(sql, args, exc) from exc
        try:
            return cursor.fetchone()
        finally:
            cursor.close()  # a half-read cursor would keep its read snapshot open

    async def execute(self, sql: str, args: list[Any]) -> None:
        try:
            self.conn.execute(sql, args).close()
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(sql, args, exc) from exc

    async def commit(self) -> None:
        self.conn.commit()

    async def rollback(self) -> None:
        self.conn.rollback()

    def broken(self) -> bool:
        return False


class _Asyncpg:
    def __init__(self, conn: Any) -> None:
        import asyncpg

        self.conn = conn
        self.tx: Any = None
        self._integrity = asyncpg.IntegrityConstraintViolationError
        self._failed = False

    async def begin(self) -> None:
        self.tx = self.conn.transaction()
        await self.tx.start()

    async def first(self, sql: str, args: list[Any]) -> Sequence[Any] | None:
        try:
            return await self.conn.fetchrow(sql, *args)
        except self._integrity as exc:
            raise IntegrityError(sql, args, exc) from exc

    async def execute(self, sql: str, args: list[Any]) -> None:
        try:
            await self.conn.execute(sql, *args)
        except self._integrity as exc:
            raise IntegrityError(sql, args, exc) from exc

    async def commit(self) -> None:
        await self.tx.commit()

    async def rollback(self) -> None:
        try:
            if self.tx is not None and not self.conn.is_closed():
                await self.tx.rollback()
        except BaseException:
            # A connection whose transaction could not be ended must not go back to the pool.
            self._failed = True
            raise

    def broken(self) -> bool:
        return self._failed or bool(self.conn.is_closed())


@asynccontextmanager
async def sqlite_transaction(store: Store, conn: sqlite3.Connection) -> AsyncIterator[Direct]:
    """A write transaction on a plain SQLite connection (the caller holds the write lock)."""
    async with _transaction(store, _Sqlite(conn)) as direct:
        yield direct


@asynccontextmanager
async def pooled_transaction(store: Store, conn: AsyncConnection) -> AsyncIterator[Direct]:
    """A transaction on the driver connection under a pooled ``AsyncConnection``."""
    driver = _driver_of(await conn.get_raw_connection())
    try:
        async with _transaction(store, driver) as direct:
            yield direct
    finally:
        if driver.broken():
            await conn.invalidate()


@asynccontextmanager
async def sqlite_reads(store: Store, conn: sqlite3.Connection) -> AsyncIterator[Direct]:
    """Reads on a plain SQLite connection, each statement on its own snapshot (autocommit)."""
    yield Direct(store, _Sqlite(conn))


@asynccontextmanager
async def pooled_reads(store: Store, conn: AsyncConnection) -> AsyncIterator[Direct]:
    """Reads on the driver connection under a pooled ``AsyncConnection`` (no transaction)."""
    driver = _driver_of(await conn.get_raw_connection())
    try:
        yield Direct(store, driver)
    finally:
        if driver.broken():
            await conn.invalidate()


def _driver_of(raw: Any) -> _Asyncpg:
    driver_conn = raw.driver_connection
    if not type(driver_conn).__module__.startswith("asyncpg"):
        raise NotImplementedError(f"no direct path for {type(driver_conn).__name__}")
    return _Asyncpg(driver_conn)


@asynccontextmanager
async def _transaction(store: Store, driver: _Driver) -> AsyncIterator[Direct]:
    await driver.begin()
    direct = Direct(store, driver)
    try:
        yield direct
    except BaseException:
        await driver.rollback()
        raise
    await driver.commit()
    for callback in direct.committed:
        callback()


@dataclass
class _Queued:
    work: Callable[[Runner], Awaitable[Any]]
    future: asyncio.Future[Any]


class GroupCommit:
    """Key uploads of one process on SQLite, committed several to a transaction.

    SQLite takes one writer at a time, and with ``fermion serve --workers`` the processes take
    turns on the file's lock: each turn is a ``BEGIN IMMEDIATE`` that may have to wait and
    retry (``begin_immediate``). So work that arrives while this process waits for the lock,
    or while another transaction runs, is queued and run in the next transaction, in order,
    each piece in a SAVEPOINT of its own: one that raises (an integrity error, a refusal)
    rolls back only itself and its caller gets the error. Nobody hears back before the
    transaction holding their work has committed; after-commit callbacks run only for work
    that committed.
    """

    # Bounds how long one turn holds the lock (the other process and this one's own replies
    # wait for it): at ~0.1-0.2 ms a piece, a few ms.
    MAX_BATCH = 32

    def __init__(
        self, store: Store, lock: asyncio.Lock, connection: Callable[[], sqlite3.Connection]
    ) -> None:
        self._store = store
        self._lock = lock
        self._connection = connection
        self._queue: deque[_Queued] = deque()
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[Runner], Awaitable[T]]) -> T:
        """Run ``work`` in a write transaction; its result once that has committed."""
        loop = asyncio.get_running_loop()
        queued = _Queued(work, loop.create_future())
        self._queue.append(queued)
        if self._drainer is None:
            # A task of its own: a request that goes away must not take others' work with it.
            self._drainer = loop.create_task(self._drain())
        result: T = await queued.future
        return result

    async def _drain(self) -> None:
        try:
            while self._queue:
                async with self._lock:
                    await self._turn(self._connection())
                # Let the replies go out (and another writer have the lock) before the next.
                await asyncio.sleep(0)
        except BaseException as exc:  # cancelled (shutdown): nobody may wait for ever
            _fail(list(self._queue), exc)
            self._queue.clear()
            raise
        finally:
            self._drainer = None

    def _take(self) -> list[_Queued]:
        batch: list[_Queued] = []
        while self._queue and len(batch) < self.MAX_BATCH:
            queued = self._queue.popleft()
            if not queued.future.done():  # its caller went away before it ran
                batch.append(queued)
        return batch

    async def _turn(self, conn: sqlite3.Connection) -> None:
        try:
            await begin_immediate(conn)  # work that arrives while this waits joins the batch
        except Exception as exc:  # the lock never came (busy timeout)
            _fail(self._take(), exc)
            return
        batch = self._take()
        driver = _Sqlite(conn)
        ran: list[tuple[_Queued, Any, Direct]] = []
        failed: list[tuple[_Queued, BaseException]] = []
        try:
            for i, queued in enumerate(batch):
                direct = Direct(self._store, driver)
                conn.execute("SAVEPOINT fermion_work")
                try:
                    result = await queued.work(direct)
                except Exception as exc:
                    failed.append((queued, exc))
                    if not conn.in_transaction:
                        # SQLite gave the whole transaction up (a full disk, an I/O error):
                        # what ran before this is gone too; it runs again in the next turn.
                        self._queue.extendleft(reversed([q for q, _, _ in ran] + batch[i + 1 :]))
                        ran = []
                        break
                    conn.execute("ROLLBACK TO fermion_work")
                    conn.execute("RELEASE fermion_work")
                else:
                    conn.execute("RELEASE fermion_work")
                    ran.append((queued, result, direct))
            if conn.in_transaction:
                conn.commit()
        except BaseException as exc:
            if conn.in_transaction:
                conn.rollback()
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for queued, result, direct in ran:
            for callback in direct.committed:
                try:
                    callback()
                except Exception:
                    log.exception("after-commit callback failed")
            if not queued.future.done():
                queued.future.set_result(result)
        for queued, exc in failed:
            if not queued.future.done():
                queued.future.set_exception(exc)


def _fail(batch: list[_Queued], exc: BaseException) -> None:
    for queued in batch:
        if not queued.future.done():
            queued.future.set_exception(
                exc if isinstance(exc, Exception) else RuntimeError("the write was interrupted")
            )
