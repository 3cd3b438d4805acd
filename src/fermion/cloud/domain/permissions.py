"""Who may do what in a product: one table, read by one function.

Team roles follow Particle's product permission matrix (team-access-controls); rows the matrix
does not have (uploading device keys, approving presented keys, the atomic repair, reading the
audit trail) follow its nearest rows ("Add devices to product", "Edit device info"). Two more
principals act inside a product: a product OAuth client's token ("product tokens act for the
product", without team management) and a customer, who only ever acts on its own devices.
"""

from __future__ import annotations

from enum import StrEnum

from fermion.errors import FermionError


class Role(StrEnum):
    """Team roles, lowest first."""

    VIEW_ONLY = "view_only"
    SUPPORT = "support"
    DEVELOPER = "developer"
    ADMINISTRATOR = "administrator"
    OWNER = "owner"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def parse(cls, value: str) -> Role:
        """Accept our names and Particle's (``View-only``, ``Administrator``...)."""
        key = value.strip().lower().replace("-", "_").replace(" ", "_")
        if key in {"admin", "administrator_(owner)"}:
            key = "administrator"
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(r.label for r in cls)
            raise FermionError(f"role: {value!r} is not one of {names}") from None


_LABELS = {
    Role.VIEW_ONLY: "View-only",
    Role.SUPPORT: "Support",
    Role.DEVELOPER: "Developer",
    Role.ADMINISTRATOR: "Administrator",
    Role.OWNER: "Owner",
}
ROLE_RANK = {role: rank for rank, role in enumerate(Role)}


class Principal(StrEnum):
    """Non-team principals that act inside a product."""

    PRODUCT_CLIENT = "product_client"
    CUSTOMER = "customer"  # only on devices it owns, see ``CUSTOMER_OWN_DEVICE_ONLY``
    # A user who claimed a product device without being on the product's team. (On a device
    # outside any product its owner is that device's OWNER: nobody else has a say.)
    DEVICE_OWNER = "device_owner"


Actor = Role | Principal


class Action(StrEnum):
    PRODUCT_VIEW = "product.view"
    PRODUCT_EDIT = "product.edit"
    DEVICE_VIEW = "device.view"
    DEVICE_CALL = "device.call"  # ping, functions, variables
    DEVICE_ADD = "device.add"  # import into the product; create by provisioning
    DEVICE_EDIT = "device.edit"  # name, notes
    DEVICE_REMOVE = "device.remove"  # take out of the product
    DEVICE_CLAIM = "device.claim"
    DEVICE_UNCLAIM = "device.unclaim"
    KEY_VIEW = "key.view"  # key history and presented candidates
    KEY_UPLOAD = "key.upload"
    KEY_APPROVE = "key.approve"  # approve or reject a presented key
    KEY_REPAIR = "key.repair"  # atomic repair of a customer-owned device
    CUSTOMER_VIEW = "customer.view"
    CUSTOMER_MANAGE = "customer.manage"  # create, change password, delete
    CLIENT_VIEW = "client.view"
    CLIENT_MANAGE = "client.manage"
    TEAM_VIEW = "team.view"
    TEAM_MANAGE = "team.manage"
    AUDIT_VIEW = "audit.view"


_R = Role
_P = Principal
_ALL_ROLES = frozenset(Role)
_CALLERS = frozenset({_R.SUPPORT, _R.DEVELOPER, _R.ADMINISTRATOR, _R.OWNER})
_BUILDERS = frozenset({_R.DEVELOPER, _R.ADMINISTRATOR, _R.OWNER, _P.PRODUCT_CLIENT})
_ADMINS = frozenset({_R.ADMINISTRATOR, _R.OWNER})

# The table. Anything not listed is refused.
PERMISSIONS: dict[Action, frozenset[Actor]] = {
    Action.PRODUCT_VIEW: _ALL_ROLES | {_P.PRODUCT_CLIENT},
    Action.PRODUCT_EDIT: _ADMINS,
    Action.DEVICE_VIEW: _ALL_ROLES | {_P.PRODUCT_CLIENT, _P.CUSTOMER, _P.DEVICE_OWNER},
    Action.DEVICE_CALL: _CALLERS | {_P.PRODUCT_CLIENT, _P.CUSTOMER, _P.DEVICE_OWNER},
    Action.DEVICE_ADD: _BUILDERS,
    Action.DEVICE_EDIT: _BUILDERS | {_P.CUSTOMER, _P.DEVICE_OWNER},
    Action.DEVICE_REMOVE: _BUILDERS,
    Action.DEVICE_CLAIM: _BUILDERS | {_P.CUSTOMER},
    Action.DEVICE_UNCLAIM: _BUILDERS | {_P.CUSTOMER, _P.DEVICE_OWNER},
    Action.KEY_VIEW: _ALL_ROLES | {_P.PRODUCT_CLIENT, _P.DEVICE_OWNER},
    Action.KEY_UPLOAD: _BUILDERS,
    Action.KEY_APPROVE: _BUILDERS,
    Action.KEY_REPAIR: _BUILDERS,
    Action.CUSTOMER_VIEW: _ALL_ROLES | {_P.PRODUCT_CLIENT},
    Action.CUSTOMER_MANAGE: _BUILDERS,
    Action.CLIENT_VIEW: _ALL_ROLES,
    Action.CLIENT_MANAGE: frozenset({_R.DEVELOPER, _R.ADMINISTRATOR, _R.OWNER}),
    Action.TEAM_VIEW: _ALL_ROLES | {_P.PRODUCT_CLIENT},
    Action.TEAM_MANAGE: _ADMINS,
    Action.AUDIT_VIEW: _ALL_ROLES | {_P.PRODUCT_CLIENT},
}

# A customer holding one of these may use it only on a device it owns.
CUSTOMER_OWN_DEVICE_ONLY = frozenset(a for a, who in PERMISSIONS.items() if _P.CUSTOMER in who)

_DESCRIPTIONS = {
    Action.PRODUCT_VIEW: "viewing the product",
    Action.PRODUCT_EDIT: "editing the product's settings",
    Action.DEVICE_VIEW: "viewing the device",
    Action.DEVICE_CALL: "calling the device",
    Action.DEVICE_ADD: "adding devices to the product",
    Action.DEVICE_EDIT: "editing the device",
    Action.DEVICE_REMOVE: "removing devices from the product",
    Action.DEVICE_CLAIM: "claiming the device",
    Action.DEVICE_UNCLAIM: "unclaiming the device",
    Action.KEY_VIEW: "viewing device keys",
    Action.KEY_UPLOAD: "uploading a device key",
    Action.KEY_APPROVE: "approving or rejecting a presented device key",
    Action.KEY_REPAIR: "repairing a device key",
    Action.CUSTOMER_VIEW: "viewing customers",
    Action.CUSTOMER_MANAGE: "managing customers",
    Action.CLIENT_VIEW: "viewing OAuth clients",
    Action.CLIENT_MANAGE: "managing OAuth clients",
    Action.TEAM_VIEW: "viewing the team",
    Action.TEAM_MANAGE: "managing the team",
    Action.AUDIT_VIEW: "viewing the audit log",
}


class PermissionDenied(FermionError):
    """The caller's role does not allow the action; the message names the role needed."""

    def __init__(self, message: str, action: Action, actor: Actor | None) -> None:
        super().__init__(message)
        self.action = action
        self.actor = actor


def minimum_role(action: Action) -> Role | None:
    """The lowest team role allowed ``action``, or None when no team role is."""
    roles = [who for who in PERMISSIONS[action] if isinstance(who, Role)]
    return min(roles, key=ROLE_RANK.__getitem__) if roles else None


def _who(actor: Actor | None) -> str:
    if actor is None:
        return "you are not on this product's team"
    if isinstance(actor, Role):
        return f"your role is {actor.label}"
    kind = {
        Principal.CUSTOMER: "a customer token",
        Principal.PRODUCT_CLIENT: "a product client token",
        Principal.DEVICE_OWNER: "owning the device without a team role",
    }[actor]
    return f"{kind} does not allow it"


def check(
    actor: Actor | None,
    action: Action,
    product: str | int | None = None,
    also: Actor | None = None,
) -> None:
    """The one place a product permission is decided: returns, or raises ``PermissionDenied``.

    ``actor`` is the caller's role in the product, a non-team principal, or None for someone
    with no standing in it; ``also`` is a second standing the caller holds (a team member who
    also owns the device), which may allow what the role does not.
    """
    allowed_actors = PERMISSIONS[action]
    if (actor is not None and actor in allowed_actors) or (
        also is not None and also in allowed_actors
    ):
        return
    if actor is None:
        actor = also
    needed = minimum_role(action)
    where = f" in product {product}" if product is not None else ""
    need = f"needs the {needed.label} role or above" if needed is not None else "is not allowed"
    raise PermissionDenied(
        f"{_DESCRIPTIONS[action]}{where} {need}; {_who(actor)}", action=action, actor=actor
    )


def allowed(actor: Actor | None, action: Action, also: Actor | None = None) -> bool:
    """``check`` as a yes or no, for showing only what would be let through."""
    try:
        check(actor, action, also=also)
    except PermissionDenied:
        return False
    return True
