"""Stopping what a test started: a server, a simulator run, a CLI left running."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

STOP_WITHIN = 15.0


def stop_process(
    proc: subprocess.Popen[Any],
    sig: int = signal.SIGTERM,
    *,
    group: bool = False,
    within: float = STOP_WITHIN,
) -> None:
    """Send ``sig`` (to the whole process group with ``group``, for a process started with
    ``start_new_session``) and wait; SIGKILL its group if it has not ended ``within`` seconds."""
    if proc.poll() is not None:
        return
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        kill_group(proc)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process and, when it leads one (``start_new_session``), its group: no
    shutdown code runs, as in a crash, and no worker it forked is left behind."""
    # Only before the process is reaped (``wait`` below): until then its id, and so the group
    # id, cannot have been reused by a process that is not ours.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # not a group leader
        proc.kill()
    proc.wait()
