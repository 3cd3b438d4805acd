"""Handshake rate of the sans-IO state machines against the RSA ceiling, in one process.

    python -m bench.handshake [--batches 30] [--per-batch 20]

The ceiling is the RSA work one handshake cannot avoid, done with the same library in the same
run: one RSA-2048 PKCS#1 v1.5 decrypt, one RSA-2048 raw signature (no DigestInfo), one RSA-1024
encrypt. The state machines are timed on the server side only: the device's bytes (key block,
Hello frame) are recorded once from a real ``DeviceConnection`` and replayed, which works
because the server's randomness is pinned (same nonce and session bytes each time; the RSA and
AES work does not depend on their values). Two machines are measured: ``ServerHandshake``
(nonce to 384-byte reply) and ``ServerConnection`` (nonce to the server's Hello).

The machine is shared and noisy, so small batches of each kind alternate and are timed in
process CPU time; the report gives the median and best batch rate and the ratios of medians.
No network, no sockets: the device server's benchmark (workers, connections held, RSS) builds
on this one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo

from fermion.keys import generate_device_key, generate_server_key
from fermion.protocol import NEED_DATA
from fermion.protocol.coap import Hello
from fermion.protocol.connection import DeviceConnection, HelloReceived, ServerConnection
from fermion.protocol.handshake import DeviceIdentified, ServerHandshake

PKCS1 = padding.PKCS1v15()
DEVICE_ID = bytes.fromhex("3a0038000747343337373738")
NONCE = os.urandom(40)
SESSION = os.urandom(40)
COUNTER_SEED = os.urandom(2)
HELLO = Hello(6, 1, 0x36, 6, system_version=5004, max_message_size=960, max_binary_size=1 << 20)


def pinned_random(size: int) -> bytes:
    """The server's randomness, pinned so recorded device bytes stay valid."""
    return {40: NONCE, 2: COUNTER_SEED}.get(size) or os.urandom(size)


def session_random() -> Callable[[int], bytes]:
    """Nonce, then session bytes, then the counter seed, like one ServerConnection asks."""
    chunks = [NONCE, SESSION, COUNTER_SEED]
    return lambda size: chunks.pop(0)


@dataclass
class Transcript:
    """What a device sends: its 256-byte key block and then its Hello frame."""

    block: bytes
    hello_frame: bytes


def record(server_key: rsa.RSAPrivateKey, device_key: rsa.RSAPrivateKey) -> Transcript:
    server = ServerConnection(server_key, random=session_random())
    device = DeviceConnection(device_key, DEVICE_ID, server_key.public_key(), HELLO)
    server.initiate()
    device.receive_data(server.data_to_send())
    device.next_event()
    block = device.data_to_send()
    server.receive_data(block)
    server.next_event()
    server.accept(device_key.public_key())
    device.receive_data(server.data_to_send())
    device.next_event()
    return Transcript(block, device.data_to_send())


def ceiling(server_key, device_public, transcript: Transcript, count: int) -> None:
    digest, material = os.urandom(20), os.urandom(40)
    for _ in range(count):
        server_key.decrypt(transcript.block, PKCS1)
        device_public.encrypt(material, PKCS1)
        server_key.sign(digest, PKCS1, NoDigestInfo())


def handshakes(server_key, device_public, transcript: Transcript, count: int) -> None:
    for _ in range(count):
        server = ServerHandshake(server_key, random=pinned_random)
        server.initiate()
        server.receive_data(transcript.block)
        if not isinstance(server.next_event(), DeviceIdentified):
            raise AssertionError("recorded block refused")
        server.accept(device_public)


def connections(server_key, device_public, transcript: Transcript, count: int) -> None:
    for _ in range(count):
        server = ServerConnection(server_key, random=session_random())
        server.initiate()
        server.data_to_send()
        for data in (transcript.block, transcript.hello_frame):
            server.receive_data(data)
            while (event := server.next_event()) is not NEED_DATA:
                if isinstance(event, DeviceIdentified):
                    server.accept(device_public)
                elif isinstance(event, HelloReceived):
                    server.send_hello()
                else:
                    raise AssertionError(f"unexpected {event!r}")
            server.data_to_send()
        if server.hello is None or server.closed:
            raise AssertionError("connection did not reach the Hello exchange")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.handshake", description=__doc__)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--per-batch", type=int, default=20)
    args = parser.parse_args(argv)

    server_key, device_key = generate_server_key(), generate_device_key()
    device_public = device_key.public_key()
    transcript = record(server_key, device_key)
    benches = {
        "ceiling": ceiling,
        "ServerHandshake (nonce -> 384-byte reply)": handshakes,
        "ServerConnection (nonce -> server Hello)": connections,
    }
    rates: dict[str, list[float]] = {name: [] for name in benches}
    for bench in benches.values():  # warm OpenSSL's per-key caches outside the timing
        bench(server_key, device_public, transcript, 5)
    for _ in range(args.batches):
        for name, bench in benches.items():
            start = time.process_time()
            bench(server_key, device_public, transcript, args.per_batch)
            rates[name].append(args.per_batch / (time.process_time() - start))

    base = statistics.median(rates["ceiling"])
    print(
        f"handshake benchmark, one core: {args.batches} batches x {args.per_batch}, "
        "process CPU time, rates in handshakes/s"
    )
    print(f"  {'':<44} {'median':>8} {'best':>8} {'ratio':>6}")
    for name, values in rates.items():
        label = "RSA ceiling (2048 dec + 2048 sign + 1024 enc)" if name == "ceiling" else name
        median = statistics.median(values)
        print(f"  {label:<44} {median:8.1f} {max(values):8.1f} {median / base:6.2f}")


if __name__ == "__main__":
    main()
