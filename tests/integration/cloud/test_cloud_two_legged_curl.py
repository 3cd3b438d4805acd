"""The seed's two-legged repair, with the real ``curl`` for the two calls the seed spells out.

Seed ("Repair - two-legged customer devices"): the team member unclaims the device, sends the
new key with ``keys send --product_id``, mints a customer token with the two-legged client
(``curl -X POST .../oauth/token -u "id:secret" -d grant_type=client_credentials -d
scope=customer=<email>``) and claims the device back with it (``curl .../v1/devices -d id=<device>
-d access_token=<token>``). Only the host and the ids differ from the seed's lines here.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from typing import Any

import httpx
import pytest

from fermion.keys import Algorithm, fingerprint, generate_device_key, public_key_pem

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(*args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run(
        ["curl", *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_seed_two_legged_sequence(cloud: Any) -> None:
    owner, owner_token = cloud.user_token()
    pid = cloud.product(owner)
    _, developer = cloud.member(pid, "developer")
    host = cloud.base_url  # http://127.0.0.1:PORT instead of https://api.particle.io
    device_id = secrets.token_hex(12)
    email = f"customer5-{secrets.token_hex(3)}@mycompany.com"

    # The product's setup, through Fermion's API: a two-legged (server) client, a shadow
    # customer created with the client's credentials, a device in the product claimed by it.
    with cloud.http(developer) as h:
        made = h.post(
            f"/v1/products/{pid}/clients",
            json={"name": "test2", "type": "Two-Legged Auth (Server)"},
        )
        assert made.status_code == 200, made.text
        client_id, secret = made.json()["client"]["id"], made.json()["client"]["secret"]
        assert h.post(f"/v1/products/{pid}/devices", data={"id": device_id}).status_code == 200
    created = httpx.post(
        f"{host}/v1/products/{pid}/customers",
        auth=(client_id, secret),
        data={"email": email, "no_password": "true"},
    )
    assert created.status_code == 201, created.text
    with cloud.http(created.json()["access_token"]) as h:
        assert h.post("/v1/devices", data={"id": device_id}).status_code == 200

    # The device regenerated its keys. Team member: unclaim, then send the new public key.
    with cloud.http(developer) as h:
        unclaimed = h.delete(f"/v1/products/{pid}/devices/{device_id}/owner")
        assert unclaimed.status_code == 200, unclaimed.text
        new_key = generate_device_key(Algorithm.RSA)
        sent = h.post(
            f"/v1/provisioning/{device_id}",
            data={
                "deviceID": device_id,
                "publicKey": public_key_pem(new_key.public_key()).decode(),
                "filename": "cli",
                "order": "manual_1",
                "algorithm": "rsa",
                "product_id": str(pid),
            },
        )
        assert sent.status_code == 200, sent.text

    # The seed's two curl lines.
    token_reply = curl(
        "-X",
        "POST",
        f"{host}/oauth/token",
        "-u",
        f"{client_id}:{secret}",
        "-d",
        "grant_type=client_credentials",
        "-d",
        f"scope=customer={email}",
    )
    assert token_reply["token_type"] == "bearer", token_reply
    customer_token = token_reply["access_token"]
    claim_reply = curl(
        f"{host}/v1/devices", "-d", f"id={device_id}", "-d", f"access_token={customer_token}"
    )
    assert claim_reply.get("ok") is True, claim_reply

    # Claimed by that customer, in the product, with the new key current.
    with cloud.http(owner_token) as h:
        shown = h.get(f"/v1/products/{pid}/devices/{device_id}").json()
        customers = h.get(f"/v1/products/{pid}/customers").json()["customers"]
    assert shown["product_id"] == pid
    assert shown["customer"] == email and shown["owner"] == email
    assert shown["key_fingerprint"] == fingerprint(new_key.public_key()).sha256
    assert {c["username"]: c["devices"] for c in customers}[email] == [device_id]
    with cloud.http(customer_token) as h:
        mine = h.get(f"/v1/products/{pid}/devices").json()["devices"]
    assert [d["id"] for d in mine] == [device_id]
