"""``fermion up --demo``: the cloud on SQLite, a seeded product and a partly broken fleet.

The demo lives in its own data directory and is kept there: a second start runs the same demo
again (same ports, ids, logins and client secret, and whatever was repaired stays repaired).
``--fresh`` wipes it (only if it is a demo directory) and seeds a new one. Seeding puts people
first, straight into the store (one per product role, a maker with development devices, two
two-legged customers, a two-legged OAuth client), then starts
``fermion serve`` and, when the device branch provides it, ``fermion sim run``; registers a dozen
simulated devices of every ownership kind through the REST API as a CLI user would; breaks some
the ways the seed describes; and prints a banner: URLs, logins, and for each broken device the one
command that repairs it. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fermion.errors import FermionError
from fermion.fsutil import atomic_write
from fermion.paths import default_data_dir

PASSWORD = "fermion-demo-password"
MARKER = ".fermion-demo"
STATE = "demo.json"  # what a later start needs to run the same demo again
STATE_VERSION = 1
CLI = [sys.executable, "-m", "fermion.cli.main"]
DOMAIN = "demo.fermion"
ROLES = ("owner", "administrator", "developer", "support", "view_only")
MAIN_PROFILE = "developer"


@dataclass
class DemoDevice:
    label: str
    platform: str
    kind: str  # development / product, owner / product, unclaimed / customer
    owner: str | None  # person (profile name) or customer email
    fault: str | None = None
    repair: str | None = None  # the one command
    note: str | None = None
    id: str = ""

    @property
    def repairable(self) -> bool:
        return self.repair is not None


@dataclass
class Demo:
    home: Path
    port: int
    product_id: int = 0
    client: tuple[str, str] = ("", "")
    devices: list[DemoDevice] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    device_address: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def email(self, person: str) -> str:
        return f"{person.replace('_', '-')}@{DOMAIN}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_home(data_dir: Path | None) -> Path:
    """A folder of its own under the data directory (FERMION_HOME when set): ``--fresh`` wipes
    it, so it must never be the data directory itself."""
    return (data_dir or default_data_dir() / "demo").expanduser().resolve()


def _kept_state(home: Path) -> dict[str, Any] | None:
    """The state a complete earlier run left, or None (none, or a run stopped while seeding)."""
    try:
        state = json.loads((home / STATE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        return None
    return state


def _prepare_home(home: Path, fresh: bool) -> dict[str, Any] | None:
    """Make ``home`` ready; the kept state when the demo in it runs again, else None."""
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise FermionError(
                f"{home}: exists and is not a Fermion demo directory; give --data-dir an empty "
                "or demo directory"
            )
        kept = None if fresh else _kept_state(home)
        if kept is not None:
            return kept
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / MARKER).write_text(
        "made by `fermion up --demo`; kept between runs, wiped by `fermion up --demo --fresh`\n"
    )
    return None


def _seed_store(demo: Demo) -> None:
    from fermion.cloud import admin
    from fermion.cloud.settings import Settings
    from fermion.cloud.store import Store, upgrade

    settings = Settings.from_env(data_dir=demo.home)
    upgrade(settings.database_url)

    async def go() -> None:
        store = Store(settings.database_url)
        try:
            for person in (*ROLES, "maker"):
                await admin.create_user(store, demo.email(person), PASSWORD)
            product = await admin.create_product(
                store, "Fermion Demo", demo.email("owner"), "photon"
            )
            demo.product_id = int(product.id)
            for role in ROLES[1:]:
                await admin.set_member_role(store, str(product.id), demo.email(role), role)
            demo.client = await admin.create_client(
                store, str(product.id), "demo-backend", "server"
            )
            for who in ("alice", "bob"):
                await admin.create_customer(
                    store, str(product.id), f"{who}@customers.example", None
                )
        finally:
            await store.close()

    asyncio.run(go())


def _start(demo: Demo, args: list[str], log: str) -> subprocess.Popen[bytes]:
    out = open(demo.home / log, "wb")  # noqa: SIM115 - closed when the process is reaped
    proc = subprocess.Popen(
        [*CLI, *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    demo.procs.append(proc)
    return proc


def _serve_options() -> dict[str, str]:
    """Options of `fermion serve` that only some versions have (the device server's port)."""
    from fermion.cli import serve_cmd

    params = inspect.signature(serve_cmd.serve).parameters
    return {name: name.replace("_", "-") for name in params}


def _port_in_use(port: int) -> bool:
    """Whether something listens on the port. SO_REUSEADDR, as the servers set it: the last
    run's connections in TIME_WAIT do not count."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _start_cloud(demo: Demo, device_port: int | None = None) -> None:
    """``fermion serve`` on the demo's port; ``device_port``: the kept demo's device server."""
    args = ["serve", "--port", str(demo.port), "--data-dir", str(demo.home)]
    options = _serve_options()
    if "device_port" in options:
        device_port = device_port or _free_port()
        args += ["--device-port", str(device_port)]
        demo.device_address = f"127.0.0.1:{device_port}"
    for port, what in ((demo.port, "HTTP"), (device_port, "device server")):
        # The kept demo's devices and profiles know these ports: a busy one is said, not moved.
        if port and _port_in_use(port):
            raise FermionError(
                f"the demo's {what} port {port} is in use (another `fermion up`?); stop what "
                "holds it, or start over on new ports with `fermion up --demo --fresh`"
            )
    proc = _start(demo, args, "serve.log")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FermionError(
                f"fermion serve exited ({proc.returncode}); see {demo.home / 'serve.log'}"
            )
        try:
            httpx.get(f"{demo.url}/v1/server-keys", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise FermionError(f"fermion serve did not answer on {demo.url} within 90 s")


def _login_everyone(demo: Demo) -> dict[str, Any]:
    from fermion.cli.api_client import ApiClient, Profile, store_login, use_profile

    clients = {}
    for person in (*ROLES, "maker"):
        profile = Profile.load(person)
        profile.api_url = demo.url
        with ApiClient(profile=profile, api_url=demo.url) as api:
            store_login(
                profile, demo.email(person), api.password_login(demo.email(person), PASSWORD)
            )
        clients[person] = ApiClient(profile=profile, api_url=demo.url)
    default = Profile.load("default")
    default.api_url = demo.url
    default.save()
    # Bare commands in the banner's shell act as the person most repairs need.
    use_profile(MAIN_PROFILE)
    return clients


def _fleet() -> list[DemoDevice]:
    d = DemoDevice
    return [
        d("maker's photon", "photon", "development", "maker"),
        d("maker's photon, browned out", "photon", "development", "maker", "brownout"),
        d("maker's argon, file system reformatted", "argon", "development", "maker", "fs-reformat"),
        d(
            "maker's photon, another cloud's server key",
            "photon",
            "development",
            "maker",
            "server-key",
        ),
        d("product photon claimed by the owner", "photon", "product, owner", "owner"),
        d(
            "product photon claimed by the owner, key regenerated",
            "photon",
            "product, owner",
            "owner",
            "key-regenerated",
        ),
        d("product photon, unclaimed", "photon", "product, unclaimed", None),
        d(
            "product photon, unclaimed, browned out",
            "photon",
            "product, unclaimed",
            None,
            "brownout",
        ),
        d("alice's photon (two-legged)", "photon", "customer", "alice@customers.example"),
        d(
            "alice's photon (two-legged), key regenerated",
            "photon",
            "customer",
            "alice@customers.example",
            "key-regenerated",
        ),
        d(
            "bob's photon (two-legged), bootloader erased",
            "photon",
            "customer",
            "bob@customers.example",
            "bootloader",
        ),
        d("bob's photon (two-legged)", "photon", "customer", "bob@customers.example"),
    ]


def _create_devices(demo: Demo, clients: dict[str, Any]) -> None:
    from fermion.cli.api_client import ApiClient
    from fermion.cli.repair_cmd import cloud_server_key
    from fermion.device.boot import boot
    from fermion.device.dct import write_server_key_file
    from fermion.device.platforms import Platform
    from fermion.device.serverkey import format_server_key
    from fermion.device.store import SimDevice
    from fermion.keys import public_key_pem

    owner = clients["owner"]
    cid, secret = demo.client
    for dev in _fleet():
        platform = Platform.parse(dev.platform)
        sim = SimDevice.create(platform, demo.home)
        transport = sim.transport()
        try:
            pem, host, port = cloud_server_key(owner, transport)
        except FermionError:
            pem = None  # this cloud has no key for the transport: the device keeps the backup
        if pem is not None:
            with tempfile.TemporaryDirectory() as tmp:
                key_path = Path(tmp) / "server.pub.pem"
                key_path.write_text(pem)
                formatted = format_server_key(key_path, host, port, transport, demo.home, sim.name)
            image = sim.load_image()
            write_server_key_file(image, transport, formatted.data)
            sim.save_image(image)
        else:
            dev.note = f"this cloud has no {transport.value.upper()} server key yet"
        boot(sim)
        dev.id = sim.id
        public = public_key_pem(_device_public(sim)).decode()
        alg = transport.algorithm.api_name
        if dev.kind == "development":
            clients["maker"].send_public_key(sim.id, public, alg)
        else:
            owner.send_public_key(sim.id, public, alg, demo.product_id)
            if dev.kind == "product, owner":
                owner.claim(sim.id)
            elif dev.kind == "customer":
                assert dev.owner is not None
                token = owner.customer_token(cid, secret, dev.owner)["access_token"]
                with ApiClient(api_url=demo.url, token=token) as as_customer:
                    as_customer.claim(sim.id, token=token)
        demo.devices.append(dev)


def _device_public(sim: Any) -> Any:
    from fermion.device.dct import decode_private_key_slot, read_private_key_slot

    image = sim.load_image()
    return decode_private_key_slot(
        read_private_key_slot(image, sim.transport(image)), sim.name
    ).public


def _break(demo: Demo) -> None:
    from fermion.device import faults
    from fermion.device.boot import boot
    from fermion.device.dct import PRIVATE_KEY_SLOT
    from fermion.device.store import SimDevice
    from fermion.keys import Algorithm, generate_server_key, public_key_pem, write_saved_key_files

    mail = demo.home / "mail"
    export = "FERMION_PROFILE"
    for dev in demo.devices:
        if dev.fault is None:
            continue
        sim = SimDevice.open(dev.id, demo.home)
        if dev.fault == "brownout":
            faults.brownout(sim)
        elif dev.fault == "fs-reformat":
            faults.fs_reformat(sim)
        elif dev.fault == "bootloader":
            faults.erase_bootloader(sim)
        elif dev.fault == "server-key":
            other = demo.home / "other-cloud.pub.pem"
            if not other.exists():
                other.write_bytes(public_key_pem(generate_server_key(Algorithm.RSA).public_key()))
            faults.overwrite_server_key(sim, other)
        elif dev.fault == "key-regenerated":
            # The key slot reads erased: the device makes a new key at reset (reference §2.2).
            image = sim.load_image()
            slot = PRIVATE_KEY_SLOT[sim.transport(image)]
            image.write_region(slot.offset, b"\xff" * slot.size)
            sim.save_image(image)
        if dev.fault != "bootloader":
            boot(sim)

        who = "developer" if dev.kind != "development" else "maker"
        if dev.fault == "server-key":
            dev.repair = f"{export}={who} fermion keys server --device {dev.id}"
        elif dev.fault in ("brownout", "fs-reformat"):
            dev.repair = f"{export}={who} fermion keys doctor {dev.id}"
        elif dev.fault == "key-regenerated":
            # The customer ran `keys save` and mailed the .pub.pem to the team.
            image = sim.load_image()
            saved = write_saved_key_files(
                image.read_region(
                    PRIVATE_KEY_SLOT[sim.transport(image)].offset,
                    PRIVATE_KEY_SLOT[sim.transport(image)].size,
                ),
                mail / dev.id,
                source=sim.name,
            )
            pub = saved["pub_pem"]
            if dev.kind == "customer":
                dev.repair = f"{export}={who} fermion keys repair {dev.id} --key {pub}"
            else:
                dev.repair = (
                    f"{export}={who} fermion keys send --product_id {demo.product_id} "
                    f"{dev.id} {pub}"
                )
        elif dev.fault == "bootloader":
            dev.note = (
                "bootloader erased (dim blue D7): a firmware fault, not a key fault; no key "
                "command can help, reflash the bootloader"
            )


def _start_devices(demo: Demo) -> bool:
    from fermion.cli import sim_cmd

    names = {
        c.name or (c.callback.__name__ if c.callback else "")
        for c in sim_cmd.app.registered_commands
    }
    if "run" not in names:
        return False
    _start(demo, ["sim", "run", "--all"], "sim-run.log")
    return True


def banner(demo: Demo, devices_running: bool, kept: bool = False) -> str:
    # PATH too: a second shell has not activated the virtual environment `make up` made.
    bin_dir = Path(sys.executable).parent
    exports = (
        f"export FERMION_HOME={shlex.quote(str(demo.home))} FERMION_API_URL={demo.url} "
        f'PATH={shlex.quote(str(bin_dir))}:"$PATH"'
    )
    lines = [
        "",
        "=" * 78,
        "Fermion demo is up",
        "=" * 78,
        f"  API:        {demo.url}/v1   (OpenAPI: {demo.url}/docs)",
        f"  console:    {demo.url}/",
        f"  devices:    {demo.device_address or 'device server not available in this build'}",
        f"  data:       {demo.home}",
        "              "
        + (
            "kept from the last run (repairs made then stay made); "
            if kept
            else "seeded now and kept for the next `make up`; "
        )
        + "`fermion up --demo --fresh` starts over",
        "",
        "  In another shell, first:",
        f"    {exports}",
        "",
        f"  Logins (password {PASSWORD!r}; CLI profiles of the same name, logged in;"
        f" {MAIN_PROFILE!r} is the default):",
    ]
    for person in (*ROLES, "maker"):
        lines.append(f"    {person:<14} {demo.email(person)}")
    lines += [
        f"  Product:    {demo.product_id} (Fermion Demo); two-legged client {demo.client[0]} "
        f"(secret {demo.client[1]})",
        "  Customers:  alice@customers.example, bob@customers.example (two-legged)",
        "",
        "  Devices:",
    ]
    for dev in demo.devices:
        state = "ok" if dev.fault is None else f"BROKEN ({dev.fault})"
        if kept and dev.fault is not None:
            state = f"BROKEN when seeded ({dev.fault}); the repair, if not run yet"
        lines.append(f"    {dev.id}  {dev.label}: {state}")
        if dev.repair:
            lines.append(f"      repair: {dev.repair}")
        if dev.note:
            lines.append(f"      note: {dev.note}")
    if not devices_running:
        lines += [
            "",
            "  note: `fermion sim run` is not in this build, so the devices do not connect;",
            "        the repairs still fix the keys in the cloud and on the devices.",
        ]
    lines += ["", "Ctrl-C stops everything.", "=" * 78, ""]
    return "\n".join(lines)


def _stop(demo: Demo) -> None:
    for proc in reversed(demo.procs):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
    for proc in reversed(demo.procs):
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _save_state(demo: Demo) -> None:
    # Written last, once everything is seeded: a start stopped half-way leaves none, and the
    # next start seeds again. Mode 0600: it holds the two-legged client's secret (the banner
    # prints it too; the database keeps only its hash).
    data = {
        "version": STATE_VERSION,
        "api_url": demo.url,
        "port": demo.port,
        "home": str(demo.home),
        "device_address": demo.device_address,
        "product_id": demo.product_id,
        "client": list(demo.client),
        "devices": [d.__dict__ for d in demo.devices],
    }
    atomic_write(demo.home / STATE, json.dumps(data, indent=2).encode(), mode=0o600)


def _kept_demo(home: Path, kept: dict[str, Any], port: int) -> tuple[Demo, int | None]:
    """The demo an earlier run seeded; (demo, its device server port)."""
    demo = Demo(home=home, port=port or int(kept["port"]))
    demo.product_id = int(kept["product_id"])
    demo.client = (str(kept["client"][0]), str(kept["client"][1]))
    demo.devices = [DemoDevice(**d) for d in kept["devices"]]
    address = kept.get("device_address")
    return demo, int(address.rpartition(":")[2]) if address else None


def _point_profiles(demo: Demo) -> None:
    """The kept profiles (still logged in) at this run's URL, the main one the default."""
    from fermion.cli.api_client import Profile, use_profile

    for person in (*ROLES, "maker", "default"):
        profile = Profile.load(person)
        profile.api_url = demo.url
        profile.save()
    use_profile(MAIN_PROFILE)


def run(demo: bool, data_dir: Path | None, port: int, fresh: bool = False) -> None:
    if not demo:
        raise FermionError("fermion up: only --demo is supported; run `fermion serve` otherwise")
    home = demo_home(data_dir)
    kept = _prepare_home(home, fresh)
    os.environ["FERMION_HOME"] = str(home)  # sims, profiles and the store all live there
    if kept is not None:
        state, device_port = _kept_demo(home, kept, port)
    else:
        state, device_port = Demo(home=home, port=port or _free_port()), None
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        if kept is None:
            _seed_store(state)
            _start_cloud(state)
            clients = _login_everyone(state)
            _create_devices(state, clients)
            _break(state)
        else:
            _start_cloud(state, device_port)
            _point_profiles(state)
        running = _start_devices(state)
        _save_state(state)
        print(banner(state, running, kept=kept is not None), flush=True)
        while all(p.poll() is None for p in state.procs):
            time.sleep(0.5)
        dead = [p for p in state.procs if p.poll() is not None]
        raise FermionError(
            f"a demo process exited ({dead[0].args[3] if dead else '?'}); see the logs in {home}"
        )
    except KeyboardInterrupt:
        print("stopping the demo...", flush=True)
    finally:
        _stop(state)
    print("demo stopped", flush=True)
