"""DeviceKeyHelperRK's ``startMonitor()`` (reference §4) for a running simulated device.

The library listens to cloud status events: on ``cloud_status_connected`` it runs
``check(SAVE_CURRENT)`` (working keys are backed up, also after a ``keys doctor``); on a
disconnect with the "keys error" diagnostic it runs ``check(AUTOMATIC)``, which writes the backup
back into the DCT and resets the device. ``fermion.device.online`` calls ``on_connected`` and
``on_keys_error`` at those two moments; this module decides and records, the runner reconnects.

What counts as a keys error. The library reads ``DIAG_ID_CLOUD_CONNECTION_ERROR_CODE`` and acts on
26 (TCP: the server hung up before sending the session key block) or 10 (UDP). A Particle cloud
hangs up right after a key it does not hold; Fermion's device server first lets the device prove
it holds the presented key and hangs up before its Hello (the simulator's ``keys_refused`` state
with another code). Both are the cloud refusing the device key, so both trigger the restore.

The outcome is kept in the device's ``status.json`` as ``key_backup``:
``{"event": "saved" | "restored" | "no_backup", "at": ISO time, "message": str}``.
"""

from __future__ import annotations

import logging

from fermion.device.boot import boot
from fermion.device.keyhelper import KEYS_ERROR_CODES, CheckMode, CheckResult, check, device_store
from fermion.device.store import SimDevice, now_iso
from fermion.keys.serverfile import Transport

log = logging.getLogger("fermion.sim")

RESTORED_MESSAGE = "keys restored from backup"
KEYS_REFUSED_STATE = "keys_refused"


def is_keys_error(transport: Transport, state: str, code: int | None) -> bool:
    """Whether a failed connection is the library's "keys error" (see the module docstring)."""
    return code == KEYS_ERROR_CODES[transport] or state == KEYS_REFUSED_STATE


def _record(device: SimDevice, event: str, message: str) -> None:
    status = device.load_status()
    status.extra["key_backup"] = {"event": event, "at": now_iso(), "message": message}
    device.save_status(status)


def on_connected(device: SimDevice) -> CheckResult | None:
    """``check(SAVE_CURRENT)``: back up the keys that just worked. None when no helper runs."""
    kind = device.identity.key_backup
    if kind is None:
        return None
    image = device.load_image()
    store = device_store(device, kind)
    result = check(image, device.transport(image), store, CheckMode.SAVE_CURRENT)
    if result.saved:
        _record(device, "saved", f"working keys backed up to {kind}")
    return result


def on_keys_error(device: SimDevice) -> CheckResult | None:
    """``check(AUTOMATIC)``: when the keys differ from a valid backup, write the backup into the
    DCT and reset (boot) the device. None when no helper runs."""
    kind = device.identity.key_backup
    if kind is None:
        return None
    image = device.load_image()
    transport = device.transport(image)
    result = check(image, transport, device_store(device, kind), CheckMode.AUTOMATIC)
    if result.restored:
        device.save_image(image)
        _record(device, "restored", f"{RESTORED_MESSAGE} ({kind}); resetting")
        log.info("%s: %s (%s); resetting", device.name, RESTORED_MESSAGE, kind)
        if result.reset_requested:
            boot(device)
    elif result.saved:
        # Nothing valid was stored: the library backs up what it has (even keys that fail).
        _record(device, "saved", f"no valid backup in {kind}: current keys backed up")
    return result
