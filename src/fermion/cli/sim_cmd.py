"""``fermion sim``: create, list, inspect, break and reboot simulated devices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from fermion.cli.output import console, over_many, print_json, table
from fermion.device import faults
from fermion.device.boot import boot
from fermion.device.dct import write_server_key_file
from fermion.device.platforms import Platform
from fermion.device.report import describe
from fermion.device.serverkey import FormattedServerKey, format_server_key
from fermion.device.store import SimDevice, data_dir, parse_key_backup
from fermion.errors import DeviceError

app = typer.Typer(
    help="Simulated devices: a DCT image that boots, generates keys and loses them.",
    no_args_is_help=True,
)

JSON_OPT = typer.Option(False, "--json", help="Print JSON instead of a table.")
# Past this many new devices `sim create` prints one summary line, not a line per device.
SUMMARY_OVER = 10


def _short(fp: dict[str, str] | None) -> str:
    return fp["short"] if fp else "-"


@app.command()
def create(
    platform: str = typer.Option(
        ..., "--platform", "-p", help="photon, p1, electron, argon, boron"
    ),
    count: int = typer.Option(1, "--count", "-n", min=1, max=1000, help="How many devices."),
    server_key: Path | None = typer.Option(
        None, "--server-key", help="Server public key (or server-key file) to write."
    ),
    host: str | None = typer.Option(None, "--host", help="Server address (with --server-key)."),
    port: int | None = typer.Option(None, "--port", help="Server port (with --host)."),
    key_backup: str | None = typer.Option(
        None,
        "--key-backup",
        help="Run DeviceKeyHelperRK with this store (eeprom or file): back up the keys after "
        "each connection, restore them on a keys error (seen by `sim run`).",
    ),
    as_json: bool = JSON_OPT,
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print only the new ids, one a line (for scripts)."
    ),
) -> None:
    """Create devices and boot them once (keys generated). Without --server-key they point at the
    built-in backup cloud (the stand-in for Particle's)."""
    parsed = Platform.parse(platform, "--platform")
    backup = parse_key_backup(key_backup) if key_backup is not None else None
    if server_key is None and (host is not None or port is not None):
        raise DeviceError("--host/--port need --server-key (the key of the cloud at that address)")
    home = data_dir()
    transport = parsed.default_transport
    formatted: FormattedServerKey | None = None
    if server_key is not None:
        # Formatted (and so validated) before any device exists: bad input creates nothing.
        formatted = format_server_key(
            server_key, host, port, transport, home, f"a new {parsed.value} ({transport.value})"
        )

    def make_one(_: int) -> dict[str, Any]:
        device = SimDevice.create(parsed, home, key_backup=backup)
        if formatted is not None:
            image = device.load_image()
            write_server_key_file(image, transport, formatted.data)
            device.save_image(image)
        boot(device)
        return describe(device)

    # A progress bar on stderr for many devices (none for --json or --quiet, whose stdout a
    # script reads, and none for one).
    created = over_many(list(range(count)), "creating devices", make_one, as_json or quiet)
    if as_json:
        print_json(created)
        return
    if quiet:
        for info in created:
            typer.echo(info["id"])
        return
    if len(created) > SUMMARY_OVER:
        console.print(
            f"created {len(created)} {parsed.value} devices ({transport.value}) in {home}: "
            f"{created[0]['id']} ... {created[-1]['id']}; `fermion sim list` shows them all, "
            "--json or -q prints every id"
        )
        return
    for info in created:
        console.print(
            f"created {info['platform']} device [bold]{info['id']}[/] ({info['transport']}), "
            f"key {info['device_key']['fingerprint']['sha256']}"
        )


@app.command("list")
def list_(as_json: bool = JSON_OPT) -> None:
    """List simulated devices."""
    devices = [describe(d) for d in SimDevice.list()]
    if as_json:
        print_json(devices)
        return
    if not devices:
        console.print(f"no simulated devices in {SimDevice.root()}")
        return
    table(
        None,
        ["ID", "PLATFORM", "TRANSPORT", "FIRMWARE", "DEVICE KEY", "SERVER", "KEY ERRORS"],
        [
            (
                info["id"],
                info["platform"],
                info["transport"],
                info["firmware"]["state"],
                f"{info['device_key']['state']} {_short(info['device_key']['fingerprint'])}",
                info["server_address"]["effective"]["host"],
                _key_errors_text(info["key_errors"]),
            )
            for info in devices
        ],
    )


def _key_errors_text(errors: dict[str, Any] | None) -> str:
    """A key-errors cell: '-' for a device that does not run, else the errors' names."""
    return "-" if errors is None else (",".join(errors["names"]) or "none")


@app.command()
def inspect(device_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPT) -> None:
    """Keys, fingerprints, server key and address, transport, key errors, firmware state."""
    info = describe(SimDevice.open(device_id))
    if as_json:
        print_json(info)
        return
    _print_inspect(info)


def _fp_text(fp: dict[str, str] | None) -> str:
    return f"{fp['sha256']} ({fp['short']})" if fp else "-"


def _backup_note(info: dict[str, Any]) -> str:
    last = (info.get("status") or {}).get("key_backup") or {}
    return f" (last: {last['event']} at {last['at']})" if last.get("event") else ""


def _print_inspect(info: dict[str, Any]) -> None:
    console.print(f"[bold]{info['id']}[/]  {info['platform']} (platform {info['platform_id']})")
    firmware = info["firmware"]
    console.print(
        f"  firmware        {firmware['state']}"
        + (f": {firmware['fault']}" if firmware["fault"] else "")
    )
    console.print(f"  transport       {info['transport']}")
    backup = info.get("key_backup")
    console.print(f"  key backup      {backup or 'off'}" + _backup_note(info))
    key = info["device_key"]
    console.print(
        f"  device key      {key['state']} {key['algorithm'] or ''}  {_fp_text(key['fingerprint'])}"
    )
    pub = info["public_key_slot"]
    console.print(f"  public key slot {pub['state']}  {_fp_text(pub['fingerprint'])}")
    server = info["server_key"]
    backup = " (built-in backup cloud)" if server["is_backup_cloud"] else ""
    console.print(
        f"  server key      {server['source']}: {_fp_text(server['effective_fingerprint'])}{backup}"
    )
    address = info["server_address"]
    eff = address["effective"]
    console.print(f"  server address  {address['source']}: {eff['host']}:{eff['port']}")
    errors = info["key_errors"]
    if errors is None:
        console.print("  key errors      - (the device does not run)")
    else:
        names = ", ".join(errors["names"]) or "none"
        console.print(f"  key errors      {errors['mask']} ({names})")
    for line in info["diagnosis"]:
        console.print(f"  diagnosis       {line}")


@app.command()
def fault(
    device_id: str = typer.Argument(..., metavar="ID"),
    brownout: bool = typer.Option(False, "--brownout", help="Gen 2: erase the DCT sector."),
    fs_reformat: bool = typer.Option(False, "--fs-reformat", help="Gen 3: lose the file system."),
    factory_reset: bool = typer.Option(
        False, "--factory-reset", help="Gen 3: factory reset (keeps the EC device key)."
    ),
    bootloader: bool = typer.Option(False, "--bootloader", help="Erase the bootloader sector."),
    server_key: Path | None = typer.Option(
        None, "--server-key", help="Overwrite the server key with this (another cloud's) key."
    ),
    no_boot: bool = typer.Option(False, "--no-boot", help="Do not reset after the fault."),
    as_json: bool = JSON_OPT,
) -> None:
    """Apply one fault, then reset the device (as power returning would)."""
    chosen = [
        name
        for name, on in (
            ("--brownout", brownout),
            ("--fs-reformat", fs_reformat),
            ("--factory-reset", factory_reset),
            ("--bootloader", bootloader),
            ("--server-key", server_key is not None),
        )
        if on
    ]
    if len(chosen) != 1:
        raise DeviceError(
            "give exactly one fault: --brownout, --fs-reformat, --factory-reset, --bootloader or "
            "--server-key FILE" + (f" (got {', '.join(chosen)})" if chosen else "")
        )
    device = SimDevice.open(device_id)
    if brownout:
        faults.brownout(device)
    elif fs_reformat:
        faults.fs_reformat(device)
    elif factory_reset:
        faults.factory_reset(device)
    elif bootloader:
        faults.erase_bootloader(device)
    elif server_key is not None:
        faults.overwrite_server_key(device, server_key)
    if not no_boot:
        boot(device)
    info = describe(device)
    if as_json:
        print_json(info)
        return
    console.print(f"applied {chosen[0].lstrip('-')} to {device.name}")
    _print_inspect(info)


@app.command("boot")
def boot_(device_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPT) -> None:
    """Reset the device: regenerate a missing key, fall back to the backup server key/address."""
    device = SimDevice.open(device_id)
    report = boot(device)
    if not report.firmware_ok:
        raise DeviceError(
            f"{device.name}: {report.firmware_fault}; a firmware fault, not a key fault"
        )
    info = describe(device)
    if as_json:
        print_json({**info, "generated_key": report.generated_key})
        return
    if report.generated_key:
        console.print(f"{device.name}: generated a new device key")
    _print_inspect(info)
