"""The asyncio device server: one ``ServerConnection`` per TCP connection, driven by bytes.

Per connection the server holds a small ``asyncio.Protocol`` (no task, no stream objects), so
ten thousand idle devices cost little memory. RSA work runs inline on the event loop: a worker
process is one core's worth of handshakes (``--device-workers`` adds processes).

What a connection can end as, and what is recorded (``registry.OutcomeFact``):

- ok: the device's Hello arrived; the server answered within the device's 4 s window, the
  device is online until it goes quiet for ``idle_timeout`` or hangs up.
- unknown_device / key_mismatch / server_key_mismatch / bad_nonce / malformed / timeout /
  disconnected: the connection is closed. ``server_key_mismatch`` is closed with a reset (the
  block did not open: we know only the address); refusals of an identified device with an
  orderly close.

Key mismatch: the presented key is stored as a candidate, the handshake continues with it, and
a Hello that decrypts and parses proves the device holds the private key. The server then
hangs up without answering the Hello. The candidate waits for a person (API).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import platform
import socket
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_private_key

from fermion.aio import cancel_and_wait
from fermion.cloud import claimcodes
from fermion.cloud.devices import keywatch, metrics, registry
from fermion.cloud.devices.limits import DeviceServerConfig, FailureLimiter, HandshakeShares
from fermion.cloud.store import Store
from fermion.cloud.store.models import CandidateStatus, utcnow
from fermion.errors import FermionError
from fermion.keys import fingerprint_der
from fermion.protocol import NEED_DATA, Failure, Outcome
from fermion.protocol.connection import (
    CLAIM_CODE_EVENT,
    KEY_ERROR_EVENT,
    Closed,
    DescribeReceived,
    EventPublished,
    HelloReceived,
    ServerConnection,
)
from fermion.protocol.handshake import DEVICE_RSA_BITS, DeviceIdentified

log = logging.getLogger("fermion.devices")


@dataclass
class DeviceActivity:
    """The latest Describe (per flags) and the last few events of one device, in memory."""

    describe: dict[int, bytes] = field(default_factory=dict)
    events: deque[tuple[float, str, bytes, bool]] = field(default_factory=deque)


class ActivityLog:
    """Bounded: ``max_devices`` devices (least recently heard dropped first), ``events_kept``
    events each, event data cut at ``data_kept`` bytes; a Describe is bounded by the frame
    limit."""

    def __init__(self, max_devices: int, events_kept: int, data_kept: int) -> None:
        self._devices: OrderedDict[str, DeviceActivity] = OrderedDict()
        self._max = max_devices
        self._events_kept = events_kept
        self._data_kept = data_kept

    def _entry(self, device_id: str) -> DeviceActivity:
        entry = self._devices.get(device_id)
        if entry is None:
            entry = DeviceActivity(events=deque(maxlen=self._events_kept))
            self._devices[device_id] = entry
            while len(self._devices) > self._max:
                self._devices.popitem(last=False)
        else:
            self._devices.move_to_end(device_id)
        return entry

    def describe(self, device_id: str, flags: int, payload: bytes) -> None:
        self._entry(device_id).describe[flags] = payload

    def event(self, device_id: str, name: str, data: bytes, private: bool) -> None:
        self._entry(device_id).events.append((time.time(), name, data[: self._data_kept], private))

    def get(self, device_id: str) -> DeviceActivity | None:
        return self._devices.get(device_id)


@dataclass(frozen=True)
class _CachedKey:
    """A device's current key as DER: a loaded key object costs ~2 KB of native memory per
    device, loading it again costs microseconds per handshake."""

    fingerprint: str | None
    der: bytes | None

    @property
    def public(self) -> rsa.RSAPublicKey | None:
        if self.der is None:
            return None
        try:
            key = load_der_public_key(self.der)
        except (ValueError, TypeError):
            return None
        return key if isinstance(key, rsa.RSAPublicKey) else None


@dataclass
class ServerKeys:
    current: rsa.RSAPrivateKey
    previous: rsa.RSAPrivateKey | None
    ids: tuple[int, ...]


class DeviceServer:
    """Listens for devices; ``start()``/``stop()`` from the app lifespan or a worker process."""

    def __init__(
        self, store: Store, config: DeviceServerConfig | None = None, *, owns_store: bool = False
    ) -> None:
        self.store = store
        # owns_store: nothing else uses the store's connections (a worker process), so they
        # may be closed and reopened to give back their caches.
        self.owns_store = owns_store
        self._recycling: asyncio.Task[None] | None = None
        self.config = config or DeviceServerConfig()
        self.recorder = registry.Recorder(
            store,
            max_unidentified=self.config.max_unidentified_outcomes,
            max_pending_candidates=self.config.max_pending_candidates,
        )
        self.limiter = FailureLimiter(self.config.failure_limit, self.config.failure_window)
        self.shares = HandshakeShares(
            self.config.max_handshakes_per_address,
            self.config.max_handshakes_per_prefix,
            self.config.ipv4_prefix,
            self.config.ipv6_prefix,
        )
        self.activity = ActivityLog(
            self.config.activity_devices, self.config.events_kept, self.config.event_data_kept
        )
        self.sessions: dict[str, _Link] = {}
        self.links: set[_Link] = set()
        self.handshaking = 0
        self.tally = metrics.Tally()
        self.keys: ServerKeys | None = None
        self._key_cache: OrderedDict[str, _CachedKey] = OrderedDict()
        self.housekeeping = Housekeeping()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._claims: set[asyncio.Task[None]] = set()  # held so they are not collected early
        self._unsubscribe: Any = None
        self._key_versions = registry.KeyVersionCursor(0)
        self.port: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.reload_server_keys()
        if self.config.reset_presence:
            await registry.mark_all_offline(self.store)
        self._key_versions = registry.KeyVersionCursor(
            await registry.last_key_version_id(self.store)
        )
        self.recorder.start()
        self._unsubscribe = keywatch.subscribe(loop, self.keys_changed)
        self._server = await loop.create_server(
            lambda: _Link(self),
            self.config.host,
            self.config.port,
            reuse_port=self.config.reuse_port or None,
            backlog=4096,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks = [
            loop.create_task(self._sweep(), name="device-sweep"),
            loop.create_task(self._poll(), name="device-key-poll"),
        ]
        log.info("device server on %s:%s", self.config.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self.links):
            link.close()
        await cancel_and_wait(self._tasks)
        if self._recycling is not None:
            await cancel_and_wait([self._recycling])
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.recorder.stop()
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()
            self._server = None
        self.tally.flush()

    async def reload_server_keys(self) -> None:
        rows = await registry.handshake_server_keys(self.store)
        if not rows:
            raise FermionError("device server: the store holds no RSA server key (run serve once)")
        ids = tuple(r[0] for r in rows)
        if self.keys is not None and self.keys.ids == ids:
            return
        loaded = [load_pem_private_key(r[2].encode(), None) for r in rows]
        current = loaded[0]
        previous = next((k for k, r in zip(loaded, rows, strict=True) if r[1] == "previous"), None)
        assert isinstance(current, rsa.RSAPrivateKey)
        assert previous is None or isinstance(previous, rsa.RSAPrivateKey)
        self.keys = ServerKeys(current, previous, ids)

    # -- keys of devices ------------------------------------------------------------------------

    def cached_key(self, device_id: str) -> _CachedKey | None:
        cached = self._key_cache.get(device_id)
        if cached is not None:
            self._key_cache.move_to_end(device_id)
        return cached

    async def device_key(self, device_id: str) -> _CachedKey | None:
        cached = self._key_cache.get(device_id)
        if cached is not None:
            self._key_cache.move_to_end(device_id)
            return cached
        record = await registry.load_device(self.store, device_id)
        if record is None:
            return None  # not cached: the device may be registered a moment later
        entry = _CachedKey(record.key_fingerprint, record.key_der)
        self._key_cache[device_id] = entry
        return entry

    def redeem_claim_code(self, device_id: str, data: bytes) -> None:
        """A connected device presented the claim code it was given at setup: claim it for the
        code's owner (``claimcodes.redeem`` says when a code applies), off the read path."""
        code = data.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
        task = asyncio.get_running_loop().create_task(self._redeem(device_id, code))
        self._claims.add(task)
        task.add_done_callback(self._claims.discard)

    async def _redeem(self, device_id: str, code: str) -> None:
        try:
            async with self.store.write() as session:
                done = await claimcodes.redeem(session, device_id, code)
        except Exception as exc:  # a store hiccup must not drop a working session
            log.warning("device %s: redeeming its claim code failed: %s", device_id, exc)
            return
        if done is None:
            log.info("device %s presented a claim code that claims nothing", device_id)
        else:
            log.info("device %s claimed with a claim code", device_id)

    def keys_changed(self, device_ids: set[str]) -> None:
        """A device's key changed: forget it, and drop its session if it now holds a key the
        cloud no longer has, so that it reconnects."""
        for device_id in device_ids:
            self._key_cache.pop(device_id, None)
        affected = {d for d in device_ids if d in self.sessions}
        if affected:
            asyncio.get_running_loop().create_task(self._recheck(affected))

    async def _recheck(self, device_ids: set[str]) -> None:
        for device_id in device_ids:
            try:
                cached = await self.device_key(device_id)
            except Exception:
                log.exception("device %s: looking it up failed", device_id)
                continue
            link = self.sessions.get(device_id)
            if link is not None and (cached is None or cached.fingerprint != link.key_fingerprint):
                log.info("device %s: key changed, dropping its session", device_id)
                link.close()

    # -- background -----------------------------------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            now = time.monotonic()
            for link in [link for link in self.links if link.deadline < now]:
                link.timed_out()
            self.tally.flush()
            self.housekeeping.tick(self)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.config.key_poll_interval)
            try:
                changed = await registry.key_versions_since(self.store, self._key_versions)
                if changed:
                    self.keys_changed(changed)
                await self.reload_server_keys()
            except Exception:
                log.exception("device server: polling the store failed")

    def recycle_store(self) -> None:
        """Close the store's idle connections (they reopen on the next use): a database
        connection keeps the statements it prepared and the pages it read while the crowd was
        here (SQLite: up to its cache size) in memory allocated among the crowd's."""
        if self._recycling is not None and not self._recycling.done():
            return
        self._recycling = asyncio.get_running_loop().create_task(self._recycle())

    async def _recycle(self) -> None:
        try:
            await self.store.engine.dispose()
        except Exception:
            log.exception("device server: closing idle store connections failed")
        self.housekeeping.trim()

    # -- recording ------------------------------------------------------------------------------

    def record(
        self,
        outcome: Outcome,
        device_id: str | None,
        address: str | None,
        reason: str,
        fingerprint: str | None = None,
    ) -> None:
        self.tally.handshake(outcome.value)
        self.recorder.put(registry.OutcomeFact(outcome, device_id, address, reason, fingerprint))

    def online(self, link: _Link, device_id: str) -> None:
        old = self.sessions.get(device_id)
        self.sessions[device_id] = link
        if old is not None and old is not link:
            old.close()  # Particle keeps one session per device: the newest wins
        else:
            self.tally.online += 1
        self.recorder.put(registry.Presence(device_id, True, link.address, True, utcnow()))

    def offline(self, link: _Link, device_id: str) -> None:
        if self.sessions.get(device_id) is link:
            del self.sessions[device_id]
            self.tally.online -= 1
            self.recorder.put(registry.Presence(device_id, False, link.address, False, utcnow()))


class Housekeeping:
    """Gives memory back after a crowd of devices has come and gone.

    Run by the sweeper. The key cache keeps the keys of connected devices plus the
    ``KEY_CACHE_RECENT`` most recently used (a device that reconnects within a blip is still
    answered without a store read); once a crowd has left, the keys of those that have not come
    back within ``key_cache_linger`` are dropped too (one that stays away costs a read when it
    comes back). Python dicts and sets never shrink as entries are deleted, so the session
    table, the link set and the key cache are copied once they hold a quarter of their
    high-water mark. A worker that owns its store closes its idle database connections then:
    they hold the statements prepared and the pages read while the crowd was here. And the C
    heap is handed back to the system with glibc's ``malloc_trim``.
    """

    KEY_CACHE_RECENT = 4096
    TRIM_AFTER = 1024

    def __init__(self) -> None:
        self.high = 0  # most connections since the last compaction
        self.left_at: float | None = None  # when a crowd was last seen to have left
        self._trim = _malloc_trim()

    def tick(self, server: DeviceServer) -> None:
        cache = server._key_cache
        if self.left_at is not None and (
            time.monotonic() - self.left_at >= server.config.key_cache_linger
        ):
            self.left_at = None
            if len(cache) > len(server.sessions):
                sessions = server.sessions
                server._key_cache = cache = OrderedDict(
                    (device_id, key) for device_id, key in cache.items() if device_id in sessions
                )
                self.trim()
        excess = len(cache) - (len(server.sessions) + self.KEY_CACHE_RECENT)
        for _ in range(max(0, excess)):
            cache.popitem(last=False)
        now = len(server.links)
        self.high = max(self.high, now)
        if self.high - now < self.TRIM_AFTER or now > self.high // 4:
            return
        server.sessions = dict(server.sessions)
        server.links = set(server.links)
        if excess > 0:
            server._key_cache = OrderedDict(cache)
        if server.owns_store:
            server.recycle_store()  # trims again once the connections are closed
        self.trim()
        self.high = now
        self.left_at = time.monotonic()

    def trim(self) -> None:
        gc.collect()
        if self._trim is not None:
            self._trim(0)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on another C library (musl, macOS)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_RST = struct.pack("ii", 1, 0)


class _Link(asyncio.Protocol):
    """One device connection."""

    __slots__ = (
        "address",
        "conn",
        "deadline",
        "device_id",
        "finished",
        "handshaking",
        "key_fingerprint",
        "mismatch_reason",
        "online",
        "proving",
        "server",
        "slot",
        "started",
        "transport",
    )

    def __init__(self, server: DeviceServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.conn: ServerConnection | None = None
        self.address = "?"
        self.device_id: str | None = None
        self.proving: str | None = None  # fingerprint of a presented key being proven
        self.mismatch_reason = ""
        self.key_fingerprint: str | None = None  # the key the session was set up with
        self.started = time.monotonic()
        self.deadline = self.started
        self.handshaking = False
        self.slot: tuple[str, str] | None = None  # the address's and prefix's share it holds
        self.online = False
        self.finished = False  # an outcome was recorded

    # -- asyncio callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have the same methods.
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        now = time.monotonic()
        if not server.limiter.allowed(self.address, now):
            server.tally.refuse("rate_limited")
            self.finished = True
            self.transport.abort()  # type: ignore[union-attr]
            return
        if server.handshaking >= server.config.max_handshakes:
            server.tally.refuse("busy")
            self.finished = True
            self.transport.abort()  # type: ignore[union-attr]
            return
        # Before the nonce and before any RSA work: an address or prefix over its share of
        # handshakes in progress is closed with a reset (devices retry; see DeviceServerConfig).
        slot = server.shares.take(self.address)
        if isinstance(slot, str):
            server.tally.refuse(slot)
            self.finished = True
            self.transport.abort()  # type: ignore[union-attr]
            return
        self.slot = slot
        assert server.keys is not None
        self.conn = ServerConnection(
            server.keys.current, server.keys.previous, max_frame=server.config.max_frame
        )
        server.links.add(self)
        server.handshaking += 1
        self.handshaking = True
        self.deadline = now + server.config.block_timeout
        self.conn.initiate()
        self.transport.write(self.conn.data_to_send())  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None or conn.closed:
            return
        if self.online:
            self.deadline = time.monotonic() + self.server.config.idle_timeout
        conn.receive_data(data)
        self.pump()

    def eof_received(self) -> bool:
        if self.conn is not None and not self.conn.closed:
            self.conn.receive_data(b"")
            self.pump()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        server = self.server
        server.links.discard(self)
        if self.handshaking:
            self._end_handshake()
            if not self.finished:
                self.finished = True
                self._record(Outcome.DISCONNECTED, "connection closed during the handshake")
        if self.online:
            self.online = False
            assert self.device_id is not None
            server.offline(self, self.device_id)
        self.conn = None
        self.transport = None

    # -- driving the connection -----------------------------------------------------------------

    def pump(self) -> None:
        conn = self.conn
        if conn is None:
            return
        try:
            while not conn.closed:
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                if not self._handle(event):
                    break
        except Exception:
            # A bug, not the peer's doing: log it here, never on the wire.
            log.exception("device connection from %s: internal error", self.address)
            self._finish_handshake(Outcome.MALFORMED, "internal error while reading the device")
            self.close()
            return
        if self.transport is not None:
            out = conn.data_to_send()
            if out:
                self.transport.write(out)

    def _handle(self, event: object) -> bool:
        """React to one event; False to stop reading events for now."""
        assert self.conn is not None
        if isinstance(event, DeviceIdentified):
            self.device_id = event.device_id_hex
            cached = self.server.cached_key(self.device_id)
            if cached is None:
                asyncio.get_running_loop().create_task(self._identify(event))
            else:
                # The common case answers at once: no task, no store round trip.
                self._decide(event, cached)
            return False
        if isinstance(event, HelloReceived):
            self._hello()
            return not self.conn.closed
        if isinstance(event, Failure):
            self._failed(event)
            return False
        if isinstance(event, Closed):
            self.close()
            return False
        if self.device_id is not None:
            if isinstance(event, DescribeReceived):
                self.server.activity.describe(self.device_id, event.flags, event.payload)
            elif isinstance(event, EventPublished):
                self.server.activity.event(self.device_id, event.name, event.data, event.private)
                if event.name == KEY_ERROR_EVENT:
                    self.server.tally.key_error_events += 1
                    log.info("device %s reports key errors %r", self.device_id, event.data[:16])
                elif event.name == CLAIM_CODE_EVENT and self.online:
                    self.server.redeem_claim_code(self.device_id, event.data)
        return True

    async def _identify(self, event: DeviceIdentified) -> None:
        server = self.server
        device_id = event.device_id_hex
        try:
            cached = await server.device_key(device_id)
        except Exception:
            log.exception("device %s: looking it up failed", device_id)
            self.close()
            return
        conn = self.conn
        if conn is None or conn.closed:
            return
        if cached is None:
            self._refuse(Outcome.UNKNOWN_DEVICE, f"device {device_id} is not registered")
            return
        self._decide(event, cached)

    def _decide(self, event: DeviceIdentified, cached: _CachedKey) -> None:
        """Answer with the key the cloud holds, or go prove the presented one."""
        presented = event.presented_public_key_der
        if (
            presented is None
            or presented == cached.der  # the common case, without hashing
            or fingerprint_der(presented).hex == cached.fingerprint
        ):
            public = cached.public
            if public is None or public.key_size != DEVICE_RSA_BITS:
                self._refuse(
                    Outcome.KEY_MISMATCH,
                    "the cloud holds no RSA-1024 key for this device"
                    + ("" if presented else " and it sent none"),
                )
                return
            self.key_fingerprint = cached.fingerprint
            self._accept(public)
            return
        asyncio.get_running_loop().create_task(
            self._mismatch(event.device_id_hex, presented, cached)
        )

    async def _mismatch(self, device_id: str, presented: bytes, cached: _CachedKey) -> None:
        server = self.server
        fp = fingerprint_der(presented).hex
        try:
            status = await registry.candidate_status(server.store, device_id, fp)
            earlier = await registry.earlier_key_version(server.store, device_id, fp)
        except Exception:
            log.exception("device %s: reading its key candidates failed", device_id)
            self.close()
            return
        if self.conn is None or self.conn.closed:
            return
        server.recorder.put(
            registry.CandidateSeen(device_id, fp, "rsa", presented, self.address, utcnow())
        )
        expected = f"expected {cached.fingerprint[:16]}" if cached.fingerprint else "none held"
        if earlier is not None:
            expected += f"; {earlier.note}"
        if status == CandidateStatus.REJECTED:
            self._refuse(
                Outcome.KEY_MISMATCH,
                f"presented key {fp[:16]} was rejected ({expected})",
                fp,
            )
            return
        try:
            key = load_der_public_key(presented)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size != DEVICE_RSA_BITS:
            self._refuse(
                Outcome.KEY_MISMATCH,
                f"presented key {fp[:16]} is not a usable RSA-1024 key ({expected})",
                fp,
            )
            return
        # Continue with the presented key: only the holder of its private key can read the
        # session key and send a Hello that decrypts.
        self.proving = fp
        self.mismatch_reason = f"presented key {fp[:16]}, {expected}"
        self._accept(key)

    def _accept(self, key: rsa.RSAPublicKey) -> None:
        assert self.conn is not None
        try:
            self.conn.accept(key)
        except FermionError as exc:
            self._refuse(Outcome.KEY_MISMATCH, str(exc))
            return
        self.deadline = time.monotonic() + self.server.config.hello_timeout
        self.pump()

    def _hello(self) -> None:
        assert self.conn is not None and self.device_id is not None
        server = self.server
        if self.proving is not None:
            server.recorder.put(registry.PossessionProven(self.device_id, self.proving))
            self._finish_handshake(
                Outcome.KEY_MISMATCH,
                f"possession proven: {self.mismatch_reason}",
                self.proving,
            )
            self.conn.close()
            self.close()
            return
        self.conn.send_hello()
        self._finish_handshake(Outcome.OK, "connected")
        server.tally.seconds.append(time.monotonic() - self.started)
        self.online = True
        self.deadline = time.monotonic() + server.config.idle_timeout
        server.online(self, self.device_id)

    def _refuse(self, outcome: Outcome, reason: str, fingerprint: str | None = None) -> None:
        assert self.conn is not None
        self.conn.reject(outcome, reason)
        self._finish_handshake(outcome, reason, fingerprint)
        self.close()

    def _failed(self, failure: Failure) -> None:
        outcome = failure.outcome
        if self.handshaking:
            self._finish_handshake(outcome, failure.reason)
        else:
            self._record(outcome, f"after the handshake: {failure.reason}")
        if outcome is Outcome.SERVER_KEY_MISMATCH:
            self.reset()
        else:
            self.close()

    def _finish_handshake(
        self, outcome: Outcome, reason: str, fingerprint: str | None = None
    ) -> None:
        server = self.server
        if self.handshaking:
            self._end_handshake()
        if self.finished:
            return
        self.finished = True
        if outcome is not Outcome.OK:
            server.limiter.failed(self.address, time.monotonic())
        self._record(outcome, reason, fingerprint)

    def _end_handshake(self) -> None:
        self.handshaking = False
        self.server.handshaking -= 1
        if self.slot is not None:
            self.server.shares.give_back(self.slot)
            self.slot = None

    def _record(self, outcome: Outcome, reason: str, fingerprint: str | None = None) -> None:
        self.server.record(outcome, self.device_id, self.address, reason, fingerprint)

    def timed_out(self) -> None:
        if self.handshaking:
            step = "its key block" if self.device_id is None else "its Hello"
            self._finish_handshake(Outcome.TIMEOUT, f"no {step} in time")
        self.close()

    # -- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self.server.links.discard(self)

    def reset(self) -> None:
        """Close with a TCP reset: what the server does when the key block does not open."""
        if self.conn is not None:
            self.conn.close()
        transport = self.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
            transport.abort()
        self.server.links.discard(self)
