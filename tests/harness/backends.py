"""The two store backends every store-dependent test runs on: SQLite and PostgreSQL.

Each server (or in-process store) gets an empty database of its own, so modules, suites and the
helpers sharing the machine never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

PG_ENV = "FERMION_TEST_POSTGRES_URL"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def pg_admin_url() -> str | None:
    """The PostgreSQL server to make test databases on (None: those tests skip, unless
    ``FERMION_REQUIRE_POSTGRES=1`` says a skip would hide a missing backend)."""
    url = os.environ.get(PG_ENV)
    if not url and os.environ.get("FERMION_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{PG_ENV} is not set but FERMION_REQUIRE_POSTGRES=1")
    return url or None


async def _pg_exec(admin_url: str, sql: str) -> None:
    import asyncpg

    # Bounded (connect is, by default): a CREATE or DROP DATABASE stuck behind a lock fails
    # the test, or warns in cleanup, instead of hanging the run.
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(sql, timeout=60)
    finally:
        await conn.close(timeout=10)


def fresh_database(kind: str, tmp: Path) -> tuple[str, Callable[[], None]]:
    """A URL of an empty database of ``kind`` ("sqlite": a file in ``tmp``; "postgres": a new
    database), and how to drop it afterwards."""
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'fermion.db'}", lambda: None
    admin_url = pg_admin_url()
    if admin_url is None:
        pytest.skip(f"{PG_ENV} not set")
    name = f"fermion_test_{secrets.token_hex(6)}"
    asyncio.run(_pg_exec(admin_url, f'CREATE DATABASE "{name}"'))
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"

    def drop() -> None:
        # Cleanup only: a database left behind (an autovacuum worker still attached, which a
        # role without pg_signal_backend may not end) costs disk, not correctness.
        try:
            asyncio.run(_pg_exec(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:
            warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)

    return url, drop
