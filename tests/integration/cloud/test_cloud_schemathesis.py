"""The served OpenAPI schema, fuzzed by Schemathesis against a real server: no 5xx anywhere.

Bounded: a fixed seed and a fixed number of examples per operation, so it takes a few minutes at
most. Requests carry the product owner's token so that the fuzzer gets past authentication into
the handlers; token revocation paths are left out so the token survives the run (they are
covered by the token tests).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

MAX_EXAMPLES = "30"


def test_openapi_schema_is_served(cloud: Any) -> None:
    reply = httpx.get(f"{cloud.base_url}/openapi.json")
    assert reply.status_code == 200
    paths = reply.json()["paths"]
    for path in (
        "/oauth/token",
        "/v1/products/{product}/devices",
        "/v1/products/{product}/customers",
        "/v1/products/{product}/clients/{client_id}",
        "/v1/products/{product}/team/{username}",
    ):
        assert path in paths


def test_schemathesis_finds_no_server_error(cloud: Any, tmp_path: Path) -> None:
    owner, token = cloud.user_token()
    pid = cloud.product(owner)
    device_id = "0123456789abcdef01234567"
    with cloud.http(token) as h:
        h.post(f"/v1/products/{pid}/devices", json={"ids": [device_id]})
    # Pin the product and device path parameters to real ones, so that generated requests get
    # past "not found" into the handlers (other parameters and bodies are fuzzed as usual).
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.product" = "{pid}"\n"path.device_id" = "{device_id}"\n')
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run(
        [
            exe,
            "--config-file",
            str(config),
            "run",
            f"{cloud.base_url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "20261128",
            "--workers",
            "1",  # several workers trip a thread-safety bug of ast.parse on Python 3.11
            "--no-shrink",
            "--request-timeout",
            "30",
            "--exclude-path-regex",
            "^/v1/access_tokens",
            "--header",
            f"Authorization: Bearer {token}",
        ],
        cwd=tmp_path,  # Schemathesis keeps a cache directory in the working directory
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    ran = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert ran is not None and int(ran.group(1)) > 0 and ran.group(1) == ran.group(2), report
    log = cloud.server.log()
    assert "Traceback" not in log, log[-4000:]
