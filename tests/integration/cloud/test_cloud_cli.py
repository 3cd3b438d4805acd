"""``fermion db`` and ``fermion admin`` as a person runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloud_harness import BACKENDS, fresh_database

from fermion.cloud.store.migrate import head_revision


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    url, drop = fresh_database(request.param, tmp_path)
    yield {**os.environ, "FERMION_HOME": str(tmp_path / "home"), "FERMION_DATABASE_URL": url}
    drop()


def fermion(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fermion.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_upgrade_is_idempotent(env: dict[str, str]) -> None:
    head = head_revision()
    first = fermion(env, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert f"at revision {head}" in first.stdout
    assert "fermion@" not in first.stdout or "***" in first.stdout  # no password printed
    again = fermion(env, "db", "upgrade")
    assert again.returncode == 0
    current = fermion(env, "db", "current")
    assert f"current: {head}" in current.stdout and f"head: {head}" in current.stdout


def test_admin_bootstrap(env: dict[str, str]) -> None:
    made = fermion(env, "admin", "create-user", "Owner@Example.com", "--password", "long-enough")
    assert made.returncode == 0, made.stderr
    assert "created user owner@example.com" in made.stdout
    product = fermion(
        env,
        "admin",
        "create-product",
        "Fancy Lamp",
        "--owner",
        "owner@example.com",
        "--platform",
        "argon",
    )
    assert product.returncode == 0, product.stderr
    assert "(fancy-lamp)" in product.stdout
    fermion(env, "admin", "create-user", "dev@example.com", "--no-password")
    role = fermion(env, "admin", "set-role", "fancy-lamp", "dev@example.com", "--role", "Developer")
    assert role.returncode == 0, role.stderr
    client = fermion(env, "admin", "create-client", "fancy-lamp", "backend")
    assert "client_secret: " in client.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create-user", "not-an-email", "--password", "long-enough"], "email: 'not-an-email'"),
        (["create-user", "a@b.c", "--password", "short"], "password: must be at least 8"),
        (["create-product", "X", "--owner", "ghost@b.c"], "ghost@b.c: no such user"),
        (
            ["create-product", "X", "--owner", "a@b.c", "--platform", "toaster"],
            "platform: 'toaster'",
        ),
    ],
)
def test_admin_errors_are_one_line(env: dict[str, str], args: list[str], message: str) -> None:
    fermion(env, "admin", "create-user", "a@b.c", "--password", "long-enough")
    result = fermion(env, "admin", *args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_duplicate_user(env: dict[str, str]) -> None:
    fermion(env, "admin", "create-user", "a@b.c", "--no-password")
    again = fermion(env, "admin", "create-user", "A@B.C", "--no-password")
    assert again.returncode == 1 and "already exists" in again.stderr
