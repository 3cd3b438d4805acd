"""Entry point of the ``fermion`` command.

Each topic lives in its own module and exposes a Typer app; this file only mounts them and
turns a ``FermionError`` into a one-line message and a non-zero exit.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from fermion.errors import FermionError

app = typer.Typer(
    name="fermion",
    help="Fermion: run, and above all repair, a fleet of Particle-protocol devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

err_console = Console(stderr=True, highlight=False)


def _mount() -> None:
    # Imported here so that `fermion --help` stays fast and one topic's import cost is not paid
    # by another.
    from fermion.cli import (
        admin_cmd,
        db_cmd,
        keys_cmd,
        serve_cmd,
        server_key_cmd,
        sim_cmd,
        sim_online_cmd,
    )

    app.add_typer(sim_cmd.app, name="sim")
    app.add_typer(keys_cmd.app, name="keys")
    app.command("serve")(serve_cmd.serve)
    app.add_typer(admin_cmd.app, name="admin")
    app.add_typer(db_cmd.app, name="db")
    sim_online_cmd.register(sim_cmd.app)
    app.add_typer(server_key_cmd.app, name="server-key")
    # The API-client topics register several top-level commands each (login, device, ...);
    # repair_cmd adds send/doctor/repair/approve/reject to `keys`, so it comes after it.
    from fermion.cli import account_cmd, fleet_cmd, repair_cmd, team_cmd, up_cmd

    account_cmd.register(app)
    fleet_cmd.register(app)
    team_cmd.register(app)
    repair_cmd.register(app)
    up_cmd.register(app)


def main(argv: list[str] | None = None) -> None:
    _mount()
    try:
        # Standalone mode lets Typer's own click print usage errors (an unknown command or
        # option, a missing argument, `fermion` alone) as click does, with exit code 2; checking
        # for click's exception class here would miss the copy of click Typer vendors.
        app(args=argv, standalone_mode=True)
    except FermionError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
