"""Every principal x every action, against a matrix written out here independently of the code."""

from __future__ import annotations

import itertools

import pytest

from fermion.cloud.domain.permissions import (
    PERMISSIONS,
    Action,
    PermissionDenied,
    Principal,
    Role,
    allowed,
    check,
    minimum_role,
)

A = Action
OW, AD, D, S, V = "owner", "administrator", "developer", "support", "view_only"
PC, CU, DO = "product_client", "customer", "device_owner"

# Particle's team matrix (team-access-controls), extended for Fermion's key actions.
EXPECTED: dict[Action, set[str]] = {
    A.PRODUCT_VIEW: {OW, AD, D, S, V, PC},
    A.PRODUCT_EDIT: {OW, AD},
    A.DEVICE_VIEW: {OW, AD, D, S, V, PC, CU, DO},
    A.DEVICE_CALL: {OW, AD, D, S, PC, CU, DO},
    A.DEVICE_ADD: {OW, AD, D, PC},
    A.DEVICE_EDIT: {OW, AD, D, PC, CU, DO},
    A.DEVICE_REMOVE: {OW, AD, D, PC},
    A.DEVICE_CLAIM: {OW, AD, D, PC, CU},
    A.DEVICE_UNCLAIM: {OW, AD, D, PC, CU, DO},
    A.KEY_VIEW: {OW, AD, D, S, V, PC, DO},
    A.KEY_UPLOAD: {OW, AD, D, PC},
    A.KEY_APPROVE: {OW, AD, D, PC},
    A.KEY_REPAIR: {OW, AD, D, PC},
    A.CUSTOMER_VIEW: {OW, AD, D, S, V, PC},
    A.CUSTOMER_MANAGE: {OW, AD, D, PC},
    A.CLIENT_VIEW: {OW, AD, D, S, V},
    A.CLIENT_MANAGE: {OW, AD, D},
    A.TEAM_VIEW: {OW, AD, D, S, V, PC},
    A.TEAM_MANAGE: {OW, AD},
    A.AUDIT_VIEW: {OW, AD, D, S, V, PC},
}
ACTORS = [*Role, *Principal]


def test_matrix_covers_every_action() -> None:
    assert set(EXPECTED) == set(Action) == set(PERMISSIONS)


@pytest.mark.parametrize("action", list(Action), ids=str)
@pytest.mark.parametrize("actor", ACTORS, ids=str)
def test_every_actor_every_action(actor: Role | Principal, action: Action) -> None:
    assert allowed(actor, action) == (actor.value in EXPECTED[action])


@pytest.mark.parametrize("action", list(Action), ids=str)
def test_no_standing_is_refused_everything(action: Action) -> None:
    with pytest.raises(PermissionDenied, match="not on this product's team"):
        check(None, action, 7)


@pytest.mark.parametrize("action", list(Action), ids=str)
def test_roles_are_monotonic(action: Action) -> None:
    """No escalation by demotion: whatever a role may do, every higher role may do."""
    ranks = list(Role)
    for low, high in itertools.pairwise(ranks):
        if allowed(low, action):
            assert allowed(high, action), f"{high} may not {action} but {low} may"


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.VIEW_ONLY])
def test_key_upload_refusal_names_the_role_needed(role: Role) -> None:
    with pytest.raises(PermissionDenied) as err:
        check(role, Action.KEY_UPLOAD, 1234)
    message = str(err.value)
    assert "uploading a device key in product 1234" in message
    assert "needs the Developer role or above" in message
    assert role.label in message


def test_customer_and_product_client_refusals_say_which_token() -> None:
    with pytest.raises(PermissionDenied, match="a customer token does not allow it"):
        check(Principal.CUSTOMER, Action.KEY_UPLOAD)
    with pytest.raises(PermissionDenied, match="a product client token does not allow it"):
        check(Principal.PRODUCT_CLIENT, Action.TEAM_MANAGE)


def test_a_second_standing_can_allow_what_the_role_does_not() -> None:
    # A View-only member who also owns the device may rename it, but not upload its key.
    check(Role.VIEW_ONLY, Action.DEVICE_EDIT, also=Principal.DEVICE_OWNER)
    with pytest.raises(PermissionDenied, match="Developer"):
        check(Role.VIEW_ONLY, Action.KEY_UPLOAD, also=Principal.DEVICE_OWNER)


def test_minimum_roles() -> None:
    assert minimum_role(Action.KEY_UPLOAD) is Role.DEVELOPER
    assert minimum_role(Action.TEAM_MANAGE) is Role.ADMINISTRATOR
    assert minimum_role(Action.DEVICE_VIEW) is Role.VIEW_ONLY


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("View-only", Role.VIEW_ONLY),
        ("view_only", Role.VIEW_ONLY),
        ("Administrator", Role.ADMINISTRATOR),
        ("admin", Role.ADMINISTRATOR),
        ("Developer", Role.DEVELOPER),
        ("support", Role.SUPPORT),
    ],
)
def test_role_parse_accepts_particle_names(text: str, role: Role) -> None:
    assert Role.parse(text) is role


def test_role_parse_refuses_unknown() -> None:
    from fermion.errors import FermionError

    with pytest.raises(FermionError, match="role: 'wizard' is not one of"):
        Role.parse("wizard")
