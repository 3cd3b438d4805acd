"""particle-cli 3.40.0, unchanged, against a real `fermion serve`.

Each case runs the command a person would type, checks what the CLI printed and its exit code,
then asks the cloud (over its HTTP API) what it now holds. Set-up that is not the subject of a
case (making a device, claiming it) sends the same request the CLI would, directly, to keep the
suite fast; every such request is itself the subject of another case here.

particle-cli 3.40.0 prints its error messages on stdout, so that is where the cases look.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from compat_harness import (
    Account,
    ApiJs,
    FermionServer,
    ParticleCli,
    ProductClient,
    Team,
    claim,
    create_user,
    current_key,
    customer_token,
    new_device_id,
    provision,
    public_key_for,
)


def login(particle: ParticleCli, account: Account) -> str:
    r = particle("login", "-u", account.email, "-p", account.password)
    assert r.returncode == 0, r.output
    return str(particle.config["access_token"])


@pytest.fixture(scope="module")
def owner_cli(
    server: FermionServer, team: Team, tmp_path_factory: pytest.TempPathFactory, net_log: Path
) -> ParticleCli:
    """The product owner, logged in once for the cases that are not about logging in."""
    cli = ParticleCli(tmp_path_factory.mktemp("owner-home"), server.url, net_log)
    login(cli, team.owner)
    return cli


def owner_token(cli: ParticleCli) -> str:
    return str(cli.config["access_token"])


def write_public_key(directory: Path, alg: str) -> tuple[Path, str]:
    """A `<name>.pub.pem` as `particle keys new` / `keys save` leave it; and its SHA256."""
    pem, sha256 = public_key_for(alg)
    path = directory / f"{new_device_id()}.pub.pem"
    path.write_text(pem)
    return path, sha256


def product_device(server: FermionServer, team: Team, device_id: str) -> dict[str, object] | None:
    r = server.get(f"/v1/products/{team.product_id}/devices/{device_id}", team.owner_token)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return dict(r.json())


def my_device_ids(server: FermionServer, token: str) -> set[str]:
    r = server.get("/v1/devices", token)
    assert r.status_code == 200, r.text
    return {d["id"] for d in r.json()}


# --- pointing the CLI at Fermion -----------------------------------------------------------


def test_config_command_points_a_profile_at_fermion(
    server: FermionServer, team: Team, tmp_path: Path, net_log: Path
) -> None:
    particle = ParticleCli(tmp_path, "unused", net_log)
    (tmp_path / ".particle" / "particle.config.json").unlink()

    set_url = particle("config", "fermion", "apiUrl", server.url)
    switch = particle("config", "fermion")
    show = particle("config")

    assert set_url.returncode == switch.returncode == show.returncode == 0, show.output
    assert "Current profile: fermion" in show.stdout
    assert f"Using API: {server.url}" in show.stdout
    r = particle("login", "-u", team.owner.email, "-p", team.owner.password)
    assert r.returncode == 0, r.output
    assert (tmp_path / ".particle" / "fermion.config.json").exists()


# --- login, whoami, list, logout -----------------------------------------------------------


def test_login_stores_a_token_the_cloud_honours(
    particle: ParticleCli, server: FermionServer, team: Team
) -> None:
    r = particle("login", "-u", team.owner.email, "-p", team.owner.password)

    assert r.returncode == 0, r.output
    assert "> Successfully completed login!" in r.stdout
    config = particle.config
    assert config["username"] == team.owner.email
    me = server.get("/v1/user", config["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["username"] == team.owner.email


def test_login_with_a_wrong_password_shows_the_clis_own_message(
    particle: ParticleCli, team: Team
) -> None:
    r = particle("login", "-u", team.owner.email, "-p", "not-the-password")

    assert r.returncode == 1, r.output
    assert "There was an error logging you in!" in r.stdout
    assert "! User credentials are invalid" in r.stderr
    assert "It seems we're having trouble with logging in." in r.stdout
    assert not particle.config.get("access_token")


def test_login_with_a_token(particle: ParticleCli, server: FermionServer, team: Team) -> None:
    token = server.password_token(team.owner.email, team.owner.password)

    r = particle("login", "--token", token)

    assert r.returncode == 0, r.output
    assert "> Successfully completed login!" in r.stdout
    assert particle.config["access_token"] == token
    assert particle.config["username"] == team.owner.email


def test_whoami_names_the_logged_in_user(owner_cli: ParticleCli, team: Team) -> None:
    r = owner_cli("whoami")

    assert r.returncode == 0, r.output
    assert r.stdout.strip() == f"> {team.owner.email}"


def test_whoami_with_a_revoked_token_asks_to_log_in(
    particle: ParticleCli, server: FermionServer, team: Team
) -> None:
    token = login(particle, team.owner)
    with server.http(token) as c:
        assert c.delete("/v1/access_tokens/current").status_code == 200

    r = particle("whoami")

    assert r.returncode == 1, r.output
    assert "Please login - it appears your access token may have expired" in r.stdout
    assert "Failed to find username! Try: `particle login`" in r.stdout


def test_list_shows_the_users_devices(
    owner_cli: ParticleCli, server: FermionServer, team: Team
) -> None:
    token = owner_token(owner_cli)
    device_id = provision(server, token, product_id=team.product_id)
    claim(server, token, device_id)
    with server.http(token) as c:
        assert c.put(f"/v1/devices/{device_id}", json={"name": "listed-one"}).status_code == 200

    r = owner_cli("list")

    assert r.returncode == 0, r.output
    assert f"listed-one [{device_id}] (Product {team.product_id}) is offline" in r.stdout


def test_list_with_no_devices(particle: ParticleCli, server: FermionServer) -> None:
    login(particle, create_user(server, "nodevices@compat.example"))

    r = particle("list")

    assert r.returncode == 0, r.output
    assert "No devices found." in r.stdout


def test_logout_revokes_the_token(particle: ParticleCli, server: FermionServer, team: Team) -> None:
    token = login(particle, team.owner)

    r = particle("logout")

    assert r.returncode == 0, r.output
    assert f"> You have been logged out from {team.owner.email}" in r.stdout
    assert not particle.config.get("access_token")
    assert server.get("/v1/user", token).status_code == 401


# --- claim, unclaim, rename ----------------------------------------------------------------


def test_device_add_claims_an_unclaimed_product_device(
    owner_cli: ParticleCli, server: FermionServer, team: Team
) -> None:
    token = owner_token(owner_cli)
    device_id = provision(server, token, product_id=team.product_id)

    r = owner_cli("device", "add", device_id.upper())

    assert r.returncode == 0, r.output
    assert f"Successfully claimed device {device_id.upper()}" in r.stdout
    device = server.get(f"/v1/devices/{device_id}", token)
    assert device.status_code == 200, device.text
    assert device.json()["owner"] == team.owner.email


def test_device_add_of_an_unknown_id_says_not_found(owner_cli: ParticleCli) -> None:
    r = owner_cli("device", "add", new_device_id())

    assert r.returncode == 1, r.output
    assert "Failed to claim device: device not found" in r.stdout


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("n", "Failed to claim device: You cannot claim a device owned by someone else"),
        ("y", "Failed to claim device: That belongs to someone else."),
    ],
)
def test_device_add_of_someone_elses_device_offers_a_transfer_fermion_refuses(
    particle: ParticleCli, server: FermionServer, team: Team, answer: str, message: str
) -> None:
    device_id = provision(server, team.owner_token, product_id=team.product_id)
    claim(server, team.owner_token, device_id)
    login(particle, team.viewer)

    r = particle("device", "add", device_id, stdin=answer + "\n")

    assert r.returncode == 1, r.output
    assert "That device belongs to someone else. Would you like to request a transfer?" in r.stdout
    assert message in r.stdout
    owner = server.get(f"/v1/devices/{device_id}", team.owner_token).json()["owner"]
    assert owner == team.owner.email


def test_device_remove_releases_the_claim(
    owner_cli: ParticleCli, server: FermionServer, team: Team
) -> None:
    token = owner_token(owner_cli)
    device_id = provision(server, token, product_id=team.product_id)
    claim(server, token, device_id)

    r = owner_cli("device", "remove", device_id, "--yes")

    assert r.returncode == 0, r.output
    assert f"releasing device {device_id}" in r.stdout
    assert "Okay!" in r.stdout
    assert device_id not in my_device_ids(server, token)
    still = product_device(server, team, device_id)
    assert still is not None and not still.get("owner")


def test_device_rename(owner_cli: ParticleCli, server: FermionServer, team: Team) -> None:
    token = owner_token(owner_cli)
    device_id = provision(server, token, product_id=team.product_id)
    claim(server, token, device_id)

    r = owner_cli("device", "rename", device_id, "kitchen-sensor")

    assert r.returncode == 0, r.output
    assert f"Successfully renamed device {device_id} to: kitchen-sensor" in r.stdout
    assert server.get(f"/v1/devices/{device_id}", token).json()["name"] == "kitchen-sensor"


# --- keys send -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["rsa", "ecc"])
def test_keys_send_replaces_the_key_of_my_device(
    owner_cli: ParticleCli, server: FermionServer, alg: str
) -> None:
    token = owner_token(owner_cli)
    device_id = provision(server, token, alg=alg)
    pub, sha256 = write_public_key(owner_cli.home, alg)

    r = owner_cli("keys", "send", device_id, str(pub))

    assert r.returncode == 0, r.output
    assert f"attempting to add a new public key for device {device_id}" in r.stdout
    assert "submitting public key succeeded!" in r.stdout
    current = current_key(server, token, device_id)
    assert current["fingerprint"] == sha256
    assert current["algorithm"] == alg
    audit = server.get("/v1/audit", token, device_id=device_id, action="key.upload").json()
    newest = audit["events"][0]
    assert newest["actor"] == f"user:{owner_cli.config['username']}"
    assert newest["after_fingerprint"] == sha256


def test_keys_send_of_a_key_of_the_wrong_algorithm_says_why(
    owner_cli: ParticleCli, server: FermionServer
) -> None:
    token = owner_token(owner_cli)
    device_id = provision(server, token, alg="rsa")
    before = current_key(server, token, device_id)["fingerprint"]
    pub, _ = write_public_key(owner_cli.home, "ecc")

    r = owner_cli("keys", "send", device_id, str(pub))

    assert r.returncode == 1, r.output
    assert "submitting public key succeeded!" not in r.stdout
    assert "Error sending public key to server: " in r.stdout
    assert f"publicKey: is an ECC key but device {device_id} (TCP) uses RSA keys" in r.stdout
    assert current_key(server, token, device_id)["fingerprint"] == before


def test_keys_send_with_product_id_provisions_into_the_product(
    owner_cli: ParticleCli, server: FermionServer, team: Team
) -> None:
    device_id = new_device_id()
    pub, sha256 = write_public_key(owner_cli.home, "rsa")

    r = owner_cli("keys", "send", device_id, str(pub), "--product_id", str(team.product_id))

    assert r.returncode == 0, r.output
    assert "submitting public key succeeded!" in r.stdout
    device = product_device(server, team, device_id)
    assert device is not None
    assert device["product_id"] == team.product_id
    assert current_key(server, team.owner_token, device_id)["fingerprint"] == sha256


@pytest.mark.parametrize("claimed", [True, False], ids=["claimed-to-one-account", "unclaimed"])
def test_the_seeds_product_device_repair_by_a_developer(
    particle: ParticleCli, server: FermionServer, team: Team, claimed: bool
) -> None:
    """Seed, "Repair - product devices claimed to a single account" and "unclaimed devices"."""
    device_id = provision(server, team.owner_token, product_id=team.product_id)
    if claimed:
        claim(server, team.owner_token, device_id)
    login(particle, team.developer)
    pem, sha256 = public_key_for("rsa")
    (particle.home / "device.pub.pem").write_text(pem)  # as `particle keys save device.der` left it

    # the seed's line, with only the product and device ids changed
    r = particle("keys", "send", "--product_id", str(team.product_id), device_id, "device.pub.pem")

    assert r.returncode == 0, r.output
    assert "submitting public key succeeded!" in r.stdout
    assert current_key(server, team.owner_token, device_id)["fingerprint"] == sha256
    device = product_device(server, team, device_id)
    assert device is not None
    assert device.get("owner") == (team.owner.email if claimed else None)


def test_keys_send_as_a_view_only_member_is_refused_with_the_role_needed(
    particle: ParticleCli, server: FermionServer, team: Team
) -> None:
    device_id = provision(server, team.owner_token, product_id=team.product_id)
    before = current_key(server, team.owner_token, device_id)["fingerprint"]
    login(particle, team.viewer)
    pub, _ = write_public_key(particle.home, "rsa")

    r = particle("keys", "send", device_id, str(pub), "--product_id", str(team.product_id))

    assert r.returncode == 1, r.output
    assert "submitting public key succeeded!" not in r.stdout
    assert "Error sending public key to server: " in r.stdout
    assert "needs the Developer role or above; your role is View-only" in r.stdout
    assert current_key(server, team.owner_token, device_id)["fingerprint"] == before


def test_keys_send_to_a_two_legged_customers_device_explains_the_procedure(
    owner_cli: ParticleCli,
    server: FermionServer,
    team: Team,
    api_js: ApiJs,
    product_client: ProductClient,
) -> None:
    device_id = provision(server, team.owner_token, product_id=team.product_id)
    customer = customer_token(api_js, team, product_client, "erin@customer.example")
    claim(server, customer, device_id)
    before = current_key(server, team.owner_token, device_id)["fingerprint"]
    pub, _ = write_public_key(owner_cli.home, "rsa")

    r = owner_cli("keys", "send", device_id, str(pub), "--product_id", str(team.product_id))

    assert r.returncode == 1, r.output
    assert f"is claimed by customer erin@customer.example of product {team.product_id}" in r.stdout
    assert "unclaim the device" in r.stdout
    assert f"POST /v1/devices/{device_id}/keys/repair" in r.stdout
    assert current_key(server, team.owner_token, device_id)["fingerprint"] == before


def test_the_seeds_two_legged_repair_with_the_real_clients(
    owner_cli: ParticleCli,
    server: FermionServer,
    team: Team,
    api_js: ApiJs,
    product_client: ProductClient,
) -> None:
    """Seed, "Repair - two-legged customer devices": unclaim, send, customer token, claim."""
    device_id = provision(server, team.owner_token, product_id=team.product_id)
    first = customer_token(api_js, team, product_client, "frank@customer.example")
    claim(server, first, device_id)
    pub, sha256 = write_public_key(owner_cli.home, "rsa")

    unclaimed = api_js(
        "removeDeviceOwner",
        {"deviceId": device_id, "product": team.product_id, "auth": team.owner_token},
    )
    sent = owner_cli("keys", "send", "--product_id", str(team.product_id), device_id, str(pub))
    with server.http() as c:  # the seed's curl, host changed
        minted = c.post(
            "/oauth/token",
            auth=(product_client.client_id, product_client.secret),
            data={"grant_type": "client_credentials", "scope": "customer=frank@customer.example"},
        )
    assert minted.status_code == 200, minted.text
    customer = minted.json()["access_token"]
    with server.http() as c:
        claimed = c.post("/v1/devices", data={"id": device_id, "access_token": customer})

    assert unclaimed["ok"], unclaimed
    assert sent.returncode == 0, sent.output
    assert "submitting public key succeeded!" in sent.stdout
    assert claimed.status_code == 200, claimed.text
    assert current_key(server, team.owner_token, device_id)["fingerprint"] == sha256
    assert device_id in {d["id"] for d in server.get("/v1/devices", customer).json()}


# --- tokens --------------------------------------------------------------------------------


def test_token_create_prints_a_working_token(
    owner_cli: ParticleCli, server: FermionServer, team: Team
) -> None:
    r = owner_cli("token", "create", stdin=team.owner.password + "\n")

    assert r.returncode == 0, r.output
    assert "New access token expires on" in r.stdout
    token = r.stdout.strip().splitlines()[-1].strip()
    assert len(token) == 40
    assert server.get("/v1/user", token).json()["username"] == team.owner.email


def test_token_create_never_expires(
    owner_cli: ParticleCli, server: FermionServer, team: Team
) -> None:
    r = owner_cli("token", "create", "--never-expires", stdin=team.owner.password + "\n")

    assert r.returncode == 0, r.output
    assert "New access token never expires" in r.stdout
    token = r.stdout.strip().splitlines()[-1].strip()
    current = server.get("/v1/access_tokens/current", token)
    assert current.status_code == 200, current.text
    assert current.json()["expires_at"] is None


def test_token_revoke(owner_cli: ParticleCli, server: FermionServer, team: Team) -> None:
    victim = server.password_token(team.owner.email, team.owner.password)

    r = owner_cli("token", "revoke", victim)

    assert r.returncode == 0, r.output
    assert "Successfully revoked all provided tokens" in r.stdout
    assert server.get("/v1/user", victim).status_code == 401


# --- product devices -----------------------------------------------------------------------


def test_product_device_remove_as_a_view_only_member_says_why(
    particle: ParticleCli, server: FermionServer, team: Team
) -> None:
    device_id = provision(server, team.owner_token, product_id=team.product_id)
    login(particle, team.viewer)

    r = particle("product", "device", "remove", str(team.product_id), device_id)

    assert r.returncode == 1, r.output
    assert "Error removing device from product: " in r.stdout
    assert "needs the Developer role or above; your role is View-only" in r.stdout
    assert product_device(server, team, device_id) is not None


def test_product_device_add_list_remove(
    owner_cli: ParticleCli, server: FermionServer, team: Team
) -> None:
    device_id = provision(server, owner_token(owner_cli))  # a sandbox device of the owner
    product = str(team.product_id)

    added = owner_cli("product", "device", "add", product, device_id)
    assert added.returncode == 0, added.output
    assert f"Product {product} Includes:\n  {device_id}" in added.stdout
    assert product_device(server, team, device_id) is not None

    listed = owner_cli("product", "device", "list", product)
    assert listed.returncode == 0, listed.output
    assert f"[{device_id}] (Product {product}) is offline" in listed.stdout

    removed = owner_cli("product", "device", "remove", product, device_id)
    assert removed.returncode == 0, removed.output
    assert f"Success! Removed device {device_id} from product {product}" in removed.stdout
    assert product_device(server, team, device_id) is None


def test_product_device_list_filters_by_name_and_shows_one_device(
    owner_cli: ParticleCli, server: FermionServer, team: Team
) -> None:
    named = provision(server, team.owner_token, product_id=team.product_id)
    other = provision(server, team.owner_token, product_id=team.product_id)
    with server.http(team.owner_token) as c:
        r = c.put(f"/v1/products/{team.product_id}/devices/{named}", json={"name": "greenhouse-7"})
        assert r.status_code == 200, r.text
    product = str(team.product_id)

    by_name = owner_cli("product", "device", "list", product, "--name", "greenhouse")
    one = owner_cli("product", "device", "list", product, other)
    paged = owner_cli("product", "device", "list", product, "--limit", "1")

    assert by_name.returncode == one.returncode == paged.returncode == 0, by_name.output
    assert f"greenhouse-7 [{named}] (Product {product}) is offline" in by_name.stdout
    assert other not in by_name.stdout
    assert f"[{other}] (Product {product}) is offline" in one.stdout
    assert named not in one.stdout
    assert paged.stdout.count("is offline") == 1
