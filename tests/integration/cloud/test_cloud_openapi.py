"""The OpenAPI schema is served, documents Fermion's own endpoints, and schemathesis run over it
against the live server finds no 5xx."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from cloud_harness import Cloud


def test_schema_lists_fermion_endpoints(cloud: Cloud) -> None:
    paths = httpx.get(f"{cloud.base_url}/openapi.json").json()["paths"]
    for path in (
        "/v1/server-keys",
        "/v1/audit",
        "/v1/devices/{device_id}/keys",
        "/v1/devices/{device_id}/keys/candidates",
        "/v1/devices/{device_id}/keys/candidates/{candidate_id}/approve",
        "/v1/devices/{device_id}/keys/repair",
        "/v1/provisioning/{device_id}",
        "/v1/device_claims",
        "/v1/products/{product}/device_claims",
        "/oauth/token",
    ):
        assert path in paths


def test_schemathesis_finds_no_server_error(cloud: Cloud, tmp_path: Path) -> None:
    owner = cloud.user()
    cloud.product(owner)
    token = cloud.token_for(owner)
    st = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    result = subprocess.run(
        [
            st,
            "run",
            f"{cloud.base_url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "-H",
            f"Authorization: Bearer {token}",
            "--max-examples",
            "10",
            # revoking its own token would leave the rest of the run unauthenticated
            "--exclude-path-regex",
            "^/v1/access_tokens",
            "--seed",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    log = cloud.server.log()
    assert " 500 " not in log and "Traceback" not in log, log[-4000:]
