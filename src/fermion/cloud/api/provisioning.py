"""``POST /v1/provisioning/:id``: upload a device's public key (particle-cli ``keys send``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from fermion.cloud.api.access import device_actors, device_id_param
from fermion.cloud.api.auth import (
    Caller,
    CallerDep,
    StoreDep,
    actor_from_role,
    actor_in_product,
    request_id,
)
from fermion.cloud.api.errors import (
    BELONGS_TO_SOMEONE_ELSE,
    ApiError,
    bad_request,
    not_found,
    someone_elses,
)
from fermion.cloud.api.fields import body_doc, body_fields, text_field
from fermion.cloud.api.repairs import GIVEN_KEY, device_facts, plan_text
from fermion.cloud.api.views import fp
from fermion.cloud.domain.keypolicy import (
    ALGORITHM_TRANSPORT,
    parse_device_public_key,
    require_fits_device,
)
from fermion.cloud.domain.permissions import Action, PermissionDenied, Principal, check
from fermion.cloud.domain.platforms import DEFAULT_TCP, DEFAULT_UDP
from fermion.cloud.domain.repair_plan import DeviceFacts, plan_repair
from fermion.cloud.keyops import KeyVersion, NewKey, append_key_version
from fermion.cloud.store import Store
from fermion.cloud.store.audit import record_now
from fermion.cloud.store.direct import Runner
from fermion.cloud.store.models import (
    Customer,
    Device,
    DeviceKey,
    KeyHealth,
    KeySource,
    OwnerKind,
)
from fermion.cloud.store.queries import CALLERS_ROLE, product_ids_by_ref
from fermion.keys import Algorithm, LoadedKey

router = APIRouter(tags=["keys"])

_FIELDS = {
    "type": "object",
    "required": ["publicKey"],
    "properties": {
        "deviceID": {"type": "string"},
        "publicKey": {"type": "string", "description": "PEM of the device's public key"},
        "filename": {"type": "string"},
        "order": {"type": "string"},
        "algorithm": {"type": "string", "enum": ["rsa", "ecc"]},
        "product_id": {"type": "string"},
    },
}
BODY = body_doc(_FIELDS, required=True)


def customer_device_refusal(facts: DeviceFacts) -> str:
    """Why /v1/provisioning will not touch a customer's device, and the caller's repair plan
    (the planner's own words, as ``GET /v1/devices/:id/repair_plan`` returns them)."""
    dev, customer, product_id = facts.device_id, facts.owner_label, facts.product_id
    plan = plan_repair(facts, GIVEN_KEY)
    return (
        f"device {dev} is claimed by customer {customer} of product {product_id}; its "
        "key cannot be changed through /v1/provisioning while it is claimed. Particle's "
        "procedure: unclaim the device (DELETE /v1/devices/:id), send the key (keys send "
        "--product_id), get a customer token (POST /oauth/token grant_type=client_credentials "
        "scope=customer=<email> with a two-legged client), then claim the device back with it "
        "(POST /v1/devices id=...). Fermion does all of this in one atomic step that keeps the "
        f"claim (POST /v1/devices/{dev}/keys/repair, or `fermion keys repair {dev} --key "
        f"FILE`); your plan (GET /v1/devices/{dev}/repair_plan?key=file): {plan_text(plan)}."
    )


@router.post(
    "/v1/provisioning/{device_id}",
    summary="Upload a device public key",
    description=(
        "Stores the key as the device's new current key version (the old ones stay in its "
        "history), with an audit event, in one transaction. A never-seen device id is created: "
        "in the product when `product_id` is given and the caller may add devices to it, "
        "otherwise owned by the caller."
    ),
    openapi_extra=BODY,
)
async def provision(
    device_id: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    device_id = device_id_param(device_id, "deviceID")
    fields = await body_fields(request)
    given_id = text_field(fields, "deviceID", max_len=100)
    if given_id is not None and device_id_param(given_id, "deviceID") != device_id:
        raise bad_request(f"deviceID: {given_id!r} does not match the device id in the path")
    text = text_field(fields, "publicKey", required=True, max_len=16_384)
    assert text is not None
    key = parse_device_public_key(text, text_field(fields, "algorithm", max_len=20))
    new = NewKey.of(key)
    product_ref = text_field(fields, "product_id", max_len=100)
    rid = request_id(request)
    for attempt in (1, 2):
        try:
            version = await _store_key(store, caller, device_id, key, new, product_ref, rid)
            break
        except IntegrityError:
            # Two first uploads for the same new device raced (PostgreSQL lets both see no
            # row); the loser's transaction rolled back whole, and a second try finds the
            # device the winner created and goes through the usual checks.
            if attempt == 2:
                raise
    return {
        "ok": True,
        "deviceID": device_id,
        "fingerprint": fp(new.fingerprint),
        "key_version": version.version if version is not None else None,
        "changed": version is not None,
    }


_devices = Device.__table__
_customers = Customer.__table__
_keys = DeviceKey.__table__

# Everything the upload decides on, in one statement: the device (locked), its customer, its
# current key, and the caller's team role in its product (none for a non-user caller).
_DEVICE_FOR_UPLOAD = (
    select(
        _devices.c.product_id,
        _devices.c.owner_user_id,
        _devices.c.owner_customer_id,
        _devices.c.transport,
        _customers.c.email,
        _keys.c.fingerprint,
        CALLERS_ROLE,
    )
    .select_from(
        _devices.outerjoin(_customers, _customers.c.id == _devices.c.owner_customer_id).outerjoin(
            _keys, _keys.c.id == _devices.c.current_key_id
        )
    )
    .where(_devices.c.id == bindparam("device_id"))
    .with_for_update(of=_devices)
)
_INSERT_DEVICE = insert(_devices).values(
    {
        name: bindparam(name)
        for name in (
            "id",
            "product_id",
            "owner_user_id",
            "platform_id",
            "transport",
            "key_health",
        )
    }
)


@dataclass(frozen=True)
class _Device:
    id: str
    product_id: int | None
    owner_user_id: int | None
    owner_customer_id: int | None
    transport: str
    customer_email: str | None
    key_fingerprint: str | None
    role: str | None  # the caller's, in the device's product


async def _store_key(
    store: Store,
    caller: Caller,
    device_id: str,
    key: LoadedKey,
    new: NewKey,
    product_ref: str | None,
    rid: str | None,
) -> KeyVersion | None:
    async def upload(tx: Runner) -> KeyVersion | None:
        row = await tx.first(
            _DEVICE_FOR_UPLOAD,
            {"device_id": device_id, "user_id": caller.user_id if caller.is_user else None},
        )
        if row is None:
            product_id = await _create_device(tx, caller, device_id, key, product_ref, rid)
            current = None
        else:
            device = _Device(device_id, *row)
            await _may_upload(tx, caller, device, product_ref)
            require_fits_device(key, device_id, device.transport, "publicKey")
            product_id, current = device.product_id, device.key_fingerprint
        return await append_key_version(
            tx,
            device_id,
            product_id,
            new,
            source=KeySource.PROVISIONING,
            actor=caller.label,
            action="key.upload",
            request_id=rid,
            current_fingerprint=current,
        )

    # Concurrent uploads share a transaction on SQLite, each in its own savepoint.
    return await store.grouped_write(upload)


async def _create_device(
    tx: Runner,
    caller: Caller,
    device_id: str,
    key: LoadedKey,
    product_ref: str | None,
    rid: str | None,
) -> int | None:
    """Create the never-seen device (audited); its product id."""
    transport = ALGORITHM_TRANSPORT[key.algorithm]
    platform = DEFAULT_UDP if key.algorithm is Algorithm.EC else DEFAULT_TCP
    if product_ref is None and caller.kind is OwnerKind.CLIENT:
        product_ref = str(caller.product_id)  # a product token acts for its product
    values = {
        "id": device_id,
        "product_id": None,
        "owner_user_id": None,
        "transport": transport,
        "key_health": KeyHealth.UNKNOWN,
    }
    if product_ref is not None:
        product = await product_ids_by_ref(tx, product_ref)
        if product is None:
            raise not_found(f"product_id: product {product_ref} not found")
        product_id, platform_id = product
        actor = await actor_in_product(tx, caller, product_id)
        check(actor, Action.DEVICE_ADD, product_id)
        check(actor, Action.KEY_UPLOAD, product_id)
        values.update(product_id=product_id, platform_id=platform_id)
    elif caller.kind is OwnerKind.USER:
        values.update(owner_user_id=caller.user_id, platform_id=platform.id)
    else:
        raise PermissionDenied(
            "creating a device needs a user token or product_id; a customer token does not "
            "allow it",
            action=Action.DEVICE_ADD,
            actor=Principal.CUSTOMER,
        )
    await tx.execute(_INSERT_DEVICE, values)
    await record_now(
        tx,
        caller.label,
        "device.create",
        device_id=device_id,
        product_id=values["product_id"],
        request_id=rid,
        detail={"transport": transport, "via": "provisioning"},
    )
    return values["product_id"]


def _not_in_product(caller: Caller, device: _Device, product_id: int) -> str:
    """Why an upload naming a product is refused, and the rightful party's way forward."""
    where = f"product {device.product_id}" if device.product_id else "no product"
    text = f"product_id: device {device.id} is in {where}, not product {product_id}"
    if device.product_id is not None:
        return text
    if caller.is_user and device.owner_user_id == caller.user_id:
        return (
            f"{text}; it is yours: import it first (POST /v1/products/{product_id}/devices "
            f"id={device.id}), then send the key again"
        )
    # Someone else created it first, e.g. by uploading a key for an id they do not hold. Only
    # the cloud's administrator moves it: neither party's word proves who holds the device.
    return (
        f"{text}, and someone else holds it. If it is your product's device, ask this cloud's "
        f"administrator to run `fermion admin assign-device {device.id} --product {product_id} "
        "--release` (audited), then send the key again"
    )


async def _may_upload(tx: Runner, caller: Caller, device: _Device, product_ref: str | None) -> None:
    if product_ref is not None and product_ref.strip() != str(device.product_id):
        product = await product_ids_by_ref(tx, product_ref)
        if product is None:
            raise not_found(f"product_id: product {product_ref} not found")
        if device.product_id != product[0]:
            raise bad_request(_not_in_product(caller, device, product[0]))
    in_product = (
        actor_from_role(caller, device.product_id, device.role)
        if device.product_id is not None
        else None
    )
    actor, also = device_actors(
        caller, in_product, device.product_id, device.owner_user_id, device.owner_customer_id
    )
    if actor is None and also is None:
        raise someone_elses(
            f"device {device.id}: {BELONGS_TO_SOMEONE_ELSE.rstrip('.')}; its key was not changed"
        )
    check(actor, Action.KEY_UPLOAD, device.product_id, also=also)
    if device.owner_customer_id is not None:
        assert device.product_id is not None
        facts = device_facts(
            caller,
            device.id,
            product_id=device.product_id,
            owner_user_id=device.owner_user_id,
            owner_customer_id=device.owner_customer_id,
            owner_email=device.customer_email,
            actor=actor,
            also=also,
        )
        raise ApiError(
            403,
            customer_device_refusal(facts),
            repair_url=f"/v1/devices/{device.id}/keys/repair",
        )
