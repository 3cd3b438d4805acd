"""``GET /v1/devices/:id/repair_plan``: the server's one decision of how to repair a device's key.

The pure planner (``domain.repair_plan``) decides; this module gathers its facts on the server,
where they are true rather than guessed: who owns the device, its product, the caller's standing
there read from the permission table, the pending presented key and whether the device proved
it holds it, and whether this cloud can serve the device at all. ``fermion keys repair``,
``keys doctor``, the console (``repair_plan_for``) and the provisioning refusal render it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.api.access import device_id_param, device_standing
from fermion.cloud.api.auth import Caller, CallerDep, StoreDep
from fermion.cloud.api.errors import not_found
from fermion.cloud.api.server_keys import device_server_address
from fermion.cloud.api.views import candidate_json, fp
from fermion.cloud.domain.permissions import Action, Actor, allowed
from fermion.cloud.domain.repair_plan import (
    ClaimedBy,
    DeviceFacts,
    KeyChoice,
    KeySourceKind,
    Plan,
    plan_repair,
)
from fermion.cloud.store import Store
from fermion.cloud.store.models import (
    CandidateStatus,
    KeyCandidate,
    KeyHealth,
)
from fermion.cloud.store.queries import DeviceRow, device_row, product_by_id_or_slug

router = APIRouter(tags=["fermion"])


class KeyGiven(StrEnum):
    """Where the caller's new key will come from (the planner's ``KeySourceKind``, as asked)."""

    PRESENTED = "presented"  # the key the device presented to the cloud (a pending candidate)
    FILE = "file"  # the caller holds the key (`keys repair --key FILE`, or `keys doctor`'s)


class PlanAsk:
    """The repair plan endpoints' query: which key, and Particle's customer-device path."""

    def __init__(
        self,
        key: KeyGiven = Query(KeyGiven.PRESENTED, description="presented or file"),
        particle_compatible: bool = Query(
            False, description="Customer devices: Particle's unclaim, send, token, claim back"
        ),
    ) -> None:
        self.key = key
        self.particle_compatible = particle_compatible


@dataclass(frozen=True)
class RepairPlanView:
    """A plan with the facts it was decided from, as the endpoint returns it."""

    facts: DeviceFacts
    key: KeyChoice
    plan: Plan
    candidate: KeyCandidate | None
    transport: str
    key_health: str
    particle_compatible: bool

    def to_json(self) -> dict[str, Any]:
        f = self.facts
        return {
            "ok": True,
            "device_id": f.device_id,
            "facts": {
                "owner_kind": f.owner.value if f.owner else None,
                "owner": f.owner_label,
                "owned_by_caller": f.owned_by_caller,
                "product_id": f.product_id,
                # The caller's real standing, as the permission table reads it.
                "caller_role": _actor(f.actor),
                "caller_also": _actor(f.also),
                "online": f.online,
                "key_health": self.key_health,
                "reachable": f.reachable,
                "transport": self.transport,
                "can_connect": f.can_connect,
            },
            "key": {
                "source": self.key.kind.value,
                "label": self.key.label,
                "possession_proven": self.key.possession_proven,
            },
            "candidate": candidate_json(self.candidate) if self.candidate else None,
            "particle_compatible": self.particle_compatible,
            "refusal": self.plan.refusal,
            "steps": [
                {
                    "kind": s.kind.value,
                    "text": s.text,
                    "product_id": s.product_id,
                    "undo": s.undo.value if s.undo else None,
                    "needs": [n.value for n in s.needs],
                }
                for s in self.plan.steps
            ],
            "needs": [n.value for n in self.plan.needs],
            "notes": list(self.plan.notes),
            "changes_anything": self.plan.changes_anything,
        }


def _actor(actor: Actor | None) -> str | None:
    return actor.value if actor is not None else None


def served_transports(request: Request) -> frozenset[str]:
    """The transports this cloud's device server speaks now ("tcp", later "udp")."""
    address = device_server_address(request)
    if not address:
        return frozenset()
    return frozenset(k.removesuffix("_port") for k in address if k.endswith("_port"))


async def repair_plan_for(
    session: AsyncSession,
    caller: Caller,
    device_id: str,
    *,
    key_given: KeyGiven = KeyGiven.PRESENTED,
    particle_compatible: bool = False,
    served: Collection[str] = frozenset({"tcp"}),
    product: str | None = None,
) -> RepairPlanView:
    """The repair plan of ``device_id`` for ``caller``: the one function every surface calls.

    Raises the usual 404 when the caller has no standing toward the device at all. ``served``
    is ``served_transports(request)``: a device whose transport no device server speaks cannot
    come online here, so the plan does not wait for it. ``product``: the device must be in that
    product (id or slug), as ``/v1/products/:product/devices/:id`` asks; else the same 404.
    """
    row = await device_row(session, device_id_param(device_id, "device_id"))
    if row is None:
        raise not_found(f"device {device_id} not found")
    if product is not None:
        found = await product_by_id_or_slug(session, product)
        if found is None or row.device.product_id != found.id:
            raise not_found(f"device {row.device.id} not found in product {product}")
    actor, also = await device_standing(session, caller, row.device)
    if actor is None and also is None:
        raise not_found(f"device {row.device.id} not found")
    candidate = None
    if allowed(actor, Action.KEY_VIEW) or allowed(also, Action.KEY_VIEW):
        candidate = await _pending_candidate(session, row.device.id)
    facts = _facts(caller, row, actor, also, served)
    choice = _key_choice(key_given, candidate)
    return RepairPlanView(
        facts=facts,
        key=choice,
        plan=plan_repair(facts, choice, particle_compatible),
        candidate=candidate if key_given is KeyGiven.PRESENTED else None,
        transport=row.device.transport,
        key_health=row.device.key_health,
        particle_compatible=particle_compatible,
    )


def _facts(
    caller: Caller,
    row: DeviceRow,
    actor: Actor | None,
    also: Actor | None,
    served: Collection[str],
) -> DeviceFacts:
    d = row.device
    return device_facts(
        caller,
        d.id,
        product_id=d.product_id,
        owner_user_id=d.owner_user_id,
        owner_customer_id=d.owner_customer_id,
        owner_email=row.owner_email,
        actor=actor,
        also=also,
        online=bool(d.online),
        key_health=d.key_health,
        can_connect=d.transport in served,
    )


def device_facts(
    caller: Caller,
    device_id: str,
    *,
    product_id: int | None,
    owner_user_id: int | None,
    owner_customer_id: int | None,
    owner_email: str | None,
    actor: Actor | None,
    also: Actor | None,
    online: bool = False,
    key_health: str | None = None,
    can_connect: bool = True,
) -> DeviceFacts:
    """The planner's facts from a device's columns and the caller's standing toward it."""
    if owner_customer_id is not None:
        owner: ClaimedBy | None = ClaimedBy.CUSTOMER
    elif owner_user_id is not None:
        owner = ClaimedBy.USER
    else:
        owner = None
    return DeviceFacts(
        device_id=device_id,
        owner=owner,
        owned_by_caller=caller.is_user and owner_user_id == caller.user_id,
        product_id=product_id,
        actor=actor,
        also=also,
        owner_label=owner_email,
        online=online,
        key_ok=key_health == KeyHealth.OK,
        reachable=key_health == KeyHealth.MISMATCH,
        can_connect=can_connect,
    )


def plan_text(plan: Plan) -> str:
    """A plan in one line, for messages that quote it (the provisioning refusal)."""
    if plan.refusal:
        return plan.refusal
    return " ".join(f"{i}. {s.text};" for i, s in enumerate(plan.steps, 1)).rstrip(";")


GIVEN_KEY = KeyChoice(KeySourceKind.FILE, has_pem=True, label="the given key")


async def _pending_candidate(session: AsyncSession, device_id: str) -> KeyCandidate | None:
    """The presented key a repair would approve: a proven one first, then the newest."""
    rows = await session.scalars(
        select(KeyCandidate)
        .where(
            KeyCandidate.device_id == device_id,
            KeyCandidate.status == CandidateStatus.PENDING,
        )
        .order_by(KeyCandidate.possession_proven.desc(), KeyCandidate.last_seen.desc())
        .limit(1)
    )
    return rows.first()


def _key_choice(key_given: KeyGiven, candidate: KeyCandidate | None) -> KeyChoice:
    if key_given is KeyGiven.FILE:
        return GIVEN_KEY
    if candidate is None:
        return KeyChoice(KeySourceKind.NONE)
    return KeyChoice(
        KeySourceKind.CANDIDATE,
        candidate_id=candidate.id,
        possession_proven=bool(candidate.possession_proven),
        has_pem=True,  # the cloud holds the presented key itself, and hands it out
        label=f"the key the device presented ({fp(candidate.fingerprint)})",
    )


@router.get(
    "/v1/devices/{device_id}/repair_plan",
    summary="How to repair this device's key, for the caller (Fermion; changes nothing)",
    description=(
        "The ordered steps that repair the device's key, decided on the server from the facts "
        "returned beside them: who owns the device, its product, the caller's role there (from "
        "the permission table), the pending presented key and whether the device proved it "
        "holds it, and whether this cloud can serve the device. Each step says what it needs "
        "(`key_pem`, `two_legged_client`, `device_online`). `refusal` set: nothing may be done, "
        "and it says why. `key=file` plans for a key the caller supplies; `key=presented` (the "
        "default) for the key the device presented. Callers with no standing get 404."
    ),
)
async def get_repair_plan(
    device_id: str,
    request: Request,
    caller: CallerDep,
    store: StoreDep,
    ask: Annotated[PlanAsk, Depends()],
) -> dict[str, Any]:
    return await _plan_json(request, caller, store, device_id, ask)


async def _plan_json(
    request: Request,
    caller: Caller,
    store: Store,
    device_id: str,
    ask: PlanAsk,
    product: str | None = None,
) -> dict[str, Any]:
    async with store.read() as session:
        view = await repair_plan_for(
            session,
            caller,
            device_id,
            key_given=ask.key,
            particle_compatible=ask.particle_compatible,
            served=served_transports(request),
            product=product,
        )
    return view.to_json()


@router.get(
    "/v1/products/{product}/devices/{device_id}/repair_plan",
    summary="The repair plan of a product's device, for the caller (Fermion; changes nothing)",
    description="`GET /v1/devices/:id/repair_plan` for a device that must be in this product.",
)
async def get_product_repair_plan(
    product: str,
    device_id: str,
    request: Request,
    caller: CallerDep,
    store: StoreDep,
    ask: Annotated[PlanAsk, Depends()],
) -> dict[str, Any]:
    return await _plan_json(request, caller, store, device_id, ask, product)
