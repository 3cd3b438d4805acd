"""The server-key file Fermion writes for particle-cli users is the one particle-cli itself builds.

particle-cli's `keys server KEY.der --host H --port P` formats the file before writing it over
DFU; its formatting code needs no device, so this runs it (particle_keys_server.cjs) and compares
byte for byte with Fermion's encoder, which `fermion server-key export --format particle` uses.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from compat_harness import HERE, node_env

from fermion.keys import Algorithm, generate_server_key, public_key_der
from fermion.keys.serverfile import encode_server_key_file


def particle_cli_format(
    platform: str, der: Path, host: str, port: int, out: Path, net_log: Path
) -> tuple[str, bytes]:
    proc = subprocess.run(
        [
            "node",
            str(HERE / "particle_keys_server.cjs"),
            platform,
            str(der),
            host,
            str(port),
            str(out),
        ],
        env=node_env(der.parent / "home", net_log),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, out.read_bytes()


@pytest.mark.parametrize(
    ("platform", "alg", "protocol", "size"),
    [("photon", Algorithm.RSA, "tcp", 512), ("argon", Algorithm.EC, "udp", 320)],
)
@pytest.mark.parametrize("host", ["192.168.1.10", "fermion.example.com"])
def test_fermion_server_key_file_equals_particle_clis(
    tmp_path: Path,
    net_log: Path,
    platform: str,
    alg: Algorithm,
    protocol: str,
    size: int,
    host: str,
) -> None:
    public = generate_server_key(alg).public_key()
    der = tmp_path / "server.pub.der"
    der.write_bytes(public_key_der(public))

    used, theirs = particle_cli_format(platform, der, host, 5683, tmp_path / "cli.der", net_log)

    assert used == protocol
    assert len(theirs) == size
    assert encode_server_key_file(public, host, 5683) == theirs
