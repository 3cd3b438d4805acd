"""``fermion server-key``: show, export, rotate and retire the cloud's server key."""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from fermion.cli.admin_cmd import DataDir
from fermion.cli.admin_cmd import run_on_store as _run
from fermion.errors import FermionError

app = typer.Typer(help="The cloud's own key pair (what devices hold as the server key).")
console = Console(highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


class ExportFormat(StrEnum):
    DER = "der"
    PEM = "pem"
    PARTICLE = "particle"


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _key_json(row: Any) -> dict[str, Any]:
    from fermion.keys import fingerprint_der

    fp = fingerprint_der(row.public_der)
    return {
        "id": row.id,
        "algorithm": row.algorithm,
        "state": row.state,
        "fingerprint": fp.sha256,
        "short": fp.short,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
    }


@app.command()
def show(data_dir: DataDir = None, as_json: JsonOpt = False) -> None:
    """List the server keys: current, previous (still accepted), retired."""
    from fermion.cloud.devices.rotation import server_keys

    rows = [_key_json(r) for r in _run(data_dir, server_keys)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        console.print(
            f"{row['state']:<9} {row['algorithm']}  {row['fingerprint']}  "
            f"created {row['created_at']}"
        )


@app.command()
def export(
    fmt: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="der, pem, or particle (padded file).")
    ] = ExportFormat.DER,
    host: Annotated[str | None, typer.Option("--host", help="Address for a particle file.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port for a particle file.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Write the current public key: DER, PEM, or the padded file `fermion keys server` writes."""
    from fermion.cloud.devices.rotation import current_key
    from fermion.fsutil import atomic_write
    from fermion.keys import load_key, public_key_pem
    from fermion.keys.serverfile import Transport, encode_server_key_file

    if fmt is not ExportFormat.PARTICLE and (host is not None or port is not None):
        raise FermionError("--host/--port: only a particle file carries an address")
    row = _run(data_dir, current_key)
    public = load_key(row.public_der, "server key").public
    if fmt is ExportFormat.DER:
        data = row.public_der
    elif fmt is ExportFormat.PEM:
        data = public_key_pem(public)
    else:
        data = encode_server_key_file(public, host, port, Transport.TCP)
    if out is None:
        if fmt is ExportFormat.PEM:
            typer.echo(data.decode(), nl=False)
            return
        out = Path(f"server.{'der' if fmt is ExportFormat.DER else 'particle.der'}")
    atomic_write(out, data)
    console.print(f"wrote {fmt.value} server key to {out}")


def _rotation_step(
    data_dir: Path | None, step: Callable[..., Awaitable[Any]], as_json: bool, done: str
) -> None:
    """Run one step of a rotation as this CLI's user and print the key it leaves: its JSON, or
    ``done`` with its ``{fingerprint}``."""
    row = _key_json(_run(data_dir, step, _actor()))
    if as_json:
        typer.echo(json.dumps(row, indent=2))
        return
    console.print(done.format(fingerprint=row["fingerprint"]))


@app.command()
def rotate(data_dir: DataDir = None, as_json: JsonOpt = False) -> None:
    """Make a new server key; the old one stays accepted until `fermion server-key retire`."""
    from fermion.cloud.devices.rotation import rotate as do_rotate

    _rotation_step(
        data_dir,
        do_rotate,
        as_json,
        "new current server key {fingerprint}; the previous one is still accepted until "
        "'fermion server-key retire'. Give devices the new key with 'keys server'.",
    )


@app.command()
def retire(data_dir: DataDir = None, as_json: JsonOpt = False) -> None:
    """End a rotation: devices still holding the previous key are refused from now on."""
    from fermion.cloud.devices.rotation import retire as do_retire

    _rotation_step(data_dir, do_retire, as_json, "retired server key {fingerprint}")
