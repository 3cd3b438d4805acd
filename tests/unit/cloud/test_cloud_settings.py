from __future__ import annotations

from pathlib import Path

import pytest

from fermion.cloud.settings import Settings, normalise_database_url
from fermion.errors import FermionError


def test_defaults_are_loopback_and_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    s = Settings.from_env(environ={"FERMION_HOME": str(tmp_path)})
    assert s.host == "127.0.0.1"
    assert s.port == 8080
    assert s.data_dir == tmp_path
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path / 'fermion.db'}"
    assert s.is_sqlite


def test_data_dir_argument_wins_over_environment(tmp_path: Path) -> None:
    s = Settings.from_env(data_dir=tmp_path / "x", environ={"FERMION_HOME": "/nope"})
    assert s.data_dir == tmp_path / "x"


def test_database_url_from_environment(tmp_path: Path) -> None:
    s = Settings.from_env(
        data_dir=tmp_path, environ={"FERMION_DATABASE_URL": "postgresql://u:p@127.0.0.1/db"}
    )
    assert s.database_url == "postgresql+asyncpg://u:p@127.0.0.1/db"
    assert not s.is_sqlite


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://h/db", "postgresql+asyncpg://h/db"),
        ("sqlite:////tmp/a.db", "sqlite+aiosqlite:////tmp/a.db"),
        ("sqlite+aiosqlite:////tmp/a.db", "sqlite+aiosqlite:////tmp/a.db"),
    ],
)
def test_url_normalisation(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_unsupported_url_is_named() -> None:
    with pytest.raises(FermionError, match="FERMION_DATABASE_URL: 'mysql' is not supported"):
        normalise_database_url("mysql://x/y")


def test_advertised_device_host_from_option_or_environment(tmp_path: Path) -> None:
    env = {"FERMION_DEVICE_HOST": "devices.example.com"}
    assert Settings.from_env(data_dir=tmp_path, environ={}).device_host is None
    assert Settings.from_env(data_dir=tmp_path, environ=env).device_host == "devices.example.com"
    given = Settings.from_env(data_dir=tmp_path, environ=env, device_host="10.0.0.2")
    assert given.device_host == "10.0.0.2"
