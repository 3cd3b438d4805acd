"""The CLI's one HTTP client for a Particle-compatible REST API, and where its login lives.

Profiles work like particle-cli's: a small JSON file per profile (API URL, token, its expiry,
user name), written with mode 0600, and a ``profile.json`` naming the active one. They live in
``$FERMION_HOME/profiles`` when ``FERMION_HOME`` is set (tests, demos), else in the user's config
directory. ``FERMION_API_URL`` and ``FERMION_TOKEN`` override the profile for one run;
``FERMION_PROFILE`` picks a profile for one run.

Requests are shaped as particle-cli sends them (form bodies, Bearer auth, the password grant with
a client id/secret in the body), so the same CLI works against any Particle-compatible cloud.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import platformdirs

from fermion.errors import FermionError
from fermion.fsutil import atomic_write

DEFAULT_API_URL = "http://127.0.0.1:8080"
DEFAULT_PROFILE = "default"
# What particle-cli >= 3.48 sends on the password grant; any client id works for that grant.
CLI_CLIENT_ID = "particle-cli"
CLI_CLIENT_SECRET = "particle-cli"
TOKEN_DURATION = 7_776_000  # 90 days, as particle-cli asks
# particle-cli refuses to start a key command with a token that dies within a minute.
EXPIRY_MARGIN = timedelta(seconds=60)
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SETTINGS = {"api-url": "api_url", "apiUrl": "api_url", "api_url": "api_url"}


class ApiError(FermionError):
    """The API refused a request; the message is the API's own, on one line."""

    def __init__(self, message: str, status: int, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class NotLoggedIn(FermionError):
    pass


def config_dir() -> Path:
    home = os.environ.get("FERMION_HOME")
    if home:
        return Path(home).expanduser() / "profiles"
    return Path(platformdirs.user_config_dir("fermion"))


def _check_name(name: str) -> str:
    if not _PROFILE_NAME.match(name):
        raise FermionError(
            f"profile: {name!r} is not a valid name (letters, digits, '.', '_', '-', up to 64)"
        )
    return name


@dataclass
class Profile:
    """One profile's settings as stored on disk."""

    name: str
    api_url: str = DEFAULT_API_URL
    access_token: str | None = None
    access_token_expires_at: str | None = None
    username: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return config_dir() / f"{self.name}.config.json"

    @classmethod
    def load(cls, name: str) -> Profile:
        path = config_dir() / f"{_check_name(name)}.config.json"
        if not path.exists():
            return cls(name=name)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise FermionError(f"{path}: not a readable profile ({exc})") from None
        if not isinstance(data, dict):
            raise FermionError(f"{path}: not a readable profile (expected a JSON object)")
        known = {
            k: data.pop(k)
            for k in ("api_url", "access_token", "access_token_expires_at", "username")
            if k in data
        }
        return cls(name=name, extra=data, **known)

    def save(self) -> None:
        data = dict(self.extra)
        data.update(
            api_url=self.api_url,
            access_token=self.access_token,
            access_token_expires_at=self.access_token_expires_at,
            username=self.username,
        )
        # 0600: the file holds a bearer token.
        atomic_write(self.path, (json.dumps(data, indent=2) + "\n").encode(), mode=0o600)

    def set(self, setting: str, value: str) -> None:
        key = _SETTINGS.get(setting)
        if key is None:
            raise FermionError(f"profile set: unknown setting {setting!r} (known: api-url)")
        if key == "api_url":
            value = normalise_url(value)
        setattr(self, key, value)

    def token_expired(self, now: datetime | None = None) -> bool:
        if not self.access_token_expires_at:
            return False
        try:
            at = datetime.fromisoformat(self.access_token_expires_at.replace("Z", "+00:00"))
        except ValueError:
            return False
        return at - EXPIRY_MARGIN <= (now or datetime.now(UTC))


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise FermionError(f"api-url: {url!r} is not an http(s) URL")
    return url


def active_profile_name() -> str:
    env = os.environ.get("FERMION_PROFILE")
    if env:
        return _check_name(env)
    path = config_dir() / "profile.json"
    try:
        name = json.loads(path.read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_PROFILE
    return _check_name(name) if isinstance(name, str) else DEFAULT_PROFILE


def use_profile(name: str) -> None:
    _check_name(name)
    atomic_write(config_dir() / "profile.json", json.dumps({"name": name}).encode(), mode=0o600)


def list_profiles() -> list[str]:
    directory = config_dir()
    if not directory.is_dir():
        return []
    return sorted(p.name.removesuffix(".config.json") for p in directory.glob("*.config.json"))


def error_message(body: Any, status: int) -> str:
    """The message a person should read, in particle-cli's order of preference."""
    if isinstance(body, dict):
        for key in ("error_description", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(
                str(e.get("error", e)) if isinstance(e, dict) else str(e) for e in errors
            )
        info = body.get("info")
        if isinstance(info, str) and info:
            return info
    if isinstance(body, str) and body.strip():
        return body.strip().splitlines()[0][:300]
    return f"HTTP {status}"


class ApiClient:
    """A thin, synchronous client: one method per call the CLI makes."""

    def __init__(
        self,
        api_url: str | None = None,
        token: str | None = None,
        profile: Profile | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.profile = profile or Profile.load(active_profile_name())
        self.api_url = normalise_url(
            api_url or os.environ.get("FERMION_API_URL") or self.profile.api_url
        )
        env_token = os.environ.get("FERMION_TOKEN")
        self._token_from_env = bool(token or env_token)
        self.token = token or env_token or self.profile.access_token
        self._http = httpx.Client(
            base_url=self.api_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "fermion-cli"},
            trust_env=False,  # loopback and the configured cloud only; no proxy surprises
        )

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def require_token(self) -> str:
        if (
            not self.token
            and self.profile.name != DEFAULT_PROFILE
            and not self.profile.path.exists()
        ):
            known = ", ".join(list_profiles()) or "none yet"
            raise NotLoggedIn(
                f"not logged in to {self.api_url}: profile {self.profile.name!r} does not exist "
                f"(profiles: {known}); create it "
                f"with `FERMION_PROFILE={self.profile.name} fermion login`, or pick another "
                "with `fermion profile use NAME`"
            )
        if not self.token:
            raise NotLoggedIn(
                f"not logged in to {self.api_url}; run `fermion login` (or set FERMION_TOKEN)"
            )
        if not self._token_from_env and self.profile.token_expired():
            raise NotLoggedIn(
                f"your login to {self.api_url} has expired; run `fermion login` again"
            )
        return self.token

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, Any] | None = None,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        auth: bool | str = True,
        basic: tuple[str, str] | None = None,
    ) -> Any:
        headers: dict[str, str] = {}
        if isinstance(auth, str):
            headers["Authorization"] = f"Bearer {auth}"
        elif auth:
            headers["Authorization"] = f"Bearer {self.require_token()}"
        try:
            response = self._http.request(
                method,
                path,
                data=form,
                json=json_body,
                params=params,
                files=files,
                headers=headers,
                auth=basic,
            )
        except httpx.TransportError as exc:
            raise FermionError(
                f"cannot reach the cloud at {self.api_url} ({type(exc).__name__}: {exc}); is it "
                "running? (`fermion profile set api-url URL` points the CLI elsewhere)"
            ) from None
        body: Any
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            message = error_message(body, response.status_code)
            if response.status_code == 401 and auth is True:
                # The API's sentence may end in a full stop: ".; run" reads as a typo.
                message = message.rstrip(". ") + "; run `fermion login`"
            raise ApiError(message, response.status_code, body)
        return body

    # -- tokens -----------------------------------------------------------------------------

    def password_login(
        self, username: str, password: str, expires_in: int = TOKEN_DURATION
    ) -> dict[str, Any]:
        return self.request(
            "POST",
            "/oauth/token",
            form={
                "grant_type": "password",
                "username": username,
                "password": password,
                "client_id": CLI_CLIENT_ID,
                "client_secret": CLI_CLIENT_SECRET,
                "expires_in": str(expires_in),
            },
            auth=False,
        )

    def customer_token(self, client_id: str, client_secret: str, email: str) -> dict[str, Any]:
        """A two-legged client's token for one customer (``scope=customer=<email>``)."""
        return self.request(
            "POST",
            "/oauth/token",
            form={"grant_type": "client_credentials", "scope": f"customer={email}"},
            basic=(client_id, client_secret),
            auth=False,
        )

    def access_tokens(self) -> list[dict[str, Any]]:
        """The account's live tokens (ids and expiry: the cloud keeps no token secrets)."""
        return list(self.request("GET", "/v1/access_tokens"))

    def current_token(self) -> dict[str, Any]:
        return self.request("GET", "/v1/access_tokens/current")

    def delete_current_token(self) -> dict[str, Any]:
        return self.request("DELETE", "/v1/access_tokens/current")

    def revoke_token(self, token: str) -> dict[str, Any]:
        # particle-cli sends no credentials: knowing a token is enough to revoke it.
        return self.request("DELETE", f"/v1/access_tokens/{token}", auth=False)

    def user(self) -> dict[str, Any]:
        return self.request("GET", "/v1/user")

    # -- devices ----------------------------------------------------------------------------

    def devices(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/devices")

    def device(self, device_id: str, product: str | int | None = None) -> dict[str, Any]:
        if product is not None:
            return self.request("GET", f"/v1/products/{product}/devices/{device_id}")
        return self.request("GET", f"/v1/devices/{device_id}")

    def claim(self, device_id: str, token: str | None = None) -> dict[str, Any]:
        return self.request(
            "POST",
            "/v1/devices",
            form={"id": device_id.lower(), "request_transfer": "false"},
            auth=token if token else True,
        )

    def unclaim(self, device_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/v1/devices/{device_id}")

    def rename(self, device_id: str, name: str) -> dict[str, Any]:
        return self.request("PUT", f"/v1/devices/{device_id}", form={"name": name})

    def send_public_key(
        self, device_id: str, pem: str, algorithm: str, product_id: str | int | None = None
    ) -> dict[str, Any]:
        form: dict[str, Any] = {
            "deviceID": device_id.lower(),
            "publicKey": pem,
            "filename": "cli",
            "order": f"manual_{int(datetime.now(UTC).timestamp() * 1000)}",
            "algorithm": algorithm,
        }
        if product_id is not None:
            form["product_id"] = str(product_id)
        return self.request("POST", f"/v1/provisioning/{device_id.lower()}", form=form)

    # -- Fermion's key endpoints ------------------------------------------------------------

    def server_keys(self) -> dict[str, Any]:
        return self.request("GET", "/v1/server-keys", auth=False)

    def device_keys(self, device_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/devices/{device_id}/keys")

    def key_candidates(self, device_id: str) -> list[dict[str, Any]]:
        body = self.request("GET", f"/v1/devices/{device_id}/keys/candidates")
        if isinstance(body, dict):
            return list(body.get("candidates", []))
        return list(body)

    def repair_plan(
        self, device_id: str, key: str = "presented", particle_compatible: bool = False
    ) -> dict[str, Any]:
        """The cloud's repair plan for this device and caller (Fermion; changes nothing)."""
        params = {"key": key, "particle_compatible": "true" if particle_compatible else "false"}
        return dict(self.request("GET", f"/v1/devices/{device_id}/repair_plan", params=params))

    def decide_candidate(
        self, device_id: str, decision: str, fingerprint: str | None = None
    ) -> dict[str, Any]:
        form = {"fingerprint": fingerprint} if fingerprint else None
        return self.request("POST", f"/v1/devices/{device_id}/keys/{decision}", form=form)

    def repair(self, device_id: str, form: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/v1/devices/{device_id}/keys/repair", form=form)

    def restore_key(self, device_id: str, fingerprint: str) -> dict[str, Any]:
        return self.request(
            "POST", f"/v1/devices/{device_id}/keys/restore", form={"fingerprint": fingerprint}
        )

    # -- products ---------------------------------------------------------------------------

    def product(self, product: str | int) -> dict[str, Any]:
        body = self.request("GET", f"/v1/products/{product}")
        return body.get("product", body) if isinstance(body, dict) else body

    def product_devices(
        self, product: str | int, page: int = 1, per_page: int = 100
    ) -> dict[str, Any]:
        return self.request(
            "GET",
            f"/v1/products/{product}/devices",
            params={"page": page, "perPage": per_page},
        )

    def product_add_devices(self, product: str | int, ids: list[str]) -> dict[str, Any]:
        # As particle-cli: a multipart file with one id a line, even for one device.
        content = ("\n".join(ids) + "\n").encode()
        return self.request(
            "POST",
            f"/v1/products/{product}/devices",
            files={"file": ("devices.txt", content, "text/plain")},
        )

    def product_remove_device(self, product: str | int, device_id: str) -> Any:
        return self.request("DELETE", f"/v1/products/{product}/devices/{device_id}")

    def customers(self, product: str | int) -> dict[str, Any]:
        return self.request("GET", f"/v1/products/{product}/customers")

    def create_customer(
        self, product: str | int, email: str, password: str | None
    ) -> dict[str, Any]:
        form: dict[str, Any] = {"email": email}
        if password:
            form["password"] = password
        else:
            form["no_password"] = "true"
        return self.request("POST", f"/v1/products/{product}/customers", form=form)

    def delete_customer(self, product: str | int, email: str) -> dict[str, Any]:
        return self.request("DELETE", f"/v1/products/{product}/customers/{email}")

    def create_client(
        self, product: str | int | None, name: str, type_: str, redirect_uri: str | None = None
    ) -> dict[str, Any]:
        form: dict[str, Any] = {"name": name, "type": type_}
        if redirect_uri:
            form["redirect_uri"] = redirect_uri
        path = f"/v1/products/{product}/clients" if product is not None else "/v1/clients"
        return self.request("POST", path, form=form)

    def clients(self, product: str | int) -> list[dict[str, Any]]:
        body = self.request("GET", f"/v1/products/{product}/clients")
        return list(body.get("clients", [])) if isinstance(body, dict) else list(body)

    def team(self, product: str | int) -> list[dict[str, Any]]:
        body = self.request("GET", f"/v1/products/{product}/team")
        return list(body.get("team", [])) if isinstance(body, dict) else list(body)

    def audit(self, device_id: str) -> list[dict[str, Any]]:
        return self.audit_events({"device_id": device_id})

    def audit_events(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """``GET /v1/audit`` with the API's own filter names (device_id, product_id, actor,
        action, since, until, before_id, limit); None values are left out."""
        params = {k: v for k, v in filters.items() if v is not None}
        body = self.request("GET", "/v1/audit", params=params)
        return list(body.get("events", [])) if isinstance(body, dict) else list(body)

    def products(self) -> list[dict[str, Any]]:
        body = self.request("GET", "/v1/user/products")
        return list(body.get("products", [])) if isinstance(body, dict) else list(body)

    def delete_client(self, product: str | int, client_id: str) -> Any:
        return self.request("DELETE", f"/v1/products/{product}/clients/{client_id}")

    def team_invite(self, product: str | int, email: str, role: str | None) -> dict[str, Any]:
        form = {"username": email, **({"role": role} if role else {})}
        return self.request("POST", f"/v1/products/{product}/team", form=form)

    def team_role(self, product: str | int, email: str, role: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/products/{product}/team/{email}", form={"role": role})

    def team_remove(self, product: str | int, email: str) -> dict[str, Any]:
        return self.request("DELETE", f"/v1/products/{product}/team/{email}")


def store_login(profile: Profile, username: str, token_body: dict[str, Any]) -> None:
    """Remember a fresh token in the profile, with its expiry as particle-cli keeps it."""
    profile.access_token = str(token_body["access_token"])
    profile.username = username
    expires_in = token_body.get("expires_in")
    if isinstance(expires_in, int) and expires_in > 0:
        at = datetime.now(UTC) + timedelta(seconds=expires_in)
        profile.access_token_expires_at = at.isoformat().replace("+00:00", "Z")
    else:
        profile.access_token_expires_at = None
    profile.save()
