"""The ``keys`` commands that talk to the cloud: send, server (from the cloud), approve, reject,
repair and doctor.

They are added to the ``keys`` Typer app of ``keys_cmd`` by ``register`` (called from main.py);
``keys server`` is wrapped rather than replaced: with a FILE it is the offline command, without
one it fetches the key and device-server address of the cloud the CLI is logged in to.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from fermion.cli.api_client import ApiClient, ApiError
from fermion.cli.keys_cmd import DCT_OPT, DEVICE_OPT, DFU_OPT, PLATFORM_OPT
from fermion.cli.output import JSON_OPT, console, err, print_json
from fermion.cloud.domain.repair_plan import StepKind
from fermion.device.dct import (
    PRIVATE_KEY_SLOT,
    is_erased_slot,
    read_private_key_slot,
    write_private_key,
)
from fermion.device.link import DeviceLink, open_link
from fermion.errors import DeviceError, FermionError, KeyFormatError
from fermion.fsutil import atomic_write
from fermion.ids import not_a_device_id, parse_device_id
from fermion.keys import (
    LoadedKey,
    generate_device_key,
    load_key,
    load_key_file,
    private_key_der,
    public_key_pem,
    write_new_key_files,
)
from fermion.keys.serverfile import Transport
from fermion.paths import default_data_dir

ONLINE_TIMEOUT = 60.0


# --- small helpers -------------------------------------------------------------------------


def _device_id(value: str) -> str:
    device_id = parse_device_id(value)
    if device_id is None:
        raise FermionError(not_a_device_id("device id", value))
    return device_id


def resolve_link(
    device_id: str | None,
    device: str | None,
    dct: Path | None,
    dfu: bool,
    platform: str | None,
    required: bool = True,
) -> DeviceLink | None:
    """The link the options name; with none, the simulated device of that id if there is one."""
    if device or dct or dfu:
        return open_link(device, dct, platform, dfu=dfu, dfu_device_id=device_id)
    if device_id:
        try:
            return open_link(device_id, None, platform)
        except DeviceError as exc:
            if "no such simulated device" not in str(exc):
                raise  # e.g. a dead bootloader: a firmware fault, said as such
            if not required:
                return None
            raise DeviceError(
                f"device {device_id}: no simulated device of that id here; reach the device with "
                "--device ID, --dct FILE or --dfu"
            ) from None
    if required:
        raise DeviceError("give the device: --device ID, --dct FILE or --dfu")
    return None


def _read_key_arg(path: Path, device_id: str) -> LoadedKey:
    """particle-cli's rule: FILE, or FILE.pub.pem when FILE does not exist."""
    if not path.exists():
        alt = path.with_name(path.name + ".pub.pem")
        if alt.exists():
            path = alt
        else:
            raise KeyFormatError(f"{path}: no such key file (nor {alt.name})")
    return load_key_file(path)


def _pem(key: LoadedKey) -> str:
    return public_key_pem(key.public).decode()


def _fp_short(fp: str | None) -> str:
    return (fp or "none")[:20]


# --- keys send / approve / reject -----------------------------------------------------------


def send(
    device_id: str = typer.Argument(..., metavar="DEVICE"),
    file: Path | None = typer.Argument(
        None, metavar="[FILE]", help="Public or private key, PEM or DER (default: DEVICE.pub.pem)."
    ),
    product_id: str | None = typer.Option(
        None, "--product-id", "--product_id", help="The device's product (product devices)."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Send a device's public key to the cloud (POST /v1/provisioning/:id)."""
    did = _device_id(device_id)
    key = _read_key_arg(file or Path(did), did)
    with ApiClient() as api:
        try:
            body = api.send_public_key(did, _pem(key), key.algorithm.api_name, product_id)
        except ApiError as exc:
            raise ApiError(f"sending the public key of {did} failed: {exc}", exc.status) from None
    if as_json:
        print_json(body)
        return
    console.print(f"submitting public key succeeded! {key.fingerprint.sha256}")


def _pending(api: ApiClient, did: str, fingerprint: str | None) -> dict[str, Any]:
    candidates = [c for c in api.key_candidates(did) if c.get("status") == "pending"]
    if fingerprint:
        candidates = [
            c for c in candidates if str(c.get("fingerprint", "")).startswith(fingerprint)
        ]
    if not candidates:
        raise FermionError(
            f"device {did}: no pending presented key"
            + (f" with fingerprint {fingerprint}" if fingerprint else "")
        )
    if len(candidates) > 1 and not fingerprint:
        fps = ", ".join(str(c.get("fingerprint")) for c in candidates)
        raise FermionError(f"device {did}: several presented keys ({fps}); pick with --fingerprint")
    return candidates[0]


def _decide(device_id: str, fingerprint: str | None, approve: bool, as_json: bool) -> None:
    did = _device_id(device_id)
    verb = "approve" if approve else "reject"
    with ApiClient() as api:
        candidate = _pending(api, did, fingerprint)
        body = api.request("POST", f"/v1/devices/{did}/keys/candidates/{candidate['id']}/{verb}")
    if as_json:
        print_json(body)
        return
    done = "approved" if approve else "rejected"
    console.print(f"{done} the key {candidate.get('fingerprint')} presented by {did}")


def approve(
    device_id: str = typer.Argument(..., metavar="DEVICE"),
    fingerprint: str | None = typer.Option(None, "--fingerprint", help="Which presented key."),
    as_json: bool = JSON_OPT,
) -> None:
    """Approve the key the device presented: it becomes the device's current key."""
    _decide(device_id, fingerprint, True, as_json)


def reject(
    device_id: str = typer.Argument(..., metavar="DEVICE"),
    fingerprint: str | None = typer.Option(None, "--fingerprint", help="Which presented key."),
    as_json: bool = JSON_OPT,
) -> None:
    """Reject the key the device presented."""
    _decide(device_id, fingerprint, False, as_json)


# --- keys server without a file -------------------------------------------------------------


def cloud_server_key(api: ApiClient, transport: Transport) -> tuple[str, str | None, int | None]:
    """(PEM, host, port) of the logged-in cloud's current key for ``transport``."""
    body = api.server_keys()
    wanted = transport.algorithm.api_name
    keys = [k for k in body.get("keys", []) if k.get("algorithm") == wanted]
    current = [k for k in keys if k.get("state") in (None, "current")] or keys
    if not current:
        raise FermionError(
            f"the cloud at {api.api_url} has no {wanted.upper()} server key for "
            f"{transport.value.upper()} devices"
        )
    chosen = current[0]
    address = chosen.get("address") or body.get("device_server") or {}
    host = address.get("host") if isinstance(address, dict) else None
    port = address.get(f"{transport.value}_port") or address.get("port") if address else None
    override = os.environ.get("FERMION_DEVICE_ADDRESS")  # host:port of the device server
    if override:
        host, _, raw_port = override.rpartition(":")
        try:
            port = int(raw_port)
        except ValueError:
            raise FermionError(f"FERMION_DEVICE_ADDRESS: {override!r} is not HOST:PORT") from None
    if host is None:
        from urllib.parse import urlsplit

        host = urlsplit(api.api_url).hostname
    return str(chosen["public_key"]), host, int(port) if port else None


def wrap_server(original: Callable[..., None]) -> Callable[..., None]:
    def server(
        file: Path | None = typer.Argument(
            None, help="Server public key (default: the cloud you are logged in to)."
        ),
        host: str | None = typer.Option(None, "--host", help="Server host name or IPv4 address."),
        port: int | None = typer.Option(None, "--port", help="Server port."),
        out: Path | None = typer.Option(None, "--out", help="Only write the formatted file here."),
        builtin: bool = typer.Option(
            False, "--builtin", help="Use the built-in key instead of asking the cloud."
        ),
        device: str | None = DEVICE_OPT,
        dct: Path | None = DCT_OPT,
        dfu: bool = DFU_OPT,
        platform: str | None = PLATFORM_OPT,
        as_json: bool = JSON_OPT,
    ) -> None:
        """Write a server key and address to the device. Without FILE: the key and address of
        the cloud you are logged in to (GET /v1/server-keys), so the device joins that cloud."""
        link_options = {"device": device, "dct": dct, "platform": platform, "dfu": dfu}
        if file is not None or builtin:
            original(file, host, port, out, as_json=as_json, **link_options)
            return
        link = resolve_link(None, device, dct, dfu, platform, required=False)
        if link is None:
            raise DeviceError("keys server: give --device ID, --dct FILE or --dfu (or --out FILE)")
        transport = link.transport()
        with ApiClient() as api:
            pem, cloud_host, cloud_port = cloud_server_key(api, transport)
        with tempfile.TemporaryDirectory(prefix="fermion-server-key-") as tmp:
            key_path = Path(tmp) / f"{transport.algorithm.value}.pub.pem"
            key_path.write_text(pem)
            original(
                key_path,
                host or cloud_host,
                port if port is not None else cloud_port,
                out,
                as_json=as_json,
                **link_options,
            )

    server.__name__ = "server"
    return server


# --- the cloud's repair plan ----------------------------------------------------------------

# Exit code of a repair that put the keys right but did not see the device come back online:
# not a failure of the repair, but not done either (issue #12 item 3), so scripts can tell.
LEFT_TO_DO_EXIT = 3

# What each ``needs`` of the plan (``repair_plan.Need``) asks of the person running it.
NEED_TEXT = {
    "key_pem": "the new public key (--key FILE, or the key the device presented)",
    "two_legged_client": "the product's two-legged OAuth client: --client-id and "
    "--client-secret (or FERMION_CLIENT_ID and FERMION_CLIENT_SECRET)",
    "device_online": "the device powered and connecting to this cloud",
}


@dataclass(frozen=True)
class CloudPlan:
    """``GET /v1/devices/:id/repair_plan``: the server decides, the CLI renders and runs."""

    body: dict[str, Any]

    @property
    def facts(self) -> dict[str, Any]:
        return dict(self.body.get("facts") or {})

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.body.get("steps") or [])

    @property
    def kinds(self) -> list[str]:
        return [str(s["kind"]) for s in self.steps]

    @property
    def refusal(self) -> str | None:
        return self.body.get("refusal")

    @property
    def needs(self) -> list[str]:
        return list(self.body.get("needs") or [])

    @property
    def waits_online(self) -> bool:
        return StepKind.WAIT_ONLINE.value in self.kinds

    @property
    def transport(self) -> Transport:
        return Transport(self.facts.get("transport") or "tcp")

    @property
    def customer(self) -> str | None:
        return self.facts.get("owner") if self.facts.get("owner_kind") == "customer" else None


def fetch_plan(
    api: ApiClient, did: str, key: str = "presented", particle_compatible: bool = False
) -> CloudPlan:
    try:
        return CloudPlan(api.repair_plan(did, key, particle_compatible))
    except ApiError as exc:
        if exc.status == 404:
            raise FermionError(
                f"device {did}: not found in the cloud at {api.api_url} (or not visible to you); "
                "check the id"
            ) from None
        raise


def _client_credentials(
    client_id: str | None, client_secret: str | None
) -> tuple[str | None, str | None]:
    return (
        client_id or os.environ.get("FERMION_CLIENT_ID"),
        client_secret or os.environ.get("FERMION_CLIENT_SECRET"),
    )


def missing_needs(plan: CloudPlan, client_id: str | None, client_secret: str | None) -> list[str]:
    """The plan's needs the CLI cannot meet from what it was given (checked before any step)."""
    missing = []
    if "two_legged_client" in plan.needs and not (client_id and client_secret):
        missing.append("two_legged_client")
    return missing


def print_plan(plan: CloudPlan, missing: list[str] | None = None) -> None:
    if plan.refusal:
        return
    for i, step in enumerate(plan.steps, 1):
        console.print(f"  {i}. {step['text']}")
    for note in plan.body.get("notes") or []:
        console.print(f"  note: {note}")
    if plan.steps:
        console.print("  needs:")
        for need in plan.needs:
            mark = " [bold red](missing)[/]" if need in (missing or []) else ""
            console.print(f"    - {NEED_TEXT.get(need, need)}{mark}")


def wait_online(
    api: ApiClient, did: str, fingerprint: str | None, timeout: float, since: str | None = None
) -> dict[str, Any] | None:
    """Poll until the cloud reports the device online (with ``fingerprint`` current)."""
    deadline = time.monotonic() + timeout
    while True:
        d = api.device(did)
        fresh = since is None or (d.get("last_handshake_at") or "") > since
        if (
            d.get("online")
            and fresh
            and (fingerprint is None or d.get("key_fingerprint") == fingerprint)
        ):
            return d
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)


def left_to_do(did: str, plan: CloudPlan, waited: float | None) -> str:
    """What a repair that put the keys right still leaves to do, said for a person."""
    if not plan.waits_online:
        return (
            f"device {did}: the keys are right, but this cloud runs no device server for its "
            f"{plan.transport.value.upper()} transport, so it cannot come online here; left to "
            "do: serve that transport, then check it connects"
        )
    how = (
        f"did not come online within {waited:.0f} s" if waited is not None else "was not waited for"
    )
    return (
        f"device {did}: the cloud holds the new key, but the device {how}; left to do: power it "
        f"(or start it: `fermion sim run {did}`) so it presents that key, and check with "
        f"`fermion device list`"
    )


def _finish_left_to_do(message: str) -> None:
    err.print(f"[bold yellow]not done:[/] {message}", soft_wrap=True)
    raise typer.Exit(LEFT_TO_DO_EXIT)


# --- keys repair ---------------------------------------------------------------------------


def repair(
    device_id: str | None = typer.Argument(
        None, metavar="[DEVICE]", help="The device (or none, with --product and --health)."
    ),
    key_file: Path | None = typer.Option(
        None, "--key", help="The new public key (e.g. DEVICE.pub.pem from `keys save`)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan and what it needs, and stop."
    ),
    particle_compatible: bool = typer.Option(
        False,
        "--particle-compatible",
        help="Customer devices: Particle's unclaim, send, customer token, claim back "
        "(needs the product's two-legged client).",
    ),
    product: str | None = typer.Option(
        None, "--product", help="Product id or slug the device must be in."
    ),
    health: str | None = typer.Option(
        None,
        "--health",
        help="Without DEVICE: repair every device of --product whose key health is this "
        "(mismatch, no_key, unknown), with the key each presented.",
    ),
    client_id: str | None = typer.Option(
        None, "--client-id", help="Two-legged client id (FERMION_CLIENT_ID)."
    ),
    client_secret: str | None = typer.Option(
        None, "--client-secret", help="Two-legged client secret (FERMION_CLIENT_SECRET)."
    ),
    wait: bool = typer.Option(
        True,
        "--wait/--no-wait",
        help=f"Wait for the device to come online with the new key (exit {LEFT_TO_DO_EXIT} "
        "when it does not: the keys are right, the device is not back yet).",
    ),
    timeout: float = typer.Option(ONLINE_TIMEOUT, "--timeout", help="Seconds to wait online."),
    as_json: bool = JSON_OPT,
) -> None:
    """Repair a device's key in the cloud: run the cloud's plan, verify, wait for it online."""
    client_id, client_secret = _client_credentials(client_id, client_secret)
    if device_id is None:
        if product is None or health is None:
            raise FermionError("give DEVICE, or --product P and --health H for a whole fleet")
        if key_file is not None:
            raise FermionError("--key: names one device's key; give DEVICE with it")
        _repair_fleet(
            product,
            health,
            dry_run=dry_run,
            particle_compatible=particle_compatible,
            client=(client_id, client_secret),
            wait=wait,
            timeout=timeout,
            as_json=as_json,
        )
        return
    if health is not None:
        raise FermionError("--health: selects devices of a product; give it without DEVICE")
    did = _device_id(device_id)
    with ApiClient() as api:
        api.require_token()
        if product is not None:
            _require_in_product(api, did, product)
        plan, pem, new_fp = _prepared(api, did, key_file, particle_compatible)
        missing = missing_needs(plan, client_id, client_secret)
        facts = plan.facts
        result: dict[str, Any] = {
            "device": did,
            "owner": facts.get("owner_kind"),
            "owner_label": facts.get("owner"),
            "product_id": facts.get("product_id"),
            "caller_role": facts.get("caller_role"),
            "plan": plan.kinds,
            "steps": [s["text"] for s in plan.steps],
            "needs": plan.needs,
            "missing": missing,
            "notes": list(plan.body.get("notes") or []),
            "refusal": plan.refusal,
        }
        if not as_json:
            console.print(f"repair plan for {did}:")
            print_plan(plan, missing)
        if missing:
            message = _missing_text(did, missing)
            if dry_run:
                result["done"] = False
                if as_json:
                    print_json(result)
                else:
                    console.print(f"the real run will refuse: {message}")
                return
            raise FermionError(f"{message}; nothing was changed")
        if dry_run or not plan.steps:
            if as_json:
                print_json({**result, "done": False})
            return
        before = _apply(api, did, plan, pem, new_fp, client_id, client_secret)
        online = None
        waited = None
        if plan.waits_online and wait:
            waited = timeout
            if not as_json:
                console.print(f"waiting up to {timeout:.0f} s for {did} to come online ...")
            online = wait_online(api, did, new_fp, timeout, _since(before, new_fp))
        result.update(done=True, fingerprint=new_fp, online=bool(online))
        unfinished = None if online else left_to_do(did, plan, waited)
        result["left_to_do"] = unfinished
    if as_json:
        print_json(result)
    else:
        console.print(f"repaired {did}: key {new_fp} is current, owner unchanged")
        if online:
            console.print(f"{did} is online with the new key")
    if unfinished:
        _finish_left_to_do(unfinished)


def _prepared(
    api: ApiClient, did: str, key_file: Path | None, particle_compatible: bool
) -> tuple[CloudPlan, str | None, str | None]:
    """(the cloud's plan, the new key's PEM, its fingerprint); raises the plan's refusal."""
    plan = fetch_plan(api, did, "file" if key_file else "presented", particle_compatible)
    transport = plan.transport
    pem: str | None = None
    new_fp: str | None = None
    if key_file is not None:
        loaded = _read_key_arg(key_file, did)
        if loaded.algorithm is not transport.algorithm:
            raise KeyFormatError(
                f"{key_file}: is an {loaded.algorithm.value.upper()} key, but device {did} "
                f"uses {transport.value.upper()} and needs an "
                f"{transport.algorithm.value.upper()} key; nothing was changed"
            )
        pem, new_fp = _pem(loaded), loaded.fingerprint.sha256
    elif plan.body.get("candidate"):
        candidate = plan.body["candidate"]
        pem, new_fp = candidate.get("public_key"), candidate.get("fingerprint")
    if plan.refusal:
        raise FermionError(plan.refusal)
    return plan, pem, new_fp


def _missing_text(did: str, missing: list[str]) -> str:
    return f"device {did}: this plan needs " + "; ".join(NEED_TEXT[m] for m in missing)


def _apply(
    api: ApiClient,
    did: str,
    plan: CloudPlan,
    pem: str | None,
    new_fp: str | None,
    client_id: str | None,
    client_secret: str | None,
) -> dict[str, Any]:
    """Run the plan's steps and check the end state; returns the device as it was before."""
    before = api.device(did)
    _Runner(api, did, plan, pem, plan.transport, client_id, client_secret).run()
    _check_end_state(did, before, api.device(did), new_fp)
    return before


def _since(before: dict[str, Any], new_fp: str | None) -> str | None:
    """The handshake time a new one must pass. A fresh handshake proves the new key, unless the
    device was already online with it (the cloud held that key before): nothing new to see."""
    if before.get("online") and before.get("key_fingerprint") == new_fp:
        return None
    return before.get("last_handshake_at")


# The cloud's key health classes (``store.models.KeyHealth``), as devices list them.
HEALTH_CLASSES = ("mismatch", "no_key", "unknown", "ok")


@dataclass
class _FleetRow:
    device: str
    plan: list[str]
    outcome: str  # planned, refused, needs, failed, repaired, online, left to do, nothing to do
    detail: str = ""
    fingerprint: str | None = None
    since: str | None = None
    waits: bool = False


def _repair_fleet(
    product: str,
    health: str,
    *,
    dry_run: bool,
    particle_compatible: bool,
    client: tuple[str | None, str | None],
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Every device of ``product`` whose key health is ``health``: each one's own plan from the
    cloud (the key it presented), run one after the other, then one bounded wait for them all."""
    from fermion.cli.output import over_many, table

    if health not in HEALTH_CLASSES:
        raise FermionError(
            f"--health: {health!r} is not a key health; use one of {', '.join(HEALTH_CLASSES)}"
        )
    with ApiClient() as api:
        api.require_token()
        devices: list[dict[str, Any]] = []
        page = 1
        while True:
            body = api.product_devices(product, page=page)
            devices += body.get("devices", [])
            if page >= int(body.get("meta", {}).get("total_pages") or 1):
                break
            page += 1
        chosen = [str(d["id"]) for d in devices if d.get("key_health") == health]

        def one(did: str) -> _FleetRow:
            try:
                plan, pem, new_fp = _prepared(api, did, None, particle_compatible)
            except FermionError as exc:
                return _FleetRow(did, [], "refused", str(exc))
            missing = missing_needs(plan, *client)
            if missing:
                return _FleetRow(did, plan.kinds, "needs", _missing_text(did, missing))
            if not plan.steps:
                notes = plan.body.get("notes") or [""]
                return _FleetRow(did, [], "nothing to do", str(notes[0]))
            if dry_run:
                return _FleetRow(did, plan.kinds, "planned", plan.steps[0]["text"])
            try:
                before = _apply(api, did, plan, pem, new_fp, *client)
            except FermionError as exc:
                return _FleetRow(did, plan.kinds, "failed", str(exc))
            row = _FleetRow(did, plan.kinds, "repaired", fingerprint=new_fp)
            row.since, row.waits = _since(before, new_fp), plan.waits_online
            if not plan.waits_online:
                row.outcome, row.detail = "left to do", left_to_do(did, plan, None)
            return row

        rows = over_many(chosen, f"repairing {len(chosen)} device(s)", one, quiet=as_json)
        pending = [r for r in rows if r.outcome == "repaired" and r.waits]
        if wait:
            deadline = time.monotonic() + timeout
            while pending and time.monotonic() < deadline:
                for r in list(pending):
                    if wait_online(api, r.device, r.fingerprint, 0, r.since) is not None:
                        r.outcome = "online"
                        pending.remove(r)
                if pending:
                    time.sleep(1.0)
        for r in pending:
            r.outcome = "left to do"
            r.detail = (
                f"did not come online within {timeout:.0f} s; power it (or `fermion sim run`)"
                if wait
                else "not awaited (--no-wait)"
            )
    if as_json:
        print_json(
            {
                "product": product,
                "health": health,
                "dry_run": dry_run,
                "devices": [
                    {
                        "device": r.device,
                        "plan": r.plan,
                        "outcome": r.outcome,
                        "detail": r.detail,
                        "fingerprint": r.fingerprint,
                    }
                    for r in rows
                ],
            }
        )
    else:
        table(
            f"product {product}, key health {health}: {len(rows)} device(s)"
            + (" (dry run: nothing changed)" if dry_run else ""),
            ("id", "plan", "outcome", "detail"),
            ((r.device, " > ".join(r.plan), r.outcome, r.detail) for r in rows),
        )
    outcomes = {r.outcome for r in rows}
    if outcomes & {"refused", "needs", "failed"}:
        raise typer.Exit(1)
    if "left to do" in outcomes:
        raise typer.Exit(LEFT_TO_DO_EXIT)


def _require_in_product(api: ApiClient, did: str, product: str) -> None:
    try:
        api.device(did, product)
    except ApiError as exc:
        if exc.status in (400, 404):
            raise FermionError(
                f"--product: device {did} is not in product {product} (or you cannot see it)"
            ) from None
        raise


class _Runner:
    """Runs a plan's steps in order; on failure after an unclaim, claims the device back."""

    def __init__(
        self,
        api: ApiClient,
        did: str,
        plan: CloudPlan,
        pem: str | None,
        transport: Transport,
        client_id: str | None,
        client_secret: str | None,
    ) -> None:
        self.api = api
        self.did = did
        self.plan = plan
        self.customer = plan.customer
        self.pem = pem
        self.algorithm = transport.algorithm.api_name
        self.client_id = client_id
        self.client_secret = client_secret
        self.customer_token: str | None = None
        self.unclaimed = False

    def run(self) -> None:
        for i, step in enumerate(self.plan.steps, 1):
            kind = StepKind(step["kind"])
            if kind in (StepKind.VERIFY, StepKind.WAIT_ONLINE):
                continue
            try:
                self._do(kind, step.get("product_id"))
            except FermionError as exc:
                undo = self._compensate() if self.unclaimed else ""
                after = (
                    "; nothing was changed"
                    if i == 1
                    else f"; retry with `fermion keys repair {self.did}` once the cause is fixed"
                )
                raise FermionError(
                    f"step {i} ({step['text']}) failed: {exc}{undo}{after}"
                ) from None

    def _do(self, kind: StepKind, product_id: int | None) -> None:
        api = self.api
        if kind is StepKind.SEND:
            assert self.pem is not None
            api.send_public_key(self.did, self.pem, self.algorithm, product_id)
        elif kind is StepKind.APPROVE:
            candidate = self.plan.body["candidate"]
            api.request("POST", f"/v1/devices/{self.did}/keys/candidates/{candidate['id']}/approve")
        elif kind is StepKind.ATOMIC_REPAIR:
            assert self.pem is not None
            api.repair(
                self.did,
                {"deviceID": self.did, "publicKey": self.pem, "algorithm": self.algorithm},
            )
        elif kind is StepKind.UNCLAIM:
            api.unclaim(self.did)
            self.unclaimed = True
        elif kind is StepKind.CUSTOMER_TOKEN:
            assert self.client_id and self.client_secret and self.customer
            body = api.customer_token(self.client_id, self.client_secret, self.customer)
            self.customer_token = str(body["access_token"])
        elif kind is StepKind.CLAIM_AS_CUSTOMER:
            assert self.customer_token
            api.claim(self.did, token=self.customer_token)
            self.unclaimed = False

    def _compensate(self) -> str:
        """Claim the device back to the same customer; say whether that worked."""
        who = self.customer
        try:
            if self.customer_token is None:
                assert self.client_id and self.client_secret and who
                body = self.api.customer_token(self.client_id, self.client_secret, who)
                self.customer_token = str(body["access_token"])
            self.api.claim(self.did, token=self.customer_token)
            self.unclaimed = False
            return f"; the device was claimed back to customer {who}"
        except (FermionError, AssertionError) as exc:
            return (
                f"; claiming it back to customer {who} ALSO failed ({exc}): claim it with a "
                f"token for {who} (POST /v1/devices id={self.did})"
            )


def _check_end_state(
    did: str, before: dict[str, Any], after: dict[str, Any], new_fp: str | None
) -> None:
    for field in ("owner", "customer"):
        if (before.get(field) or None) != (after.get(field) or None):
            raise FermionError(
                f"device {did}: {field} changed from {before.get(field)} to {after.get(field)} "
                "during the repair; check it with `fermion device list`"
            )
    if new_fp and after.get("key_fingerprint") not in (None, new_fp):
        raise FermionError(
            f"device {did}: the cloud's current key is {after.get('key_fingerprint')}, not the "
            f"new key {new_fp}"
        )


# --- keys doctor ---------------------------------------------------------------------------


class DoctorFailed(FermionError):
    pass


def doctor(
    device_id: str = typer.Argument(..., metavar="DEVICE"),
    device: str | None = DEVICE_OPT,
    dct: Path | None = DCT_OPT,
    dfu: bool = DFU_OPT,
    platform: str | None = PLATFORM_OPT,
    wait: bool = typer.Option(
        True,
        "--wait/--no-wait",
        help=f"Wait for the device to come online with the new key; when it does not, the old "
        f"key is put back. --no-wait leaves the new keys and exits {LEFT_TO_DO_EXIT} (not done).",
    ),
    timeout: float = typer.Option(ONLINE_TIMEOUT, "--timeout", help="Seconds to wait online."),
    keys_dir: Path | None = typer.Option(
        None,
        "--keys-dir",
        help="Where the new key and the backup of the old one are written "
        "(default: DATA_DIR/keys/DEVICE, mode 0700; DATA_DIR is FERMION_HOME).",
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """New key -> upload -> confirm -> write to the device -> reset -> online; rolls back."""
    did = _device_id(device_id)
    folder = _private_folder(keys_dir or default_data_dir() / "keys" / did)
    link = resolve_link(did, device, dct, dfu, platform)
    assert link is not None
    if link.device_id and link.device_id != did:
        raise DeviceError(f"{link.name}: holds device id {link.device_id}, not {did}")
    transport = link.transport()
    steps: list[str] = []

    def step(text: str) -> None:
        steps.append(text)
        if not as_json:
            console.print(f"  {len(steps)}. {text}")

    with ApiClient() as api:
        api.require_token()
        # The cloud's plan for a key we hold (the one made below): who may do what, and how
        # the key goes up (sent, or the atomic repair for a customer's device).
        plan = fetch_plan(api, did, "file")
        if plan.refusal:
            raise DoctorFailed(f"{plan.refusal}; the device and the cloud were not changed")
        if plan.transport is not transport:
            raise KeyFormatError(
                f"device {did}: the cloud knows it as a {plan.transport.value.upper()} device, "
                f"but {link.name} uses {transport.value.upper()}; nothing was changed"
            )
        upload = next(
            s
            for s in plan.steps
            if s["kind"] in (StepKind.SEND.value, StepKind.ATOMIC_REPAIR.value)
        )
        previous_cloud = _current_version(api, did)
        old_slot = read_private_key_slot(link, transport)
        backup = _backup_slot(folder, did, transport, old_slot)
        if not as_json:
            console.print(f"keys doctor {did} ({link.name}):")
        key = generate_device_key(transport.algorithm)
        loaded = load_key(private_key_der(key), "new key")
        new_fp = loaded.fingerprint.sha256
        files = write_new_key_files(key, folder / f"{did}_{transport.algorithm.value}_new")
        step(f"made a new {transport.algorithm.value.upper()} key {new_fp} ({files['pem']})")

        # Upload first: a refused upload must leave the device exactly as it was.
        pid = upload.get("product_id")
        customer = upload["kind"] == StepKind.ATOMIC_REPAIR.value
        try:
            if customer:
                api.repair(
                    did,
                    {
                        "deviceID": did,
                        "publicKey": _pem(loaded),
                        "algorithm": transport.algorithm.api_name,
                    },
                )
            else:
                api.send_public_key(did, _pem(loaded), transport.algorithm.api_name, pid)
        except FermionError as exc:
            raise DoctorFailed(
                f"step 2 (upload the new key) failed: {exc}; the device and the cloud were not "
                "changed"
            ) from None
        how = "atomic repair" if customer else f"sent{f' with product id {pid}' if pid else ''}"
        step(f"uploaded the new public key ({how})")

        def rollback(failed: str, reason: str, device_written: bool) -> DoctorFailed:
            notes = []
            if device_written:
                try:
                    link.write_region(PRIVATE_KEY_SLOT[transport].offset, old_slot)
                    link.reset()
                    notes.append("the previous key is back on the device")
                except FermionError as exc:
                    notes.append(
                        f"restoring the previous key on the device FAILED ({exc}); it is saved "
                        f"in {backup}: `fermion keys load {backup} --device {did}`"
                    )
            notes.append(_restore_cloud(api, did, previous_cloud))
            return DoctorFailed(
                f"step {failed} failed: {reason}; "
                + "; ".join(notes)
                + f"; retry with `fermion keys doctor {did}` once the cause is fixed"
            )

        current = api.device(did).get("key_fingerprint")
        if current not in (None, new_fp):
            raise rollback("3 (confirm the cloud holds it)", f"the cloud's key is {current}", False)
        step("the cloud holds the new key")

        try:
            write_private_key(link, transport, private_key_der(key))
        except FermionError as exc:
            raise rollback("4 (write the key to the device)", str(exc), False) from None
        step(f"wrote the new key to {link.name}")
        try:
            pointed = _ensure_server_key(api, link, transport)
        except FermionError as exc:
            raise rollback("4 (write the cloud's server key)", str(exc), True) from None
        if pointed:
            step(f"wrote this cloud's server key and address ({pointed}) to {link.name}")
        before = api.device(did).get("last_handshake_at")
        try:
            link.reset()
        except FermionError as exc:
            raise rollback("5 (reset the device)", str(exc), True) from None
        step("reset the device")
        online = False
        if plan.waits_online and wait:
            if not as_json:
                console.print(f"  waiting up to {timeout:.0f} s for {did} to come online ...")
            if wait_online(api, did, new_fp, timeout, before) is None:
                raise rollback(
                    "6 (wait for the device to come online with the new key)",
                    f"it did not within {timeout:.0f} s (is it running? `fermion sim run {did}`)",
                    True,
                )
            online = True
            step("the device is online with the new key")
    # Never "done" for a device that did not come back (issue #12 item 3).
    unfinished = None if online else left_to_do(did, plan, None)
    if as_json:
        print_json(
            {
                "device": did,
                "fingerprint": new_fp,
                "steps": steps,
                "online": online,
                "backup": str(backup) if backup else None,
                "keys_dir": str(folder),
                "left_to_do": unfinished,
            }
        )
    elif online:
        console.print(f"doctor done: {did} is online with key {new_fp}, and so is the cloud's")
    if not as_json:
        console.print(f"  the new private key is in {folder} (0600)")
    if unfinished:
        _finish_left_to_do(unfinished)


def _ensure_server_key(api: ApiClient, link: DeviceLink, transport: Transport) -> str | None:
    """Write the cloud's server key (and address) when the device holds another one.

    A brownout or a reformat loses the server key with the device key (spark-cli #165 asked the
    doctor to restore it). Returns the address written, or None when the key was already right.
    """
    from fermion.device.dct import read_server_key_slot, write_server_key_file
    from fermion.device.serverkey import format_server_key
    from fermion.device.store import data_dir
    from fermion.keys import load_public_key

    try:
        pem, host, port = cloud_server_key(api, transport)
    except FermionError:
        return None  # this cloud serves no such devices yet: nothing better to write
    wanted = load_public_key(pem.encode(), "the cloud's server key")
    try:
        held = load_key(read_server_key_slot(link, transport), "server key slot").public
        if public_key_pem(held) == public_key_pem(wanted):
            return None
    except FermionError:
        pass  # erased or corrupt: write it
    with tempfile.TemporaryDirectory(prefix="fermion-server-key-") as tmp:
        key_path = Path(tmp) / "server.pub.pem"
        key_path.write_text(pem)
        formatted = format_server_key(key_path, host, port, transport, data_dir(), link.name)
    write_server_key_file(link, formatted.transport, formatted.data)
    return f"{host}:{port or transport.default_port}"


def _current_version(api: ApiClient, did: str) -> int | None:
    try:
        body = api.device_keys(did)
    except ApiError:
        return None
    for k in body.get("keys", []):
        if k.get("current"):
            return int(k["version"])
    return None


def _restore_cloud(api: ApiClient, did: str, version: int | None) -> str:
    if version is None:
        return "the cloud had no key before, so it keeps the new one (the device does not hold it)"
    try:
        api.request("POST", f"/v1/devices/{did}/keys/{version}/restore")
    except FermionError as exc:
        return f"restoring key version {version} in the cloud FAILED ({exc})"
    return f"the cloud's current key is version {version} again"


def _private_folder(path: Path) -> Path:
    """A folder for private keys: made 0700, so a key never sits readable in a checkout.

    particle-cli writes its doctor's keys into the working directory; a repair run from a
    project folder then leaves private keys where they get committed.
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise FermionError(f"--keys-dir: cannot make {path} ({exc.strerror})") from None
    return path


def _backup_slot(folder: Path, did: str, transport: Transport, slot: bytes) -> Path | None:
    """particle-cli keeps ``pre_...`` before overwriting; we keep the raw slot, 0600."""
    if is_erased_slot(slot):
        return None
    path = folder / f"pre_{did}_{transport.algorithm.value}.der"
    atomic_write(path, slot, mode=0o600)
    return path


# --- registration --------------------------------------------------------------------------


_registered = False


def register(app: typer.Typer) -> None:
    """Add the cloud-facing commands to the ``keys`` app (``keys_cmd.app``, mounted on ``app``).

    Only Typer's public ``command()``: ``keys server`` is registered again, wrapping the offline
    one; Typer builds the click group from the registered commands in order, so the later
    ``server`` is the one ``fermion keys server`` runs and lists.
    """
    global _registered
    del app  # the keys app is keys_cmd's own; ``app`` is where main() mounted it
    if _registered:
        return  # main() may mount more than once in one process (tests)
    _registered = True
    from fermion.cli import keys_cmd

    keys_app = keys_cmd.app
    keys_app.command("server")(wrap_server(keys_cmd.server))
    keys_app.command("send")(send)
    keys_app.command("approve")(approve)
    keys_app.command("reject")(reject)
    keys_app.command("repair")(repair)
    keys_app.command("doctor")(doctor)


__all__ = ["register", "resolve_link"]
