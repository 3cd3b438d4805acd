"""``fermion keys``: the offline key commands of particle-cli, on a device link.

Every command that touches a device takes ``--device ID`` (a simulated device), ``--dct FILE``
(a raw DCT dump as ``dfu-util -a 1 -U`` reads it from real hardware) or ``--dfu`` (real hardware
in DFU mode, through dfu-util); ``--platform`` tells the platform when the slots alone cannot.
File names follow particle-cli: ``keys new`` writes
``NAME.pem``, ``NAME.pub.pem`` and ``NAME.der``; ``keys save`` writes ``NAME.der`` and
``NAME.pub.pem``; ``keys load`` first saves the current key to ``backup_<alg>_NAME.der``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from fermion.cli.output import JSON_OPT, console, print_json, print_result
from fermion.device.builtin import BACKUP_ADDRESS
from fermion.device.dct import (
    CLOUD_TRANSPORT,
    CLOUD_TRANSPORT_DEFAULT,
    CLOUD_TRANSPORT_TCP,
    PRIVATE_KEY_SLOT,
    decode_private_key_slot,
    is_erased_slot,
    read_private_key_slot,
    read_server_address,
    write_cloud_transport,
    write_private_key,
    write_server_key_file,
)
from fermion.device.link import DeviceLink, open_link
from fermion.device.report import fingerprint_json
from fermion.device.serverkey import format_server_key
from fermion.device.store import data_dir
from fermion.errors import DeviceError, FermionError, KeyFormatError
from fermion.fsutil import atomic_write
from fermion.keys import (
    Algorithm,
    fingerprint,
    generate_device_key,
    key_file_paths,
    load_key_file,
    private_key_der,
    require_algorithm,
    require_device_key_size,
    write_new_key_files,
    write_saved_key_files,
)
from fermion.keys.serverfile import Transport

app = typer.Typer(
    help="Device keys: make, save, load; server key and address.", no_args_is_help=True
)

DEVICE_OPT = typer.Option(None, "--device", "-d", help="A simulated device id.")
DCT_OPT = typer.Option(None, "--dct", help="A raw DCT dump file (dfu-util -a 1 -U).")
DFU_OPT = typer.Option(False, "--dfu", help="Real hardware in DFU mode, through dfu-util.")
PLATFORM_OPT = typer.Option(None, "--platform", help="Platform of a --dct dump or --dfu device.")


def _require_link(link: DeviceLink | None, command: str) -> DeviceLink:
    if link is None:
        raise DeviceError(
            f"keys {command}: give --device ID (simulated), --dct FILE (a DCT dump) or --dfu"
        )
    return link


def _paths_json(paths: dict[str, Path]) -> dict[str, str]:
    return {kind: str(path) for kind, path in paths.items()}


def _print_written(written: dict[str, Path], as_json: bool, what: str, **extra: str) -> None:
    """What keys new and save wrote: JSON (the files, the key's fingerprint and ``extra``), or
    '<what> key <sha256>' and a line a file."""
    fp = fingerprint_json(load_key_file(written["pub_pem"]).fingerprint)
    if as_json:
        print_json({"files": _paths_json(written), "fingerprint": fp, **extra})
        return
    console.print(f"{what} key {fp['sha256'] if fp else ''}")
    for path in written.values():
        console.print(f"  wrote {path}")


def _refuse_overwrite(paths: dict[str, Path], force: bool) -> None:
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise FermionError(f"{existing[0]}: already exists; use --force to overwrite")


@app.command()
def new(
    name: str | None = typer.Argument(None, help="Base file name (default: the device id)."),
    algorithm: str | None = typer.Option(None, "--algorithm", "-a", help="rsa or ec"),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
    device: str | None = DEVICE_OPT,
    dct: Path | None = DCT_OPT,
    platform: str | None = PLATFORM_OPT,
    dfu: bool = DFU_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Make a new device key pair: NAME.pem, NAME.pub.pem, NAME.der. Writes no device."""
    link = open_link(device, dct, platform, dfu=dfu)
    chosen = Algorithm.parse(algorithm) if algorithm else None
    if link is not None:
        transport = link.transport()
        if chosen is not None and chosen is not transport.algorithm:
            raise KeyFormatError(
                f"--algorithm {chosen.value}: {link.name} uses {transport.value.upper()} and "
                f"needs an {transport.algorithm.value.upper()} key"
            )
        chosen = transport.algorithm
        name = name or link.device_id
    if not name:
        raise FermionError("keys new: give a NAME (or --device/--dct/--dfu to use the device id)")
    paths = key_file_paths(name)
    _refuse_overwrite(paths, force)
    key = generate_device_key(chosen or Algorithm.RSA)
    written = write_new_key_files(key, name)
    alg = (chosen or Algorithm.RSA).value
    _print_written(written, as_json, f"new {alg}", algorithm=alg)


def _save_slot(link: DeviceLink, transport: Transport, name: str, force: bool) -> dict[str, Path]:
    region = PRIVATE_KEY_SLOT[transport]
    slot = read_private_key_slot(link, transport)
    paths = key_file_paths(name)
    _refuse_overwrite({"der": paths["der"], "pub_pem": paths["pub_pem"]}, force)
    where = f"{link.name}: the {transport.value.upper()} private key at {region.offset}"
    if is_erased_slot(slot):
        raise KeyFormatError(
            f"{where} is erased (first byte 0xFF); this usually means you had a corrupt key on "
            "the device (it generates a new one at the next boot)"
        )
    try:
        return write_saved_key_files(slot, name, source=where)
    except KeyFormatError as exc:
        raise KeyFormatError(
            f"{exc}; this usually means you had a corrupt key on the device"
        ) from None


@app.command()
def save(
    name: str | None = typer.Argument(None, help="Base file name (default: the device id)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
    device: str | None = DEVICE_OPT,
    dct: Path | None = DCT_OPT,
    platform: str | None = PLATFORM_OPT,
    dfu: bool = DFU_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Save the device's private key to NAME.der and its public key to NAME.pub.pem."""
    link = _require_link(open_link(device, dct, platform, dfu=dfu), "save")
    transport = link.transport()
    name = name or link.device_id
    if not name:
        raise FermionError("keys save: give a NAME; the DCT holds no device id")
    written = _save_slot(link, transport, name, force)
    _print_written(written, as_json, f"saved {link.name}", transport=transport.value)


@app.command()
def load(
    name: str = typer.Argument(..., help="Key to load: NAME.der (or a key file path)."),
    device: str | None = DEVICE_OPT,
    dct: Path | None = DCT_OPT,
    platform: str | None = PLATFORM_OPT,
    dfu: bool = DFU_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Write NAME.der to the device's key slot, after saving the current key to a backup."""
    link = _require_link(open_link(device, dct, platform, dfu=dfu), "load")
    transport = link.transport()
    paths = key_file_paths(name)
    # A file named as given wins; otherwise NAME.der, as particle-cli reads it.
    source = Path(name) if Path(name).is_file() else paths["der"]
    loaded = load_key_file(source)
    if loaded.private is None:
        raise KeyFormatError(f"{source}: holds a public key only; keys load needs the private key")
    require_algorithm(
        loaded, transport.algorithm, str(source), f"{link.name} ({transport.value.upper()})"
    )
    require_device_key_size(loaded, str(source))

    # As particle-cli does: keep what the device holds now before replacing it.
    base = paths["der"].with_suffix("")
    backup_name = base.with_name(f"backup_{transport.algorithm.value}_{base.name}")
    slot = read_private_key_slot(link, transport)
    backup: Path | None = None
    if not is_erased_slot(slot):
        try:
            decode_private_key_slot(slot, link.name)
            backup = write_saved_key_files(slot, backup_name, source=link.name)["der"]
        except KeyFormatError:
            # A corrupt slot is kept byte for byte: it may still be worth something to someone.
            backup = key_file_paths(backup_name)["der"]
            atomic_write(backup, slot, mode=0o600)

    write_private_key(link, transport, private_key_der(loaded.private))
    link.reset()
    fp = fingerprint_json(loaded.fingerprint)
    if as_json:
        print_json(
            {
                "loaded": str(source),
                "backup": str(backup) if backup else None,
                "fingerprint": fp,
                "transport": transport.value,
            }
        )
        return
    if backup:
        console.print(f"saved the previous key to {backup}")
    console.print(f"loaded {source} into {link.name}: {fp['sha256'] if fp else ''}")


@app.command()
def server(
    file: Path | None = typer.Argument(None, help="Server public key (default: built-in cloud)."),
    host: str | None = typer.Option(None, "--host", help="Server host name or IPv4 address."),
    port: int | None = typer.Option(None, "--port", help="Server port."),
    out: Path | None = typer.Option(None, "--out", help="Only write the formatted file here."),
    device: str | None = DEVICE_OPT,
    dct: Path | None = DCT_OPT,
    platform: str | None = PLATFORM_OPT,
    dfu: bool = DFU_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Write a server key (and address) to the device, or only produce the formatted file."""
    link = open_link(device, dct, platform, dfu=dfu)
    transport = link.transport() if link else None
    formatted = format_server_key(
        file, host, port, transport, data_dir(), link.name if link else None
    )
    result: dict[str, Any] = {
        "transport": formatted.transport.value,
        "fingerprint": fingerprint_json(fingerprint(formatted.public_key)),
        "address": str(formatted.address) if formatted.address else None,
    }
    if out is not None or link is None:
        target = out or Path(formatted.default_name)
        atomic_write(target, formatted.data)
        result["file"] = str(target)
        message = f"Formatted server key file generated: {target}"
    else:
        write_server_key_file(link, formatted.transport, formatted.data)
        link.reset()
        result["device"] = link.name
        message = f"wrote the server key ({formatted.fingerprint}) to {link.name}"
    print_result(result, as_json, message)


@app.command()
def address(
    device: str | None = DEVICE_OPT,
    dct: Path | None = DCT_OPT,
    platform: str | None = PLATFORM_OPT,
    dfu: bool = DFU_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Show the server address stored on the device."""
    link = _require_link(open_link(device, dct, platform, dfu=dfu), "address")
    transport = link.transport()
    stored = read_server_address(link, transport)
    effective = stored or BACKUP_ADDRESS[transport]
    port = effective.port if effective.port is not None else transport.default_port
    data = {
        "transport": transport.value,
        "host": effective.host,
        "port": port,
        "type": effective.type.name.lower(),
        "source": "dct" if stored else "backup",
    }
    note = "" if stored else " (blank on the device: the built-in backup address)"
    print_result(data, as_json, f"{transport.value}://{effective.host}:{port}{note}")


@app.command()
def protocol(
    value: str | None = typer.Argument(None, help="tcp or udp; omit to show the current one."),
    device: str | None = DEVICE_OPT,
    dct: Path | None = DCT_OPT,
    platform: str | None = PLATFORM_OPT,
    dfu: bool = DFU_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Show or switch an Electron's cloud transport (cloud_transport at 2977)."""
    link = _require_link(open_link(device, dct, platform, dfu=dfu), "protocol")
    if link.platform is None:
        raise DeviceError(f"{link.name}: keys protocol needs --platform electron for a DCT file")
    if not link.platform.transport_switchable:
        raise DeviceError(
            f"{link.name}: keys protocol applies to the Electron only; a "
            f"{link.platform.value} always uses {link.platform.default_transport.value.upper()}"
        )
    if value is not None:
        try:
            wanted = Transport(value.strip().lower())
        except ValueError:
            raise DeviceError(f"protocol: {value!r} is not tcp or udp") from None
        byte = (
            CLOUD_TRANSPORT_DEFAULT
            if wanted is link.platform.default_transport
            else CLOUD_TRANSPORT_TCP
        )
        write_cloud_transport(link, byte)
        link.reset()
    current = link.transport()
    data = {
        "transport": current.value,
        "cloud_transport": link.read_region(CLOUD_TRANSPORT.offset, 1)[0],
    }
    print_result(data, as_json, f"{link.name}: {current.value}")
