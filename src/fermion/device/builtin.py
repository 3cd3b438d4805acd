"""What the simulated firmware has compiled in: the backup server key and server address.

Device OS carries ``backup_tcp_public_server_key`` (RSA-2048) and ``backup_udp_public_server_key``
(EC P-256), the keys of Particle's cloud, and falls back to them when the DCT's server key slot is
blank (reference §2.2). We do not have Particle's keys, and a simulated device must never talk to
Particle anyway, so each data directory gets one **stand-in key pair per transport, standing for
"the Particle cloud"**: ``<data dir>/backup-cloud/{rsa,ec}.pem`` (private, for a test cloud that
plays Particle) and ``{rsa,ec}.pub.der`` (what the firmware has compiled in). The file names
mirror particle-cli's ``assets/keys/<alg>.pub.der``, which ``keys server`` uses by default too.

The backup *addresses* are Device OS's own (``device.spark.io`` on TCP, ``$id.udp.particle.io``
on UDP, default port). They are recorded faithfully so that a device that fell back to them is
visibly pointing at "the Particle cloud"; the simulator only ever connects to loopback.
"""

from __future__ import annotations

from pathlib import Path

from fermion.errors import FermionError
from fermion.fsutil import atomic_write
from fermion.keys import (
    PrivateKey,
    PublicKey,
    generate_server_key,
    load_key,
    private_key_pem,
    public_key_der,
)
from fermion.keys.serverfile import ServerAddress, Transport

BACKUP_DIR = "backup-cloud"

# Device OS's compiled-in backup addresses (reference §2.2; DO-CONST).
BACKUP_ADDRESS = {
    Transport.TCP: ServerAddress("device.spark.io"),
    Transport.UDP: ServerAddress("$id.udp.particle.io"),
}


def backup_dir(data_dir: Path) -> Path:
    return Path(data_dir) / BACKUP_DIR


def backup_public_key_path(data_dir: Path, transport: Transport) -> Path:
    return backup_dir(data_dir) / f"{transport.algorithm.value}.pub.der"


def backup_private_key_path(data_dir: Path, transport: Transport) -> Path:
    return backup_dir(data_dir) / f"{transport.algorithm.value}.pem"


def ensure_backup_cloud(data_dir: Path, transport: Transport) -> None:
    """Generate the stand-in key pair for ``transport`` the first time a data dir needs it."""
    private_path = backup_private_key_path(data_dir, transport)
    public_path = backup_public_key_path(data_dir, transport)
    if not private_path.exists():
        key = generate_server_key(transport.algorithm)
        atomic_write(private_path, private_key_pem(key), 0o600, exclusive=True)
    if not public_path.exists():
        private = backup_private_key(data_dir, transport)
        atomic_write(public_path, public_key_der(private.public_key()), 0o644, exclusive=True)


def backup_public_key(data_dir: Path, transport: Transport) -> PublicKey:
    ensure_backup_cloud(data_dir, transport)
    path = backup_public_key_path(data_dir, transport)
    return load_key(path.read_bytes(), str(path)).public


def backup_private_key(data_dir: Path, transport: Transport) -> PrivateKey:
    path = backup_private_key_path(data_dir, transport)
    if not path.exists():
        ensure_backup_cloud(data_dir, transport)
    loaded = load_key(path.read_bytes(), str(path))
    if loaded.private is None:
        raise FermionError(f"{path}: holds no private key; delete it to make a new stand-in cloud")
    return loaded.private


def backup_public_key_der(data_dir: Path, transport: Transport) -> bytes:
    return public_key_der(backup_public_key(data_dir, transport))
