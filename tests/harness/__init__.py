"""The test harness every suite shares: one way to start ``fermion serve`` and what goes with it.

Importable as ``harness`` from any test (``pythonpath = ["tests"]`` in pyproject.toml), so no
suite edits ``sys.path``. The suites' own harness modules (``cloud_harness``, ``compat_harness``,
...) build their shortcuts on these pieces and re-export the names their tests import.

- ``Server``: one ``fermion serve`` process (ports, data directory, readiness, log, stop);
  ``running_server`` for a module's server on a fresh database of a backend.
- ``Cloud``: a running cloud and the shortcuts every suite needs (HTTP client, store calls,
  its app in process over the same database for what only a test injects, as a clock).
- ``FakeClock``: time a test moves instead of sleeping.
- ``BACKENDS`` and ``fresh_database``: the SQLite / PostgreSQL parametrisation.
- ``free_port``, ``wait_until``, ``stop_process`` / ``kill_group``, ``new_device_id``,
  ``device_pub_pem``, ``device_handshake``.
"""

from harness.backends import BACKENDS, PG_ENV, fresh_database, pg_admin_url
from harness.clock import FakeClock
from harness.devices import device_handshake, device_pub_pem, new_device_id
from harness.net import free_port
from harness.polling import wait_until
from harness.processes import kill_group, stop_process
from harness.serve import FERMION, Cloud, Server, running_server

__all__ = [
    "BACKENDS",
    "FERMION",
    "PG_ENV",
    "Cloud",
    "FakeClock",
    "Server",
    "device_handshake",
    "device_pub_pem",
    "free_port",
    "fresh_database",
    "kill_group",
    "new_device_id",
    "pg_admin_url",
    "running_server",
    "stop_process",
    "wait_until",
]
