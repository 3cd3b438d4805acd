"""Prometheus metrics of the device server.

With ``--device-workers N`` the device server runs in N processes; prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``fermion serve`` before anything
imports prometheus-client) lets ``/metrics`` in the API process add them up. The online gauge
uses ``livesum`` so that a worker that exits stops counting.
"""

from __future__ import annotations

import os

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
    "the address) or busy (too many handshakes in progress).",
    ["reason"],
)
KEY_ERROR_EVENTS = Counter(
    "fermion_device_key_error_events",
    "spark/device/key/error events published by devices.",
)


def render() -> tuple[bytes, str]:
    """The exposition text of every process (all workers in multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    if os.environ.get(MULTIPROC_ENV):
        _multiprocess.mark_process_dead(pid)
