"""Noticing that a device's key changed, so that its open session is dropped.

In the process that made the change: every key change goes through
``keyops.append_key_version``, which calls :func:`key_changed`; once its transaction commits,
every device server in the process is told. A SQLAlchemy session hook also sees ``DeviceKey``
objects added or a device's key pointer moved through the ORM. The API's approve/restore/send
code needs no knowledge of the device server.

Across processes (``--device-workers``): each device server polls the store for key versions
with a higher id than the last it saw (``key_poll_interval``, 2 s by default). See
docs/scaling.md for why polling and not LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from fermion.cloud.store.direct import Runner
from fermion.cloud.store.models import Device, DeviceKey

Listener = Callable[[set[str]], None]

_listeners: list[tuple[asyncio.AbstractEventLoop, Listener]] = []
_PENDING = "fermion_changed_device_keys"


def subscribe(loop: asyncio.AbstractEventLoop, listener: Listener) -> Callable[[], None]:
    entry = (loop, listener)
    _listeners.append(entry)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            _listeners.remove(entry)

    return unsubscribe


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    changed: set[str] = session.info.setdefault(_PENDING, set())
    for obj in session.new:
        if isinstance(obj, DeviceKey):
            changed.add(obj.device_id)
    for obj in session.dirty:
        if isinstance(obj, Device) and inspect(obj).attrs.current_key_id.history.has_changes():
            changed.add(obj.id)


def key_changed(runner: Runner, device_id: str) -> None:
    """Tell the device servers in this process, once ``runner`` commits, that the key changed."""
    runner.after_commit(lambda: _announce_to_all({device_id}))


@event.listens_for(Session, "after_commit")
def _announce(session: Session) -> None:
    changed = session.info.pop(_PENDING, None)
    if changed:
        _announce_to_all(changed)


def _announce_to_all(changed: set[str]) -> None:
    for loop, listener in list(_listeners):
        with contextlib.suppress(RuntimeError):  # the loop closed
            loop.call_soon_threadsafe(listener, set(changed))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
