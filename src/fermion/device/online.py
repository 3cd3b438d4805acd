"""Simulated devices online: the device side of the protocol over asyncio, and a fleet runner.

Each run of a device reads its flash the way Device OS does at reset (device key, server key,
server address, key-error bits), connects to the address in its DCT (or ``--cloud``), and
drives ``fermion.protocol.connection.DeviceConnection``. After the handshake it sends what
Device OS 5.x sends (reference §5): the long Hello, the system Describe, the updates events, a
time request, the application Describe, two subscriptions, then ``spark/device/key/error`` when
key-error bits are set, and a ping after ``ping_interval`` of silence.

A device that is reset (``sim fault``, ``sim boot``, ``keys server`` rewriting its DCT) is
noticed through its files changing; its session is dropped and it starts over, like hardware.

Status: each device's ``status.json`` gets ``online``, ``last_seen``, ``last_protocol_error``
and, in its extra fields, ``led`` (what the RGB LED would show) and ``cloud`` (state, address,
attempts). The LED patterns:

- ``breathing cyan``: connected.
- ``fast cyan with red blink``: keys refused: the server hung up after the key block
  (ProtocolError 26, IO_ERROR_LIGHTSSL_HANDSHAKE_RECV_KEY), or before its Hello, or its session
  key did not decrypt with the device key (6).
- ``orange blink``: the server key is wrong: the server reset the connection on the key block
  (it could not open it), or the reply was not signed by the server key the device holds (8).
  Device OS reports 26 on a hang-up whichever way it happens; the simulator tells the two apart
  by the reset, which the Fermion device server sends only when the block does not open.
- ``fast cyan``: trying to reach the cloud. ``off (dim blue D7)``: dead (bootloader erased).

Only loopback addresses are ever connected to: a device whose DCT names another host (the
backup ``device.spark.io`` after a brownout) stays in ``fast cyan`` and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from fermion.aio import cancel_and_wait
from fermion.device import builtin, keymonitor
from fermion.device.boot import analyse, boot
from fermion.device.dct import (
    clear_claim_code,
    is_erased_slot,
    read_claim_code,
    read_claimed,
    read_private_key_slot,
    write_claimed,
)
from fermion.device.store import SimDevice, now_iso
from fermion.errors import DeviceError, FermionError
from fermion.keys.serverfile import Transport
from fermion.loopback import is_loopback
from fermion.protocol import NEED_DATA, Failure, ProtocolError, coap
from fermion.protocol.connection import (
    CLAIM_CODE_EVENT,
    KEY_ERROR_EVENT,
    AckReceived,
    Closed,
    Connected,
    DeviceConnection,
    MessageReceived,
)
from fermion.protocol.handshake import (
    PeerClosed,
    ServerSignatureInvalid,
    SessionEstablished,
    SessionKeyUndecryptable,
    device_public_key_block,
)

log = logging.getLogger("fermion.sim")

LED_CONNECTED = "breathing cyan"
LED_KEYS_REFUSED = "fast cyan with red blink"
LED_SERVER_KEY = "orange blink"
LED_CONNECTING = "fast cyan"
LED_DEAD = "off (dim blue D7)"

SYSTEM_VERSION = 5004  # what a Device OS 5.0.x Hello carries (reference §5)


@dataclass(frozen=True)
class SimProfile:
    """Timings of a simulated device; tests shorten them."""

    ping_interval: float = 15.0
    ping_timeout: float = 10.0
    hello_timeout: float = 4.0  # Device OS waits 4 s for the server's Hello
    handshake_timeout: float = 20.0
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    flash_check_interval: float = 0.5
    connect_timeout: float = 5.0
    # The local address to connect from (None: the kernel's choice). Loopback tests use another
    # 127.x.y.z to stand for a device on another network.
    source_address: str | None = None


@dataclass
class FlashState:
    """What the firmware reads from flash at reset."""

    transport: Transport
    device_key: rsa.RSAPrivateKey
    public_key_der: bytes | None  # override of the 162 bytes sent (a corrupt slot)
    server_key: rsa.RSAPublicKey
    host: str
    port: int
    key_errors: int
    # Sent once as ``spark/device/claim/code`` after the handshake, then cleared (Device OS
    # does the same); None when there is none or the device counts itself claimed.
    claim_code: str | None = None


def parse_cloud(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[::1]:PORT``); the port defaults to 5683."""
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    try:
        port = int(port_text) if port_text else Transport.TCP.default_port
    except ValueError:
        raise DeviceError(f"--cloud {value!r}: the port must be a number") from None
    if not 1 <= port <= 65535:
        raise DeviceError(f"--cloud {value!r}: port {port} is out of range")
    if not is_loopback(host):
        raise DeviceError(f"--cloud {value!r}: the simulator only connects to loopback")
    return host, port


def read_flash(device: SimDevice) -> FlashState:
    """The keys and address the firmware would use; raises ``DeviceError`` when it cannot run."""
    image = device.load_image()
    transport = device.transport(image)
    if transport is not Transport.TCP:
        raise DeviceError(
            f"{device.name}: runs on UDP (DTLS), which the simulator does not connect yet"
        )
    slot = read_private_key_slot(image, transport)
    report = analyse(image, transport, device.home, image.source)
    public_override: bytes | None = None
    private = report.private_key.key.private if report.private_key.key else None
    if not isinstance(private, rsa.RSAPrivateKey) or report.private_key.state != "ok":
        # Device OS builds its public key blindly from the slot; it cannot decrypt anything.
        private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        public_override = device_public_key_block(slot)
    if report.server_key.state == "erased":
        server_public: Any = builtin.backup_public_key(device.home, transport)
    elif report.server_key.key is not None and report.server_key.state == "ok":
        server_public = report.server_key.key.public
    else:
        server_public = None
    if not isinstance(server_public, rsa.RSAPublicKey) or server_public.key_size != 2048:
        # A corrupt server key: what the device sends is noise to every server.
        server_public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    address = report.server_address_effective
    return FlashState(
        transport=transport,
        device_key=private,
        public_key_der=public_override,
        server_key=server_public,
        host=address.host,
        port=address.port or transport.default_port,
        key_errors=int(report.key_errors),
        claim_code=None if read_claimed(image) else read_claim_code(image),
    )


def _flash_signature(device: SimDevice) -> tuple[int, ...]:
    stamps = []
    for path in (device.dct_path, device.bootloader_path):
        try:
            stamps.append(path.stat().st_mtime_ns)
        except FileNotFoundError:
            stamps.append(0)
    return tuple(stamps)


def describe_json(device: SimDevice, system: bool) -> bytes:
    if system:
        return json.dumps(
            {
                "p": device.platform.id,
                "m": [
                    {"s": 16384, "l": "m", "vc": 30, "vv": 30, "f": "b", "n": "0", "v": 1101},
                    {"s": 262144, "l": "m", "vc": 30, "vv": 30, "f": "s", "n": "1", "v": 5004},
                ],
            },
            separators=(",", ":"),
        ).encode()
    return json.dumps({"f": [], "v": {}}, separators=(",", ":")).encode()


def hello_for(device: SimDevice) -> coap.Hello:
    flags = (
        coap.HelloFlag.DIAGNOSTICS
        | coap.HelloFlag.IMMEDIATE_UPDATES
        | coap.HelloFlag.GOODBYE
        | coap.HelloFlag.DEVICE_INITIATED_DESCRIBE
    )
    return coap.Hello(
        product_id=device.platform.id,
        product_version=1,
        flags=int(flags),
        platform_id=device.platform.id,
        system_version=SYSTEM_VERSION,
        max_message_size=960,
        max_binary_size=262144,
        ota_chunk_size=512,
    )


class _Reset(Exception):
    """The device's flash changed under it: start over as after a reset."""


@dataclass
class _Attempt:
    led: str
    state: str
    error: ProtocolError | None = None
    message: str = ""
    connected: bool = False


class DeviceRunner:
    """Keeps one simulated device connected, reconnecting with backoff."""

    def __init__(
        self,
        device: SimDevice,
        cloud: tuple[str, int] | None = None,
        profile: SimProfile | None = None,
    ) -> None:
        self.device = device
        self.cloud = cloud
        self.profile = profile or SimProfile()
        self.attempts = 0
        self.connections = 0
        self.led = LED_CONNECTING
        self.connected = asyncio.Event()
        self._signature = _flash_signature(device)

    # -- status ---------------------------------------------------------------------------------

    def _write_status(self, attempt: _Attempt, address: str | None) -> None:
        self.led = attempt.led
        status = self.device.load_status()
        status.online = attempt.connected
        if attempt.connected:
            status.last_seen = now_iso()
        if attempt.error is not None:
            status.last_protocol_error = {
                "code": int(attempt.error),
                "name": attempt.error.name,
                "message": attempt.message,
                "at": now_iso(),
            }
        status.extra["led"] = attempt.led
        status.extra["cloud"] = {
            "state": attempt.state,
            "address": address,
            "message": attempt.message,
            "attempts": self.attempts,
            "connections": self.connections,
            "at": now_iso(),
        }
        self.device.save_status(status)

    # -- main loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        backoff = self.profile.backoff_initial
        while True:
            self._signature = _flash_signature(self.device)
            attempt, address = await self._one_attempt()
            if attempt is None:  # reset: start over at once
                backoff = self.profile.backoff_initial
                continue
            self._write_status(attempt, address)
            if self._restored_keys(attempt, address):
                backoff = self.profile.backoff_initial
                continue  # the helper reset the device: start over with the restored keys
            if attempt.state == "dead":
                await self._wait_for_flash_change(None)
                continue
            try:
                await self._sleep_watching(backoff * random.uniform(0.8, 1.2))
            except _Reset:
                backoff = self.profile.backoff_initial
                continue
            backoff = min(backoff * 2, self.profile.backoff_max)

    def _restored_keys(self, attempt: _Attempt, address: str | None) -> bool:
        """DeviceKeyHelperRK on a keys error: restore the backup and reset (``keymonitor``)."""
        code = int(attempt.error) if attempt.error is not None else None
        if self.device.identity.key_backup is None or attempt.connected:
            return False
        if not keymonitor.is_keys_error(self.device.transport(), attempt.state, code):
            return False
        result = keymonitor.on_keys_error(self.device)
        if result is None or not result.restored:
            return False
        attempt.message = f"{keymonitor.RESTORED_MESSAGE}; reset ({attempt.message})"
        self._write_status(attempt, address)
        return True

    async def _one_attempt(self) -> tuple[_Attempt | None, str | None]:
        device = self.device
        if not device.bootloader_intact():
            return _Attempt(LED_DEAD, "dead", message="bootloader erased: no firmware runs"), None
        try:
            if is_erased_slot(read_private_key_slot(device.load_image(), device.transport())):
                boot(device)  # power on: Device OS generates the missing key and resets
                self._signature = _flash_signature(device)
            flash = read_flash(device)
        except FermionError as exc:
            return _Attempt(LED_CONNECTING, "cannot_run", message=str(exc)), None
        host, port = self.cloud or (flash.host, flash.port)
        address = f"{host}:{port}"
        if not is_loopback(host):
            return (
                _Attempt(
                    LED_CONNECTING,
                    "no_cloud",
                    message=f"server address {host} is not loopback; the simulator only "
                    "connects to loopback (use keys server --host or sim run --cloud)",
                ),
                address,
            )
        self.attempts += 1
        try:
            return await self._session(flash, host, port, address), address
        except _Reset:
            return None, address

    async def _session(self, flash: FlashState, host: str, port: int, address: str) -> _Attempt:
        profile = self.profile
        try:
            async with asyncio.timeout(profile.connect_timeout):
                local = (profile.source_address, 0) if profile.source_address else None
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        except (OSError, TimeoutError) as exc:
            return _Attempt(LED_CONNECTING, "unreachable", message=f"cannot connect: {exc}")
        conn = DeviceConnection(
            flash.device_key,
            bytes.fromhex(self.device.id),
            flash.server_key,
            hello_for(self.device),
            public_key_der=flash.public_key_der,
        )
        session = _Session(self, flash, conn, reader, writer)
        try:
            return await session.run()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if session.was_connected:
                self.connected.clear()

    async def _sleep_watching(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while True:
            left = end - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, self.profile.flash_check_interval))
            self.check_flash()

    async def _wait_for_flash_change(self, _: None) -> None:
        with contextlib.suppress(_Reset):
            while True:
                await asyncio.sleep(self.profile.flash_check_interval)
                self.check_flash()

    def check_flash(self) -> None:
        if _flash_signature(self.device) != self._signature:
            raise _Reset


class _Session:
    """One TCP connection of one device."""

    def __init__(
        self,
        runner: DeviceRunner,
        flash: FlashState,
        conn: DeviceConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.runner = runner
        self.flash = flash
        self.conn = conn
        self.reader = reader
        self.writer = writer
        self.was_connected = False
        self.reset_by_peer = False
        self.pending_ping: int | None = None
        self.ping_sent_at = 0.0
        self.last_sent = 0.0
        self.address = f"{writer.get_extra_info('peername')}"

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.writer.write(out)
            self.last_sent = asyncio.get_running_loop().time()

    async def _read(self, timeout: float) -> bytes | None:
        """Bytes from the server; b"" on close or reset; None on timeout."""
        try:
            async with asyncio.timeout(timeout):
                return await self.reader.read(4096)
        except TimeoutError:
            return None
        except (ConnectionResetError, BrokenPipeError):
            self.reset_by_peer = True
            return b""
        except OSError:
            return b""

    async def run(self) -> _Attempt:
        runner = self.runner
        profile = runner.profile
        loop = asyncio.get_running_loop()
        phase_deadline = loop.time() + profile.handshake_timeout
        while True:
            if self.was_connected:
                now = loop.time()
                if self.pending_ping is not None:
                    wait = self.ping_sent_at + profile.ping_timeout - now
                    if wait <= 0:
                        return self._lost(ProtocolError.PING_TIMEOUT, "ping not acknowledged")
                else:
                    wait = self.last_sent + profile.ping_interval - now
                    if wait <= 0:
                        self.pending_ping = self.conn.ping()
                        self.ping_sent_at = now
                        self._flush()
                        continue
            else:
                wait = phase_deadline - loop.time()
                if wait <= 0:
                    if self.conn.session is not None:
                        return _Attempt(
                            LED_KEYS_REFUSED,
                            "no_hello",
                            ProtocolError.MESSAGE_TIMEOUT,
                            "could not receive HELLO response",
                        )
                    return _Attempt(
                        LED_CONNECTING,
                        "handshake_timeout",
                        ProtocolError.IO_ERROR_LIGHTSSL_BLOCKING_RECEIVE,
                        "handshake timed out",
                    )
            data = await self._read(min(max(wait, 0.01), profile.flash_check_interval))
            runner.check_flash()
            if data is None:
                continue
            self.conn.receive_data(data)
            result = self._drain(phase_deadline)
            if isinstance(result, float):
                phase_deadline = result
            elif result is not None:
                return result
            self._flush()
            await self.writer.drain()

    def _drain(self, phase_deadline: float) -> _Attempt | float | None:
        conn = self.conn
        runner = self.runner
        loop = asyncio.get_running_loop()
        new_deadline: float | None = None
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, SessionEstablished):
                new_deadline = loop.time() + runner.profile.hello_timeout
            elif isinstance(event, Connected):
                self._on_connected()
            elif isinstance(event, AckReceived):
                if event.message.message_id == self.pending_ping:
                    self.pending_ping = None
            elif isinstance(event, MessageReceived):
                message = event.message
                if message.code == coap.Code.GET and message.uri_path[:1] == ["d"]:
                    conn.respond(message, coap.Code.CONTENT, describe_json(runner.device, True))
            elif isinstance(event, Closed):
                return self._lost(ProtocolError.IO_ERROR, "the cloud closed the session")
            elif isinstance(event, Failure):
                self._flush()
                return self._classify(event)
        self._flush()
        return new_deadline

    def _forget_claim_code(self) -> None:
        """The code was sent: clear it and mark the device claimed, without the flash change
        counting as one made from outside (which would reset the device)."""
        runner = self.runner
        with contextlib.suppress(FermionError, OSError):
            image = runner.device.load_image()
            clear_claim_code(image)
            write_claimed(image, True)
            runner.device.save_image(image)
            runner._signature = _flash_signature(runner.device)
        self.flash.claim_code = None

    def _on_connected(self) -> None:
        runner = self.runner
        self.was_connected = True
        runner.connections += 1
        conn = self.conn
        device = runner.device
        # What Device OS 5.x sends right after the Hello exchange (reference §5).
        conn.send_describe(coap.DescribeFlag.SYSTEM, describe_json(device, True))
        conn.publish("particle/device/updates/enabled", b"true", private=True)
        conn.publish("particle/device/updates/forced", b"false", private=True)
        conn.request_time()
        conn.send_describe(coap.DescribeFlag.APPLICATION, describe_json(device, False))
        conn.subscribe("particle")
        conn.subscribe("spark")
        if self.flash.key_errors:
            conn.publish(KEY_ERROR_EVENT, str(self.flash.key_errors).encode(), private=True)
        if self.flash.claim_code:
            conn.publish(CLAIM_CODE_EVENT, self.flash.claim_code.encode(), private=True)
            self._forget_claim_code()
        self._flush()
        with contextlib.suppress(FermionError, OSError):
            # A store that cannot be written must not drop a working connection.
            keymonitor.on_connected(device)
        runner._write_status(
            _Attempt(LED_CONNECTED, "connected", connected=True),
            f"{self.writer.get_extra_info('peername')[0]}:"
            f"{self.writer.get_extra_info('peername')[1]}",
        )
        runner.connected.set()

    def _lost(self, error: ProtocolError, message: str) -> _Attempt:
        return _Attempt(LED_CONNECTING, "disconnected", error, message)

    def _classify(self, failure: Failure) -> _Attempt:
        if self.was_connected:
            return self._lost(failure.protocol_error, failure.reason)
        if isinstance(failure, ServerSignatureInvalid):
            return _Attempt(
                LED_SERVER_KEY, "server_key_wrong", failure.protocol_error, failure.reason
            )
        if isinstance(failure, SessionKeyUndecryptable):
            return _Attempt(
                LED_KEYS_REFUSED, "keys_refused", failure.protocol_error, failure.reason
            )
        if isinstance(failure, PeerClosed):
            code = failure.protocol_error
            if code is ProtocolError.IO_ERROR_LIGHTSSL_HANDSHAKE_RECV_KEY:
                if self.reset_by_peer:
                    return _Attempt(
                        LED_SERVER_KEY,
                        "server_key_wrong",
                        code,
                        "the cloud reset the connection on the key block: it cannot open it "
                        "(the device holds another cloud's server key)",
                    )
                return _Attempt(
                    LED_KEYS_REFUSED, "keys_refused", code, "the cloud hung up before the key block"
                )
            if self.conn.session is not None:
                return _Attempt(
                    LED_KEYS_REFUSED,
                    "keys_refused",
                    code,
                    "the cloud hung up before its Hello (device key not accepted)",
                )
            return _Attempt(LED_CONNECTING, "disconnected", code, failure.reason)
        return _Attempt(LED_CONNECTING, "failed", failure.protocol_error, failure.reason)


# ---------------------------------------------------------------------------------------------
# Fleets


@dataclass
class Fleet:
    """Runs many devices in one event loop until cancelled."""

    runners: list[DeviceRunner] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        devices: Iterable[SimDevice],
        cloud: tuple[str, int] | None = None,
        profile: SimProfile | None = None,
    ) -> Fleet:
        return cls([DeviceRunner(d, cloud, profile) for d in devices])

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [
            loop.create_task(_guarded(r), name=f"sim-{r.device.id}") for r in self.runners
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self.tasks)
        for runner in self.runners:
            with contextlib.suppress(FermionError, OSError):
                status = runner.device.load_status()
                status.online = False
                status.extra["led"] = LED_CONNECTING if runner.led != LED_DEAD else LED_DEAD
                status.extra.setdefault("cloud", {})["state"] = "stopped"
                runner.device.save_status(status)

    def runner(self, device_id: str) -> DeviceRunner:
        for r in self.runners:
            if r.device.id == device_id:
                return r
        raise KeyError(device_id)


async def _guarded(runner: DeviceRunner) -> None:
    while True:
        try:
            await runner.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # One device's trouble (a file removed under it...) must not stop the fleet.
            log.exception("%s: simulator error; retrying", runner.device.name)
            await asyncio.sleep(runner.profile.backoff_max)


def fleet_status(home: Path | None = None) -> list[dict[str, Any]]:
    """What ``sim status`` shows: one row per device from its folder."""
    rows = []
    for device in SimDevice.list(home):
        status = device.load_status()
        cloud = status.extra.get("cloud") or {}
        led = status.extra.get("led") or (LED_DEAD if status.firmware == "dead" else "-")
        rows.append(
            {
                "id": device.id,
                "platform": device.platform.value,
                "online": status.online,
                "led": LED_DEAD if status.firmware == "dead" else led,
                "state": "dead" if status.firmware == "dead" else cloud.get("state", "never run"),
                "address": cloud.get("address"),
                "last_seen": status.last_seen,
                "last_protocol_error": status.last_protocol_error,
                "message": cloud.get("message", ""),
            }
        )
    return rows


def load_devices(
    ids: Iterable[str], all_devices: bool, home: Path | None = None
) -> list[SimDevice]:
    ids = list(ids)
    if all_devices and ids:
        raise DeviceError("give device ids or --all, not both")
    if all_devices:
        devices = SimDevice.list(home)
        if not devices:
            raise DeviceError(f"no simulated devices in {SimDevice.root(home)}")
        return devices
    if not ids:
        raise DeviceError("give one or more device ids, or --all")
    return [SimDevice.open(i, home) for i in ids]


__all__ = [
    "LED_CONNECTED",
    "LED_CONNECTING",
    "LED_DEAD",
    "LED_KEYS_REFUSED",
    "LED_SERVER_KEY",
    "DeviceRunner",
    "Fleet",
    "SimProfile",
    "fleet_status",
    "load_devices",
    "parse_cloud",
    "read_flash",
]
