"""Nothing secret reaches the server's log, even when clients put tokens in URLs."""

from __future__ import annotations

import httpx
from cloud_harness import Cloud, new_device_id


def test_no_secret_in_logs(cloud: Cloud) -> None:
    password = "pw-" + new_device_id()
    email = cloud.user(password=password)
    token_reply = httpx.post(
        f"{cloud.base_url}/oauth/token",
        data={"grant_type": "password", "username": email, "password": password},
    ).json()
    token, refresh = token_reply["access_token"], token_reply["refresh_token"]
    product = cloud.product(email)
    client_id, secret = cloud.two_legged_client(product)
    httpx.post(
        f"{cloud.base_url}/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
    )
    httpx.get(f"{cloud.base_url}/v1/user", params={"access_token": token})
    httpx.get(f"{cloud.base_url}/v1/devices?access_token={token}&x=1")
    httpx.post(f"{cloud.base_url}/v1/devices", data={"id": "zz", "access_token": token})
    httpx.post(f"{cloud.base_url}/oauth/token?password={password}", data={"grant_type": "x"})
    # A name spelled with escapes is the same name to the API, which accepts the token...
    encoded = cloud.token_for(email)
    for name in ("access%5Ftoken", "%61ccess_token", "ACCESS_TOKEN"):
        reply = httpx.get(f"{cloud.base_url}/v1/user?x=1&{name}={encoded}")
        assert reply.status_code == (401 if name == "ACCESS_TOKEN" else 200), (name, reply.text)
    # ...and particle-cli's revoke sends the token in the path.
    revoked = cloud.token_for(email)
    reply = httpx.delete(f"{cloud.base_url}/v1/access_tokens/{revoked}")
    assert reply.status_code == 200, reply.text
    log = cloud.server.log()
    assert "/v1/user" in log  # the access log is on...
    for secret_value in (password, token, refresh, secret, encoded, revoked):
        assert secret_value not in log  # ...and holds none of these
    assert "access_token=[redacted]" in log
    assert "access%5Ftoken=[redacted]" in log
    assert "/v1/access_tokens/[redacted]" in log
