"""``fermion login/logout/whoami``, ``fermion profile``, ``fermion token``: who the CLI acts as."""

from __future__ import annotations

import os
import re

import typer

from fermion.cli.api_client import (
    DEFAULT_PROFILE,
    ApiClient,
    ApiError,
    Profile,
    active_profile_name,
    list_profiles,
    store_login,
    use_profile,
)
from fermion.cli.output import JSON_OPT, console, print_json, print_result, print_table, table
from fermion.errors import FermionError

profile_app = typer.Typer(
    help="Profiles: which cloud the CLI talks to, and as whom.", invoke_without_command=True
)
token_app = typer.Typer(help="Access tokens: list, create and revoke.", no_args_is_help=True)


def _password(given: str | None, prompt: bool) -> str:
    if given:
        return given
    env = os.environ.get("FERMION_PASSWORD")
    if env and not prompt:
        return env
    return typer.prompt("password", hide_input=True)


def login(
    username: str | None = typer.Option(None, "--username", "-u", help="Account email."),
    password: str | None = typer.Option(
        None, "--password", "-p", help="Password (prompted when omitted; FERMION_PASSWORD)."
    ),
    token: str | None = typer.Option(None, "--token", help="Log in with an existing token."),
    as_json: bool = JSON_OPT,
) -> None:
    """Log in to the cloud of the active profile and keep the token (file mode 0600)."""
    profile = Profile.load(active_profile_name())
    with ApiClient(profile=profile, token=token or "") as api:
        if token:
            user = api.request("GET", "/v1/user", auth=token)
            info = api.request("GET", "/v1/access_tokens/current", auth=token)
            profile.access_token = token
            profile.username = str(user.get("username") or "")
            profile.access_token_expires_at = info.get("expires_at")
            # The token belongs to the cloud that issued it: a login through FERMION_API_URL
            # must be usable from a shell that does not set it.
            profile.api_url = api.api_url
            profile.save()
        else:
            username = username or typer.prompt("email")
            body = api.password_login(username, _password(password, prompt=False))
            profile.api_url = api.api_url
            store_login(profile, username, body)
    print_result(
        {"username": profile.username, "api_url": api.api_url, "profile": profile.name},
        as_json,
        f"logged in to {api.api_url} as {profile.username} (profile {profile.name})",
    )


def logout(
    revoke: bool = typer.Option(True, "--revoke/--keep-token", help="Revoke the token too."),
    as_json: bool = JSON_OPT,
) -> None:
    """Forget the stored token (and revoke it in the cloud)."""
    profile = Profile.load(active_profile_name())
    revoked = False
    if profile.access_token and revoke:
        with ApiClient(profile=profile) as api:
            try:
                api.request("DELETE", "/v1/access_tokens/current", auth=profile.access_token)
                revoked = True
            except ApiError as exc:
                if exc.status != 401:  # an already dead token is what we wanted anyway
                    raise
    who = profile.username
    profile.access_token = None
    profile.access_token_expires_at = None
    if profile.path.exists():  # logging out of a profile that never existed creates none
        profile.save()
    print_result(
        {"logged_out": who, "revoked": revoked}, as_json, f"logged out{f' {who}' if who else ''}"
    )


def whoami(as_json: bool = JSON_OPT) -> None:
    """Show the account the CLI acts as."""
    with ApiClient() as api:
        user = api.user()
    print_result(
        {**user, "api_url": api.api_url}, as_json, f"{user.get('username')} on {api.api_url}"
    )


@profile_app.callback()
def profile_show(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Show the active profile (no subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    name = active_profile_name()
    p = Profile.load(name)
    if name != DEFAULT_PROFILE and not p.path.exists():
        # Showing a made-up profile as if it were one would hide a typo in FERMION_PROFILE.
        known = ", ".join(list_profiles()) or "none yet"
        raise FermionError(
            f"profile {name!r} does not exist (profiles: {known}); create it with "
            f"`FERMION_PROFILE={name} fermion login` or `fermion profile use {name}`"
        )
    api_url = os.environ.get("FERMION_API_URL") or p.api_url
    data = {
        "profile": name,
        "api_url": api_url,
        "username": p.username,
        "logged_in": bool(p.access_token or os.environ.get("FERMION_TOKEN")),
        "token_expires_at": p.access_token_expires_at,
        "profiles": list_profiles() or [name],
        "file": str(p.path),
    }
    if as_json:
        print_json(data)
        return
    table(None, ["setting", "value"], [(k, v) for k, v in data.items() if k != "profiles"])
    console.print("profiles: " + ", ".join(data["profiles"]))  # type: ignore[arg-type]


@profile_app.command("use")
def profile_use(name: str, as_json: bool = JSON_OPT) -> None:
    """Switch to profile NAME (created empty if new)."""
    p = Profile.load(name)
    if not p.path.exists():
        p.save()
    use_profile(name)
    print_result({"profile": name, "api_url": p.api_url}, as_json, f"profile {name} ({p.api_url})")


@profile_app.command("set")
def profile_set(
    setting: str = typer.Argument(..., help="api-url"),
    value: str = typer.Argument(...),
    name: str | None = typer.Option(None, "--profile", help="Another profile than the active."),
    as_json: bool = JSON_OPT,
) -> None:
    """Set a setting of the active profile, e.g. profile set api-url http://127.0.0.1:8080."""
    p = Profile.load(name or active_profile_name())
    p.set(setting, value)
    p.save()
    print_result(
        {"profile": p.name, "api_url": p.api_url}, as_json, f"profile {p.name}: api-url {p.api_url}"
    )


def _to_the_second(at: str | None) -> str | None:
    """An ISO time without its fraction of a second: what a table has room for."""
    return re.sub(r"\.\d+", "", at) if at else None


@token_app.command("list")
def token_list(as_json: bool = JSON_OPT) -> None:
    """List your account's live tokens: client, created, expires (the cloud keeps no secrets to
    show; the one this CLI uses is marked)."""
    with ApiClient() as api:
        tokens = api.access_tokens()
    # Four columns that fit 80 characters: the CLI's own token is marked in the first.
    print_table(
        tokens,
        as_json,
        f"{len(tokens)} live token(s)",
        ["token", "client", "created", "expires"],
        [
            (
                f"{t.get('id')} (this CLI's)" if t.get("current") else t.get("id"),
                t.get("client"),
                _to_the_second(t.get("created_at")),
                _to_the_second(t.get("expires_at")) or "never",
            )
            for t in tokens
        ],
    )


@token_app.command("create")
def token_create(
    expires_in: int | None = typer.Option(None, "--expires-in", help="Lifetime in seconds."),
    never_expires: bool = typer.Option(False, "--never-expires"),
    username: str | None = typer.Option(None, "--username", "-u"),
    password: str | None = typer.Option(None, "--password", "-p"),
    as_json: bool = JSON_OPT,
) -> None:
    """Create a new token for your account (asks for the password, as particle-cli does)."""
    profile = Profile.load(active_profile_name())
    user = username or profile.username
    if not user:
        raise FermionError("token create: not logged in; give --username or run `fermion login`")
    duration = 0 if never_expires else (expires_in if expires_in is not None else 7_776_000)
    with ApiClient(profile=profile) as api:
        body = api.password_login(user, _password(password, prompt=False), expires_in=duration)
    if as_json:
        print_json(body)
        return
    console.print(f"new access token (expires in {body.get('expires_in')} s):")
    typer.echo(body["access_token"])


@token_app.command("revoke")
def token_revoke(
    tokens: list[str] = typer.Argument(..., help="Tokens to revoke."),
    force: bool = typer.Option(False, "--force", help="Also revoke the CLI's own token."),
    as_json: bool = JSON_OPT,
) -> None:
    """Revoke tokens (refuses the CLI's own token without --force)."""
    profile = Profile.load(active_profile_name())
    results = []
    with ApiClient(profile=profile) as api:
        for t in tokens:
            if t == profile.access_token and not force:
                raise FermionError(
                    "token revoke: that is the token this CLI is logged in with; use --force"
                )
            api.revoke_token(t)
            results.append({"token": t[:8] + "...", "revoked": True})
            if t == profile.access_token:
                profile.access_token = None
                profile.save()
    if as_json:
        print_json(results)
        return
    for r in results:
        console.print(f"revoked {r['token']}")


def register(app: typer.Typer) -> None:
    if getattr(app, "_fermion_account_cmd", False):
        return  # main() may mount more than once in one process (tests)
    app._fermion_account_cmd = True  # type: ignore[attr-defined]
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
    app.add_typer(profile_app, name="profile")
    app.add_typer(token_app, name="token")
