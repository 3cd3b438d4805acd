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
    from importlib import import_module

    for topic in ("sim", "keys", "serve", "admin", "db", "server_key"):
        module_name = f"fermion.cli.{topic}_cmd"
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a topic whose branch has not landed yet
        if topic == "serve":
            app.command("serve")(module.serve)
        else:
            if topic == "sim":
                import_module("fermion.cli.sim_online_cmd").register(module.app)
            app.add_typer(module.app, name=topic.replace("_", "-"))
    # The API-client topics register several top-level commands each (login, device, ...);
    # repair_cmd adds send/doctor/repair/approve/reject to `keys`, so it comes after it.
    from fermion.cli import account_cmd, fleet_cmd, repair_cmd, up_cmd

    account_cmd.register(app)
    fleet_cmd.register(app)
    repair_cmd.register(app)
    up_cmd.register(app)


def main(argv: list[str] | None = None) -> None:
    _mount()
    try:
        app(args=argv, standalone_mode=False)
    except FermionError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as exc:  # a click usage error and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
