"""``fermion sim run`` and ``fermion sim status``: simulated devices connected to a cloud."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer

from fermion.cli.output import console, print_table


def run(
    ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="Device ids.")] = None,
    all_devices: Annotated[bool, typer.Option("--all", help="Every simulated device.")] = False,
    cloud: Annotated[
        str | None,
        typer.Option("--cloud", help="HOST:PORT to connect to instead of the DCT's address."),
    ] = None,
    ping: Annotated[
        float, typer.Option("--ping", min=0.1, help="Seconds of silence before a ping.")
    ] = 15.0,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.")
    ] = None,
) -> None:
    """Connect devices to their cloud and keep them online (Ctrl-C stops)."""
    from fermion.device.online import Fleet, SimProfile, load_devices, parse_cloud

    devices = load_devices(ids or [], all_devices)
    address = parse_cloud(cloud) if cloud else None
    profile = SimProfile(ping_interval=ping)

    async def go() -> None:
        fleet = Fleet.of(devices, address, profile)
        fleet.start()
        try:
            if duration is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(duration)
        finally:
            await fleet.stop()

    console.print(
        f"running {len(devices)} device(s)"
        + (f" against {cloud}" if cloud else " against the address in each DCT")
        + "; 'fermion sim status' shows them"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The fleet as its LEDs would show it."""
    from fermion.device.online import fleet_status

    rows = fleet_status()
    for row in rows:
        # The error a device shows now: a connected device's last refusal is history (kept in
        # last_protocol_error), and beside "connected" it reads as if the key were still wrong.
        row["error"] = None if row["online"] else row["last_protocol_error"]
    print_table(
        rows,
        as_json,
        None,
        ["ID", "PLATFORM", "LED", "STATE", "CLOUD", "ERROR"],
        [
            (
                row["id"],
                row["platform"],
                row["led"],
                row["state"],
                row["address"] or "-",
                f"{row['error']['code']} {row['error']['name']}" if row["error"] else "-",
            )
            for row in rows
        ],
    )


def register(sim_app: typer.Typer) -> None:
    sim_app.command("run")(run)
    sim_app.command("status")(status)
