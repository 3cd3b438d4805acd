"""Drive the real Particle clients (particle-cli, particle-api-js) against a real `fermion serve`.

Everything runs on loopback: a `fermion serve` subprocess (the shared harness's ``Server``) on an
ephemeral port with its own data directory and SQLite file, the CLI in a throw-away HOME whose
profile file points at it, and Node with a preloaded guard (`loopback_guard.cjs`) that refuses
and records any connection that is not to loopback, so a test can also prove the clients did
not phone home.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import harness
from fermion.keys import Algorithm, fingerprint, generate_device_key, public_key_pem
from harness import free_port as free_port  # re-exported: tests import it from here
from harness import new_device_id
from harness.serve import PROXY_VARS

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NODE_MODULES = REPO / "node_modules"
PARTICLE_CLI = NODE_MODULES / "particle-cli" / "src" / "index.js"
API_JS_RUNNER = HERE / "apijs_call.cjs"
LOOPBACK_GUARD = HERE / "loopback_guard.cjs"

# The CLI's spinner and prompts write cursor-control sequences even when stdout is a pipe.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# Variables that would send the clients' traffic somewhere other than where the test says.
_PROXY_VARS = PROXY_VARS


def node_missing_reason() -> str | None:
    """Why the compat tests cannot run here, or None when Node and npm are present."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: the compat tests run the real Node clients"
    return None


def ensure_clients_installed() -> None:
    """Install the pinned clients from the committed lock file when `make` has not yet done so."""
    if PARTICLE_CLI.exists() and (NODE_MODULES / "particle-api-js").exists():
        return
    proc = subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise AssertionError(f"npm ci failed (run it in {REPO}):\n{proc.stderr[-2000:]}")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text).replace("\r", "")


def fermion_bin() -> str:
    candidate = Path(sys.executable).with_name("fermion")
    return str(candidate) if candidate.exists() else "fermion"


@dataclass
class Result:
    """What a person running the client saw."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class FermionServer(harness.Server):
    """A `fermion serve` (the shared harness's) with its own data directory and embedded SQLite
    file, a device server on a port of its own (never the default 5683: several test runs share
    this machine), and the operator's and curl's ways to talk to it."""

    def __init__(self, home: Path) -> None:
        super().__init__(None, home, device_server=True)

    @property
    def home(self) -> Path:
        return self.data_dir

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process

    def admin(self, *args: str, stdin: str | None = None) -> str:
        """Run `fermion admin ...` on this server's data directory; return its stdout."""
        proc = subprocess.run(
            [fermion_bin(), "admin", *args],
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"fermion admin {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc.stdout

    def server_log(self) -> str:
        return self.log_tail(4000)

    # --- talking to the API the way Particle's docs do (curl), to check what the cloud holds ---

    def password_token(self, email: str, password: str, **extra: str) -> str:
        with self.http() as c:
            r = c.post(
                "/oauth/token",
                auth=("particle", "particle"),
                data={"grant_type": "password", "username": email, "password": password, **extra},
            )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def get(self, path: str, token: str, **params: Any) -> httpx.Response:
        with self.http(token) as c:
            return c.get(path, params=params)


@dataclass
class ParticleCli:
    """particle-cli 3.40.0 in its own HOME, pointed at a Fermion server by its profile file."""

    home: Path
    api_url: str
    net_log: Path

    def __post_init__(self) -> None:
        particle_dir = self.home / ".particle"
        particle_dir.mkdir(parents=True, exist_ok=True)
        config = particle_dir / "particle.config.json"
        if not config.exists():
            config.write_text(json.dumps({"apiUrl": self.api_url}, indent=2))

    @property
    def config(self) -> dict[str, Any]:
        return dict(json.loads((self.home / ".particle" / "particle.config.json").read_text()))

    def __call__(self, *args: str, stdin: str | None = None, cwd: Path | None = None) -> Result:
        proc = subprocess.run(
            ["node", str(PARTICLE_CLI), *args],
            env=node_env(self.home, self.net_log),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=60,
            cwd=cwd or self.home,
        )
        return Result(proc.returncode, strip_ansi(proc.stdout), strip_ansi(proc.stderr))


@dataclass
class ApiJs:
    """particle-api-js 12, one method call per Node process (see apijs_call.cjs)."""

    base_url: str
    home: Path
    net_log: Path

    def __call__(
        self,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {"baseUrl": self.base_url, "method": method, "args": args or {}}
        if client_id is not None:
            spec["clientId"] = client_id
            spec["clientSecret"] = client_secret
        proc = subprocess.run(
            ["node", str(API_JS_RUNNER)],
            env=node_env(self.home, self.net_log),
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert proc.returncode == 0, f"node failed:\n{proc.stdout}\n{proc.stderr}"
        return dict(json.loads(proc.stdout))


def node_env(home: Path, net_log: Path) -> dict[str, str]:
    """A clean environment for a Node client: its own HOME, no proxies, no update checks."""
    home.mkdir(parents=True, exist_ok=True)
    # particle-cli takes the first of $home, $HOME, $HOMEPATH, $USERPROFILE as the home folder.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _PROXY_VARS and k not in ("home", "HOMEPATH", "USERPROFILE")
    }
    env.update(
        HOME=str(home),
        PARTICLE_DISABLE_UPDATE="1",
        NO_UPDATE_NOTIFIER="1",
        FORCE_COLOR="0",
        NODE_OPTIONS=f"--require {LOOPBACK_GUARD}",
        FERMION_COMPAT_NET_LOG=str(net_log),
    )
    return env


@dataclass(frozen=True)
class Account:
    email: str
    password: str


@dataclass(frozen=True)
class Team:
    """A product with its owner, a Developer and a View-only member, as the seed's team has."""

    owner: Account
    developer: Account
    viewer: Account
    product_id: int
    owner_token: str


def create_user(server: FermionServer, email: str) -> Account:
    password = "pw-" + secrets.token_hex(8)
    server.admin("create-user", email, "--password", password)
    return Account(email, password)


def public_key_for(alg_name: str) -> tuple[str, str]:
    """A fresh device key (RSA-1024 or P-256, as `particle keys new` makes): PEM and SHA256."""
    key = generate_device_key(Algorithm.parse(alg_name))
    return public_key_pem(key.public_key()).decode(), fingerprint(key).sha256


def provision(
    server: FermionServer, token: str, *, product_id: int | None = None, alg: str = "rsa"
) -> str:
    """Set-up shortcut: a new device, sent the request `particle keys send` sends (form)."""
    device_id = new_device_id()
    pem, _ = public_key_for(alg)
    form = {
        "deviceID": device_id,
        "publicKey": pem,
        "order": "manual_1",
        "filename": "cli",
        "algorithm": "ecc" if alg in ("ec", "ecc") else "rsa",
    }
    if product_id is not None:
        form["product_id"] = str(product_id)
    with server.http(token) as c:
        r = c.post(f"/v1/provisioning/{device_id}", data=form)
    assert r.status_code == 200, r.text
    return device_id


def claim(server: FermionServer, token: str, device_id: str) -> None:
    """Set-up shortcut: the claim `particle device add` sends (JSON)."""
    with server.http(token) as c:
        r = c.post("/v1/devices", json={"id": device_id, "request_transfer": False})
    assert r.status_code == 200, r.text


def current_key(server: FermionServer, token: str, device_id: str) -> dict[str, Any]:
    """The device's current key version, from Fermion's key history (GET /v1/devices/:id/keys)."""
    r = server.get(f"/v1/devices/{device_id}/keys", token)
    assert r.status_code == 200, r.text
    (current,) = [k for k in r.json()["keys"] if k.get("current")]
    return dict(current)


@dataclass(frozen=True)
class ProductClient:
    client_id: str
    secret: str


def customer_token(api_js: ApiJs, team: Team, client: ProductClient, email: str) -> str:
    r = api_js(
        "createCustomer",
        {"email": email, "password": "customer-pw-1", "product": team.product_id},
        client_id=client.client_id,
        client_secret=client.secret,
    )
    assert r["ok"], r
    return str(r["body"]["access_token"])
