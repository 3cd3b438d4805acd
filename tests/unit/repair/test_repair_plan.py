"""The repair planner, exhaustively: every owner kind x product x role x online state x key."""

from __future__ import annotations

import itertools

import pytest

from fermion.cloud.domain.permissions import Role
from fermion.cloud.domain.repair_plan import (
    DeviceFacts,
    KeyChoice,
    KeySourceKind,
    OwnerKind,
    StepKind,
    plan_repair,
)

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
    return DeviceFacts(
        device_id=DEV,
        owner=owner,
        product_id=product,
        role=role if product is not None else None,
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
    elif owner is not OwnerKind.CALLER:
        if role is None:
            return "not on that product's team"
        if role not in BUILDERS:
            return "Developer role or above"
    if owner is OwnerKind.CUSTOMER and compat and not key.has_pem:
        return "give --key"
    return None


@pytest.mark.parametrize(("owner", "product", "role", "conn", "key", "compat"), CASES)
def test_every_case(owner, product, role, conn, key, compat) -> None:
    facts = _facts(owner, product, role, conn)
    plan = plan_repair(facts, key, compat)
    reason = _expected_refusal(owner, facts.product_id, facts.role, conn, key, compat)
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
    tail = [StepKind.VERIFY]
    online, _, reachable = conn
    if online or reachable:
        tail.append(StepKind.WAIT_ONLINE)
    assert kinds == action + tail
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


def test_role_unknown_lets_the_cloud_decide() -> None:
    facts = DeviceFacts(DEV, OwnerKind.USER, 42, role=None, role_known=False)
    plan = plan_repair(facts, KEYS[0])
    assert plan.ok and plan.steps[0].kind is StepKind.SEND


def test_case_count_is_exhaustive() -> None:
    assert len(CASES) == len(OwnerKind) * 2 * len(ROLES) * len(CONNECTION) * len(KEYS) * 2
