"""The guard every Node client runs under refuses, and records, any connection beyond loopback.

The other cases rely on it to prove that particle-cli and particle-api-js never phone home (no
update check, no telemetry); this shows it would notice if they did. The address is TEST-NET-3
(RFC 5737) and the guard refuses before any packet is sent.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from compat_harness import node_env

REACH_OUT = """
const http = require('http');
http.get('http://203.0.113.7/', () => process.exit(3))
    .on('error', (e) => { console.log(e.message); process.exit(0); });
"""


def test_guard_refuses_and_records_a_connection_beyond_loopback(tmp_path: Path) -> None:
    log = tmp_path / "attempts.log"

    proc = subprocess.run(
        ["node", "-e", REACH_OUT],
        env=node_env(tmp_path / "home", log),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "compat loopback guard: refused connect to 203.0.113.7" in proc.stdout
    assert "connect to 203.0.113.7" in log.read_text()
