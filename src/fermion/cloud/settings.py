"""Where the cloud keeps its data and where it listens, read from the environment.

``FERMION_HOME`` names the data directory (default: the platform's user data directory);
``FERMION_DATABASE_URL`` names the database (default: a SQLite file in the data directory).
``FERMION_DEVICE_HOST`` is the host devices should dial for the device server, when the bind
address is not it (a wildcard bind, NAT, a DNS name); ``GET /v1/server-keys`` advertises it.
``FERMION_METRICS_TOKEN`` is the bearer token ``GET /metrics`` then requires.
The server listens on loopback unless told otherwise: exposing it is a decision, not a default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from fermion.errors import FermionError
from fermion.paths import default_data_dir

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# Particle's own limit for request bodies is not documented; 1 MB is far above any key upload
# or device import we accept and far below what could hurt the process.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Host devices dial for the device server; None: the API's own host.
    device_host: str | None = None
    # ``GET /metrics``: with a token, only with ``Authorization: Bearer <token>`` (from any
    # address); without one, from loopback only unless ``metrics_public``.
    metrics_token: str | None = None
    metrics_public: bool = False

    @classmethod
    def from_env(
        cls,
        data_dir: Path | None = None,
        host: str | None = None,
        port: int | None = None,
        environ: dict[str, str] | None = None,
        device_host: str | None = None,
        metrics_public: bool = False,
    ) -> Settings:
        env = os.environ if environ is None else environ
        if data_dir is None:
            data_dir = default_data_dir(env)
        data_dir = data_dir.expanduser()
        url = env.get("FERMION_DATABASE_URL") or sqlite_url(data_dir / "fermion.db")
        return cls(
            data_dir=data_dir,
            database_url=normalise_database_url(url),
            host=host or DEFAULT_HOST,
            port=DEFAULT_PORT if port is None else port,
            device_host=device_host or env.get("FERMION_DEVICE_HOST") or None,
            metrics_token=env.get("FERMION_METRICS_TOKEN") or None,
            metrics_public=metrics_public,
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secret_key_file(self) -> Path:
        """The key secrets are sealed with (``FERMION_SECRET_KEY_FILE`` or the data
        directory's ``secret.key``): see ``fermion.cloud.secretbox``."""
        from fermion.cloud import secretbox

        return secretbox.key_file(self.data_dir)

    def ensure_data_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise FermionError(f"{self.data_dir}: cannot create data directory ({exc})") from None
        from fermion.cloud import secretbox

        # Exported, so that API and device worker processes seal and open with the same key.
        secretbox.use_key_file(self.secret_key_file, for_children=True)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def normalise_database_url(url: str) -> str:
    """Accept the URLs people write and give the async driver SQLAlchemy needs."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    raise FermionError(
        f"FERMION_DATABASE_URL: {url.split('://', 1)[0]!r} is not supported; "
        "use sqlite:///PATH or postgresql://USER:PASS@HOST/DB"
    )
