"""The repair planner, exhaustively: every owner kind x product x role x online state x key."""

from __future__ import annotations

import itertools
from enum import StrEnum

import pytest

from fermion.cloud.domain.permissions import Principal, Role
from fermion.cloud.domain.repair_plan import (
    ClaimedBy,
    DeviceFacts,
    KeyChoice,
    KeySourceKind,
    Need,
    StepKind,
    plan_repair,
)


class OwnerKind(StrEnum):
    """The test's own words for who holds the device, mapped onto ``DeviceFacts`` below."""

    CALLER = "caller"  # claimed by the account asking (a development device)
    USER = "user"  # claimed by another account
    CUSTOMER = "customer"
    NOBODY = "nobody"


DEV = "0123456789abcdef01234567"
ROLES: list[Role | None] = [None, *Role]
CONNECTION = [  # (online, key_ok, reachable)
    (False, False, False),  # silent
    (False, False, True),  # trying to connect with a key the cloud does not hold
    (True, True, False),  # online and healthy
]
KEYS = [
    KeyChoice(KeySourceKind.FILE, has_pem=True, label="the key in k.pub.pem"),
    KeyChoice(KeySourceKind.CANDIDATE, 7, possession_proven=True, label="presented key"),
    KeyChoice(KeySourceKind.CANDIDATE, 7, possession_proven=True, has_pem=True, label="pk"),
    KeyChoice(KeySourceKind.CANDIDATE, 7, possession_proven=False, label="unproven"),
    KeyChoice(KeySourceKind.NONE),
]
BUILDERS = {Role.DEVELOPER, Role.ADMINISTRATOR, Role.OWNER}

CASES = list(itertools.product(OwnerKind, [None, 42], ROLES, CONNECTION, KEYS, [False, True]))


def _facts(owner, product, role, conn):
    online, key_ok, reachable = conn
    mine = owner is OwnerKind.CALLER
    claimed = {
        OwnerKind.CALLER: ClaimedBy.USER,
        OwnerKind.USER: ClaimedBy.USER,
        OwnerKind.CUSTOMER: ClaimedBy.CUSTOMER,
        OwnerKind.NOBODY: None,
    }[owner]
    # The caller's standing as ``api.access.standing`` gives it: outside a product the owner is
    # its OWNER; in one, the team role, plus DEVICE_OWNER when the caller claimed it.
    if product is None:
        actor, also = (Role.OWNER if mine else None), None
    else:
        actor, also = role, (Principal.DEVICE_OWNER if mine else None)
    return DeviceFacts(
        device_id=DEV,
        owner=claimed,
        owned_by_caller=mine,
        product_id=product,
        actor=actor,
        also=also,
        owner_label="c@example.com" if owner in (OwnerKind.CUSTOMER, OwnerKind.USER) else None,
        online=online,
        key_ok=key_ok,
        reachable=reachable,
    )


def _expected_refusal(owner, product, role, conn, key, compat) -> str | None:
    """An independent statement of the rules; returns a word the refusal must contain."""
    online, key_ok, _ = conn
    if key.kind is KeySourceKind.NONE:
        return None if (online and key_ok) else "presented no new key"
    if key.kind is KeySourceKind.CANDIDATE and not key.possession_proven:
        return "not been proven"
    if product is None:
        if owner is OwnerKind.USER:
            return "another account"
        if owner is not OwnerKind.CALLER:
            return "claim it first"
    else:
        # In a product the permission table decides for the device's owner too: owning a
        # product device gives no right to change its key (the cloud refuses that upload).
        if role is None:
            return "not on that product's team" if owner is not OwnerKind.CALLER else "owning"
        if role not in BUILDERS:
            return "Developer role or above"
    if owner is OwnerKind.CUSTOMER and compat and not key.has_pem:
        return "give --key"
    return None


@pytest.mark.parametrize(("owner", "product", "role", "conn", "key", "compat"), CASES)
def test_every_case(owner, product, role, conn, key, compat) -> None:
    facts = _facts(owner, product, role, conn)
    plan = plan_repair(facts, key, compat)
    reason = _expected_refusal(owner, facts.product_id, role, conn, key, compat)
    if reason is not None:
        assert not plan.ok
        assert reason in (plan.refusal or "")
        assert plan.steps == ()
        return
    assert plan.ok, plan.refusal
    kinds = [s.kind for s in plan.steps]
    if key.kind is KeySourceKind.NONE:
        assert kinds == [] and "nothing to repair" in plan.notes[0]
        return
    customer = owner is OwnerKind.CUSTOMER
    if customer and compat:
        action = [
            StepKind.UNCLAIM,
            StepKind.SEND,
            StepKind.CUSTOMER_TOKEN,
            StepKind.CLAIM_AS_CUSTOMER,
        ]
    elif key.kind is KeySourceKind.CANDIDATE:
        action = [StepKind.APPROVE]
    elif customer:
        action = [StepKind.ATOMIC_REPAIR]
    else:
        action = [StepKind.SEND]
    # A repair is done only when the device is seen online with the new key (#12 item 3), so
    # every plan ends waiting for it, however quiet the device is now.
    tail = [StepKind.VERIFY, StepKind.WAIT_ONLINE]
    assert kinds == action + tail
    online, _, reachable = conn
    assert any("not trying to connect" in n for n in plan.notes) is not (online or reachable)
    for step in plan.steps:
        if step.kind is StepKind.SEND:
            assert step.product_id == facts.product_id  # the product id goes with the key
    assert plan.changes_anything


def test_particle_compatible_steps_after_the_unclaim_are_compensated() -> None:
    facts = _facts(OwnerKind.CUSTOMER, 42, Role.DEVELOPER, CONNECTION[1])
    plan = plan_repair(facts, KEYS[0], particle_compatible=True)
    unclaim, *rest = [s for s in plan.steps if s.kind is not StepKind.VERIFY][:4]
    assert unclaim.kind is StepKind.UNCLAIM and unclaim.undo is None
    assert all(s.undo is StepKind.CLAIM_AS_CUSTOMER for s in rest)
    assert "scope=customer=c@example.com" in plan.steps[2].text


@pytest.mark.parametrize("role", [Role.VIEW_ONLY, Role.SUPPORT])
def test_view_only_and_support_are_refused_naming_the_role(role: Role) -> None:
    for owner in (OwnerKind.USER, OwnerKind.NOBODY, OwnerKind.CUSTOMER):
        plan = plan_repair(_facts(owner, 42, role, CONNECTION[1]), KEYS[0])
        assert "Developer role or above" in (plan.refusal or "")
        assert role.label in (plan.refusal or "")
        assert "nothing was changed" in (plan.refusal or "")


def test_each_step_says_what_it_needs() -> None:
    compat = plan_repair(_facts(OwnerKind.CUSTOMER, 42, Role.OWNER, CONNECTION[1]), KEYS[0], True)
    # The two-legged client is asked for by the first step, before anything changes.
    assert compat.steps[0].kind is StepKind.UNCLAIM
    assert Need.TWO_LEGGED_CLIENT in compat.steps[0].needs
    assert compat.needs == (Need.TWO_LEGGED_CLIENT, Need.KEY_PEM, Need.DEVICE_ONLINE)
    atomic = plan_repair(_facts(OwnerKind.CUSTOMER, 42, Role.OWNER, CONNECTION[1]), KEYS[0])
    assert Need.TWO_LEGGED_CLIENT not in atomic.needs


def test_a_cloud_without_the_device_server_does_not_wait() -> None:
    facts = DeviceFacts(DEV, ClaimedBy.USER, owned_by_caller=True, can_connect=False)
    plan = plan_repair(facts, KEYS[0])
    assert [s.kind for s in plan.steps] == [StepKind.SEND, StepKind.VERIFY]
    assert "no device server" in plan.notes[0]


def test_case_count_is_exhaustive() -> None:
    assert len(CASES) == len(OwnerKind) * 2 * len(ROLES) * len(CONNECTION) * len(KEYS) * 2
