"""Choosing a key repair: a pure function from facts about a device to an ordered list of steps.

The seed document names one procedure per kind of device (development device, product device
claimed to one account, unclaimed product device, two-legged customer device). Which one
applies depends only on who owns the device, whether it is in a product, the caller's standing
in that product, what the cloud knows of its connection, and where the new key comes from. No
I/O happens here: ``fermion.cloud.api.repairs`` gathers the facts on the server (the caller's real
standing from the permission table) and ``GET /v1/devices/:id/repair_plan`` returns the plan;
``fermion keys repair``, ``keys doctor``, the console and the provisioning refusal render it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from fermion.cloud.domain.permissions import Action, Actor, PermissionDenied, check


class ClaimedBy(StrEnum):
    """Who claimed a device (None in ``DeviceFacts.owner``: nobody). Not the store's
    ``OwnerKind``, which says whom a token acts for; the caller's own devices are
    ``DeviceFacts.owned_by_caller``."""

    USER = "user"  # an account (the caller's own devices too)
    CUSTOMER = "customer"  # a product customer (two-legged included)


class KeySourceKind(StrEnum):
    FILE = "file"  # --key FILE.pub.pem (e.g. a customer's `keys save`)
    CANDIDATE = "candidate"  # the key the device presented, possession proven
    NONE = "none"  # neither


class Need(StrEnum):
    """What a step needs besides the caller's token, so a dry run can say it up front."""

    KEY_PEM = "key_pem"  # the new public key's text (a --key file, or the presented key's PEM)
    TWO_LEGGED_CLIENT = "two_legged_client"  # the product's OAuth client id and secret
    DEVICE_ONLINE = "device_online"  # the device powered and trying to connect


class StepKind(StrEnum):
    SEND = "send"  # POST /v1/provisioning/:id [product_id]
    APPROVE = "approve"  # approve the presented key candidate
    ATOMIC_REPAIR = "atomic_repair"  # POST /v1/devices/:id/keys/repair: key replaced, claim kept
    UNCLAIM = "unclaim"  # DELETE /v1/devices/:id
    CUSTOMER_TOKEN = "customer_token"  # client_credentials, scope=customer=<email>
    CLAIM_AS_CUSTOMER = "claim_as_customer"  # POST /v1/devices id=... with the customer token
    VERIFY = "verify"  # same owner, the new key current
    WAIT_ONLINE = "wait_online"  # the device handshakes with the new key


@dataclass(frozen=True)
class DeviceFacts:
    device_id: str
    owner: ClaimedBy | None  # None: unclaimed
    owned_by_caller: bool = False  # claimed by the account asking (a development device)
    product_id: int | None = None
    # The caller's standing in the device's product as ``permissions.check`` takes it: a team
    # role, a product client or a customer; None when it has none there (or no product).
    actor: Actor | None = None
    also: Actor | None = None  # a second standing: the device's owner (``DEVICE_OWNER``)
    owner_label: str | None = None  # the owner's email, for messages and the claim back
    online: bool = False  # connected now
    key_ok: bool = False  # the cloud says the device last presented the key it holds
    # The device is trying to connect (it presented a key recently), so we can watch it come up.
    reachable: bool = False
    # This cloud runs a device server for the device's transport: only then can it come online.
    can_connect: bool = True


@dataclass(frozen=True)
class KeyChoice:
    kind: KeySourceKind
    candidate_id: int | None = None
    possession_proven: bool = False
    has_pem: bool = False  # the public key text is at hand (needed to send it ourselves)
    label: str = ""  # file name or "the key the device presented (SHA256:...)"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    text: str
    product_id: int | None = None
    # Undone by this step if a later one fails (the particle-compatible customer path only).
    undo: StepKind | None = None
    needs: tuple[Need, ...] = ()


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    refusal: str | None = None  # set: nothing may be done; says why and what to do
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.refusal is None

    @property
    def changes_anything(self) -> bool:
        return any(s.kind not in (StepKind.VERIFY, StepKind.WAIT_ONLINE) for s in self.steps)

    @property
    def needs(self) -> tuple[Need, ...]:
        """Every step's needs, once each, in the order the steps meet them."""
        return tuple(dict.fromkeys(n for s in self.steps for n in s.needs))

    @property
    def waits_online(self) -> bool:
        return any(s.kind is StepKind.WAIT_ONLINE for s in self.steps)


def _refuse(reason: str) -> Plan:
    return Plan(refusal=reason)


def _denied(
    actor: Actor | None, also: Actor | None, actions: tuple[Action, ...], product_id: int
) -> str | None:
    for action in actions:
        try:
            check(actor, action, product_id, also=also)
        except PermissionDenied as exc:
            return str(exc)
    return None


def plan_repair(facts: DeviceFacts, key: KeyChoice, particle_compatible: bool = False) -> Plan:
    """The steps that repair ``facts.device_id`` with ``key``, or a refusal saying why not."""
    dev = facts.device_id
    if key.kind is KeySourceKind.NONE:
        if facts.online and facts.key_ok:
            return Plan(
                notes=(f"device {dev} is online with the key the cloud holds; nothing to repair",)
            )
        return _refuse(
            f"device {dev} has presented no new key to the cloud; give --key FILE.pub.pem (the "
            "customer's `fermion keys save`), or run `fermion keys doctor` with the device at hand"
        )
    if key.kind is KeySourceKind.CANDIDATE and not key.possession_proven:
        return _refuse(
            f"device {dev}: the key it presented has not been proven (the device did not sign "
            "with it); wait for it to reconnect, or give --key FILE.pub.pem"
        )

    customer = facts.owner is ClaimedBy.CUSTOMER
    if facts.product_id is None:
        if facts.owner is ClaimedBy.USER and not facts.owned_by_caller:
            return _refuse(
                f"device {dev} is claimed by another account ({facts.owner_label or 'unknown'}); "
                "log in as its owner to repair it"
            )
        if not facts.owned_by_caller:
            return _refuse(
                f"device {dev} is in no product and not claimed by you; claim it first "
                f"(`fermion device claim {dev}`)"
            )
    else:
        # In a product the permission table decides, for the device's owner too: the cloud
        # refuses a key upload from an owner who is not on the product's team.
        if facts.actor is None and not facts.owned_by_caller:
            return _refuse(
                f"device {dev} is in product {facts.product_id}, and you are not on that "
                "product's team; ask its owner to add you as a Developer or above"
            )
        if customer and particle_compatible:
            needed = (Action.DEVICE_UNCLAIM, Action.KEY_UPLOAD, Action.DEVICE_CLAIM)
        elif key.kind is KeySourceKind.CANDIDATE:
            needed = (Action.KEY_APPROVE,)
        elif customer:
            needed = (Action.KEY_REPAIR,)
        else:
            needed = (Action.KEY_UPLOAD,)
        reason = _denied(facts.actor, facts.also, needed, facts.product_id)
        if reason is not None:
            return _refuse(f"device {dev}: {reason}; nothing was changed")

    steps: list[Step] = []
    pid = facts.product_id
    with_pid = f" with product id {pid}" if pid is not None else ""
    pem = (Need.KEY_PEM,)
    if customer and particle_compatible:
        if not key.has_pem:
            return _refuse(
                f"device {dev}: the particle-compatible procedure sends the key itself, and "
                "the presented key's text is not at hand; give --key FILE.pub.pem, or drop "
                "--particle-compatible to use the atomic repair"
            )
        who = facts.owner_label or "the customer"
        steps += [
            # The client is needed after the unclaim, so it is asked for before the first step.
            Step(
                StepKind.UNCLAIM,
                f"unclaim {dev} from customer {who}",
                pid,
                needs=(Need.TWO_LEGGED_CLIENT,),
            ),
            Step(
                StepKind.SEND,
                f"send {key.label}{with_pid}",
                pid,
                undo=StepKind.CLAIM_AS_CUSTOMER,
                needs=pem,
            ),
            Step(
                StepKind.CUSTOMER_TOKEN,
                f"get a token for customer {who} from the product's two-legged client "
                f"(client_credentials, scope=customer={who}; --client-id and --client-secret, "
                "or FERMION_CLIENT_ID and FERMION_CLIENT_SECRET)",
                pid,
                undo=StepKind.CLAIM_AS_CUSTOMER,
                needs=(Need.TWO_LEGGED_CLIENT,),
            ),
            Step(
                StepKind.CLAIM_AS_CUSTOMER,
                f"claim {dev} back to customer {who} with that token",
                pid,
                undo=StepKind.CLAIM_AS_CUSTOMER,
            ),
        ]
    elif key.kind is KeySourceKind.CANDIDATE:
        steps.append(
            Step(StepKind.APPROVE, f"approve {key.label} as the current key of {dev}", pid)
        )
    elif customer:
        steps.append(
            Step(
                StepKind.ATOMIC_REPAIR,
                f"replace the key of {dev} with {key.label}, keeping its claim by customer "
                f"{facts.owner_label or '(unknown)'} (one atomic call)",
                pid,
                needs=pem,
            )
        )
    else:
        steps.append(Step(StepKind.SEND, f"send {key.label}{with_pid}", pid, needs=pem))

    if facts.owned_by_caller:
        owner = "you"
    elif facts.owner is ClaimedBy.CUSTOMER:
        owner = f"customer {facts.owner_label or '(unknown)'}"
    elif facts.owner is ClaimedBy.USER:
        owner = facts.owner_label or "the same account"
    else:
        owner = "nobody (unclaimed)"
    steps.append(
        Step(StepKind.VERIFY, f"check: the new key is current and {dev} is still owned by {owner}")
    )
    notes: list[str] = []
    # A repair is done when the device is seen online with the new key (issue #12 item 3):
    # whoever runs the plan waits for it, unless this cloud cannot serve the device at all.
    if facts.can_connect:
        steps.append(
            Step(
                StepKind.WAIT_ONLINE,
                f"wait for {dev} to come online with the new key",
                needs=(Need.DEVICE_ONLINE,),
            )
        )
        if not (facts.reachable or facts.online):
            notes.append(
                f"device {dev} is not trying to connect now; power it (or start it: `fermion "
                "sim run`) so it comes online with the new key"
            )
    else:
        notes.append(
            f"this cloud runs no device server for the transport of {dev}, so it cannot come "
            "online here yet; the repair puts the keys right and leaves that to do"
        )
    if facts.online and facts.key_ok:
        notes.append(
            f"device {dev} is online with the key the cloud holds now; after the repair it must "
            "present the new key to connect again"
        )
    return Plan(steps=tuple(steps), notes=tuple(notes))
