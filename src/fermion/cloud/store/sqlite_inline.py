"""SQLite on the event loop's own thread: the connection settings and ``BEGIN IMMEDIATE``.

The hot paths (key uploads, device reads: ``store.direct``) run their statements on plain
``sqlite3`` connections on the loop's thread: statements against a local WAL file take
microseconds, far less than a hand-off to aiosqlite's helper thread and back (on a busy machine
each hand-off waits for the scheduler). It blocks the loop only while SQLite works, and for no
lock waits in practice: readers never wait in WAL mode, and writers of this process already
queue on the store's asyncio lock before ``BEGIN IMMEDIATE`` (another *process* writing at the
same moment, e.g. ``fermion admin`` or another ``fermion serve --workers`` process, holds the
lock: ``BEGIN IMMEDIATE`` then waits with ``asyncio.sleep`` between tries, see
``begin_immediate``, so the loop keeps serving while it waits).

Everything else (ORM sessions) goes through SQLAlchemy's aiosqlite dialect as it is: an earlier
stand-in for aiosqlite's connection, which ran sessions inline too, had to imitate aiosqlite's
private attributes that the dialect reaches into, and cost little to drop (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

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


def open_writer(path: str) -> sqlite3.Connection:
    """A plain connection for ``store.direct`` (autocommit; transactions begun explicitly)."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn
