"""Real processes for the repair tests: the cloud on loopback, the CLI as a subprocess.

Each ``Cloud`` owns a data directory (``FERMION_HOME``): the cloud's SQLite file, the simulated
devices and the CLI profiles all live there, so tests never touch the user's home and several
runs can share the machine. Each person in a test is a CLI profile (``FERMION_PROFILE``).
The cloud is the shared ``harness.Server`` (one launcher of ``fermion serve`` for every suite),
stopped with SIGINT as a person stops it with Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness import FERMION, Server, stop_process

PASSWORD = "correct horse battery staple"
CLI = FERMION


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


def has_command(*words: str) -> bool:
    """Whether the CLI has ``fermion WORDS...`` (another branch may not have landed yet)."""
    done = subprocess.run([*CLI, *words, "--help"], capture_output=True, text=True, check=False)
    return done.returncode == 0


@dataclass
class Cloud:
    home: Path
    server: Server | None = None
    clients: dict[str, tuple[str, str]] = field(default_factory=dict)
    runners: list[subprocess.Popen[str]] = field(default_factory=list)
    running: set[str] = field(default_factory=set)  # devices a ``run_devices`` runner simulates

    def _server(self) -> Server:
        if self.server is None:
            raise RuntimeError("the cloud is not started: call Cloud.start() first")
        return self.server

    @property
    def url(self) -> str:
        return self._server().url

    @property
    def device_port(self) -> int:
        return self._server().device_port

    def env(self, profile: str | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_")}
        env.update(FERMION_HOME=str(self.home), FERMION_API_URL=self.url, COLUMNS="200")
        if profile:
            env["FERMION_PROFILE"] = profile
        env.update(extra)
        return env

    def start(self) -> Cloud:
        # Serve's own SQLite file in ``home``; the device server on a port of its own, which
        # ``sim`` points the simulated devices at.
        self.server = Server(None, self.home, device_server=True, stop_signal=signal.SIGINT)
        self.server.start()
        return self

    def stop(self) -> None:
        for runner in self.runners:
            stop_process(runner, signal.SIGINT, group=True)
        if self.server is not None:
            self.server.stop()

    def cli(self, *args: str, profile: str | None = None, ok: bool = True, **env: str) -> Result:
        done = subprocess.run(
            [*CLI, *args],
            env=self.env(profile, **env),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        if ok and done.returncode != 0:
            raise AssertionError(f"fermion {' '.join(args)} failed: {done.stderr}{done.stdout}")
        return result

    # -- seeding ----------------------------------------------------------------------------

    def user(self, email: str, login: bool = True) -> str:
        """Create a user and log a profile of the same name in as it; returns the profile."""
        self.cli("admin", "create-user", email, "--password", PASSWORD)
        profile = email.split("@")[0]
        if login:
            self.cli("login", "-u", email, "-p", PASSWORD, profile=profile)
        return profile

    def product(self, name: str, owner: str) -> int:
        out = self.cli("admin", "create-product", name, "--owner", owner).out
        return int(out.split()[2])

    def role(self, product: int, email: str, role: str) -> None:
        self.cli("admin", "set-role", str(product), email, "--role", role)

    def two_legged_client(self, product: int) -> tuple[str, str]:
        out = self.cli("admin", "create-client", str(product), "server-client").out
        fields = dict(line.split(": ", 1) for line in out.strip().splitlines())
        self.clients[str(product)] = (fields["client_id"], fields["client_secret"])
        return self.clients[str(product)]

    def customer_token(self, product: int, email: str) -> str:
        cid, secret = self.clients[str(product)]
        r = httpx.post(
            f"{self.url}/oauth/token",
            auth=(cid, secret),
            data={"grant_type": "client_credentials", "scope": f"customer={email}"},
        )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def server_key_file(self) -> Path:
        path = self.home / "cloud-server.pub.pem"
        if not path.exists():
            keys = self.api(None, "GET", "/v1/server-keys")["keys"]
            path.write_text(next(k for k in keys if k["algorithm"] == "rsa")["public_key"])
        return path

    def sim(self, platform: str = "photon") -> str:
        """A new simulated device pointed at this cloud's device server."""
        args = ["sim", "create", "-p", platform, "--json"]
        args += ["--server-key", str(self.server_key_file()), "--host", "127.0.0.1"]
        args += ["--port", str(self.device_port)]
        return str(self.cli(*args).json[0]["id"])

    def run_devices(self, *devices: str) -> subprocess.Popen[str]:
        """``fermion sim run`` for these devices, in the background until the cloud stops."""
        log = open(self.home / f"sim-run-{len(self.runners)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [*CLI, "sim", "run", *devices, "--ping", "2"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.runners.append(proc)
        self.running.update(devices)
        return proc

    def wait_online(
        self, profile: str, device: str, fingerprint: str | None = None, timeout: float = 90
    ) -> dict[str, Any]:
        """Poll the cloud until it reports the device online (with that key current)."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.api(profile, "GET", f"/v1/devices/{device}")
            if body.get("online") and fingerprint in (None, body.get("key_fingerprint")):
                return body
            time.sleep(0.5)
        raise AssertionError(f"device {device} not online within {timeout} s: {body}")

    def saved_key(self, device: str, name: str | None = None) -> tuple[Path, str]:
        """``keys save`` the device's key (as a customer would); (pub.pem path, fingerprint)."""
        name = name or f"{device}-{time.monotonic_ns()}"
        data = self.cli("keys", "save", name, "--device", device, "--json").json
        return self.home / data["files"]["pub_pem"], data["fingerprint"]["sha256"]

    def token_of(self, profile: str) -> str:
        path = self.home / "profiles" / f"{profile}.config.json"
        return str(json.loads(path.read_text())["access_token"])

    def api(self, profile: str | None, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token_of(profile)}"} if profile else {}
        r = httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kw)
        r.raise_for_status()
        return r.json()

    def snapshot(self, profile: str, devices: list[str]) -> dict[str, tuple[Any, ...]]:
        """Owner, customer, product and key of each device, to show nothing else changed."""
        out = {}
        for d in devices:
            body = self.api(profile, "GET", f"/v1/devices/{d}")
            out[d] = (
                body.get("owner"),
                body.get("customer"),
                body.get("product_id"),
                body.get("key_fingerprint"),
            )
        return out

    def audit(self, profile: str, device: str) -> list[dict[str, Any]]:
        return list(self.api(profile, "GET", "/v1/audit", params={"device_id": device})["events"])
