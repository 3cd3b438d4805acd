"""Prometheus metrics of the device server.

With ``--device-workers N`` the device server runs in N processes; prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``fermion serve`` before anything
imports prometheus-client) lets ``/metrics`` in the API process add them up. The online gauge
uses ``livesum`` so that a worker that exits stops counting.

The device server does not call prometheus-client per connection: in multiprocess mode every
increment takes a lock and writes a memory-mapped file. It counts in a ``Tally`` (plain ints)
and flushes it from its sweeper (every ``sweep_interval``), when it stops, and before an
in-process ``/metrics`` renders; workers' figures reach ``/metrics`` at most one sweep late.
"""

from __future__ import annotations

import os
import weakref

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HANDSHAKES = Counter(
    "fermion_device_handshakes",
    "Device handshakes by outcome (ok, unknown_device, key_mismatch, server_key_mismatch, "
    "bad_nonce, malformed, timeout, disconnected).",
    ["outcome"],
)
HANDSHAKE_SECONDS = Histogram(
    "fermion_device_handshake_seconds",
    "From TCP accept to the server's Hello, for handshakes that succeed.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ONLINE = Gauge(
    "fermion_devices_online",
    "Devices with an open session.",
    multiprocess_mode="livesum",
)
REFUSED = Counter(
    "fermion_device_connections_refused",
    "Connections closed before the handshake: rate_limited (too many failed handshakes from "
    "the address), busy (too many handshakes in progress), address_busy / prefix_busy (the "
    "address, or its /24 or /64, holds its share of the handshakes in progress).",
    ["reason"],
)
KEY_ERROR_EVENTS = Counter(
    "fermion_device_key_error_events",
    "spark/device/key/error events published by devices.",
)


class Tally:
    """What one device server counted since its last ``flush()``."""

    __slots__ = ("__weakref__", "handshakes", "key_error_events", "online", "refused", "seconds")

    def __init__(self) -> None:
        self.handshakes: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.key_error_events = 0
        self.online = 0  # change since the last flush
        self.seconds: list[float] = []
        _tallies.add(self)

    def handshake(self, outcome: str) -> None:
        self.handshakes[outcome] = self.handshakes.get(outcome, 0) + 1

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def flush(self) -> None:
        handshakes, self.handshakes = self.handshakes, {}
        refused, self.refused = self.refused, {}
        seconds, self.seconds = self.seconds, []
        for outcome, count in handshakes.items():
            HANDSHAKES.labels(outcome).inc(count)
        for reason, count in refused.items():
            REFUSED.labels(reason).inc(count)
        for value in seconds:
            HANDSHAKE_SECONDS.observe(value)
        if self.key_error_events:
            KEY_ERROR_EVENTS.inc(self.key_error_events)
            self.key_error_events = 0
        if self.online:
            ONLINE.inc(self.online)
            self.online = 0


_tallies: weakref.WeakSet[Tally] = weakref.WeakSet()


def render() -> tuple[bytes, str]:
    """The exposition text of every process (all workers in multiprocess mode)."""
    for tally in list(_tallies):  # device servers running in this process
        tally.flush()
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    if os.environ.get(MULTIPROC_ENV):
        _multiprocess.mark_process_dead(pid)
