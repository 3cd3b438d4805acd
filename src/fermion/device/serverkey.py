"""Preparing the server-key file that ``keys server`` and ``sim create --server-key`` write.

The bytes come from ``fermion.keys.serverfile``; this module only picks the key (a file, or the
built-in backup cloud's key like particle-cli's default ``assets/keys/<alg>.pub.der``), checks it
against the device's transport, and merges ``--host``/``--port`` with an address the file may
already carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fermion.device import builtin
from fermion.errors import ServerKeyFileError
from fermion.keys import Algorithm, PublicKey, fingerprint
from fermion.keys.serverfile import (
    ServerAddress,
    Transport,
    decode_server_key_file,
    encode_server_key_file,
    server_key_file_name,
)


@dataclass(frozen=True)
class FormattedServerKey:
    data: bytes
    transport: Transport
    public_key: PublicKey
    address: ServerAddress | None
    #: particle-cli's output name for this file.
    default_name: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key).sha256


def format_server_key(
    source: Path | None,
    host: str | None,
    port: int | None,
    transport: Transport | None,
    home: Path,
    target: str | None = None,
) -> FormattedServerKey:
    """Build the padded file; ``target`` names the device in a wrong-algorithm error."""
    if source is None:
        if transport is None:
            raise ServerKeyFileError(
                "server key: give a key FILE, or --device/--dct so the built-in key can be chosen"
            )
        public = builtin.backup_public_key(home, transport)
        base = f"{transport.algorithm.value}.pub"
        existing: ServerAddress | None = None
    else:
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise ServerKeyFileError(f"{source}: no such file") from None
        except OSError as exc:
            raise ServerKeyFileError(f"{source}: cannot read ({exc.strerror})") from None
        parsed = decode_server_key_file(data, str(source))
        public = parsed.public_key
        algorithm = Algorithm.of(public)
        if transport is not None and algorithm is not transport.algorithm:
            raise ServerKeyFileError(
                f"{source}: is an {algorithm.value.upper()} server key but "
                f"{target or 'the device'} uses {transport.value.upper()} and needs "
                f"{transport.algorithm.value.upper()}"
            )
        transport = transport or (Transport.TCP if algorithm is Algorithm.RSA else Transport.UDP)
        # particle-cli's filenameNoExt drops the last extension only: rsa.pub.der -> rsa.pub.
        base = Path(source).stem
        existing = parsed.address
    if host is not None:
        address: ServerAddress | None = ServerAddress(host, port)
    elif port is not None:
        raise ServerKeyFileError("port: a port needs a host (--host) to go with it")
    else:
        address = existing
    data_out = encode_server_key_file(
        public,
        address.host if address else None,
        address.port if address else None,
        transport,
    )
    return FormattedServerKey(
        data=data_out,
        transport=transport,
        public_key=public,
        address=address,
        default_name=server_key_file_name(base, host, transport),
    )
