"""``fermion db``: the database schema."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from fermion.cloud.settings import Settings

app = typer.Typer(help="Database schema: migrate, show the revision.", no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: FERMION_HOME or the user's)."),
]


@app.command()
def upgrade(data_dir: DataDir = None) -> None:
    """Migrate the database to the newest schema (what `fermion serve` does on start)."""
    from fermion.cli.serve_cmd import safe_url
    from fermion.cloud.store import migrate

    settings = Settings.from_env(data_dir=data_dir)
    settings.ensure_data_dir()
    migrate.upgrade(settings.database_url)
    revision = asyncio.run(migrate.current_revision(settings.database_url))
    typer.echo(f"database {safe_url(settings.database_url)} at revision {revision}")


@app.command()
def current(data_dir: DataDir = None) -> None:
    """Print the database's schema revision and the newest one this version knows."""
    from fermion.cloud.store import migrate

    settings = Settings.from_env(data_dir=data_dir)
    revision = asyncio.run(migrate.current_revision(settings.database_url))
    typer.echo(f"current: {revision or 'none'}  head: {migrate.head_revision()}")
