"""``fermion up --demo``: the cloud on SQLite with a seeded, partly broken demo fleet."""

from __future__ import annotations

from pathlib import Path

import typer


def up(
    demo: bool = typer.Option(False, "--demo", help="Seed a demo product and fleet."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Where the demo keeps its data (default: <data dir>/demo)."
    ),
    port: int = typer.Option(
        0, "--port", help="HTTP port (0: the kept demo's, or a free one for a new demo)."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Wipe the kept demo and seed a new one (new ids, ports, secret)."
    ),
) -> None:
    """Run the cloud; with --demo, a product, team, customers and broken devices, seeded at the
    first run and kept for the next (--fresh starts over)."""
    from fermion.demo import run

    run(demo=demo, data_dir=data_dir, port=port, fresh=fresh)


def register(app: typer.Typer) -> None:
    if getattr(app, "_fermion_up_cmd", False):
        return  # main() may mount more than once in one process (tests)
    app._fermion_up_cmd = True  # type: ignore[attr-defined]
    app.command("up")(up)
