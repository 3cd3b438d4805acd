"""Each change a person can make to a product's team, OAuth clients and customers: one function.

The model is Zulip's ``zerver/actions``: the REST API (and the console, which goes through it),
``fermion admin`` and the tests all call the same function, and that function writes the audit
event in the same transaction as the change.

An action takes the caller's open write session, the objects already found, and ``By`` (who, for
the audit trail). It enforces the rules of the data itself (a product has one owner; one
membership per account; one customer per email in a product) and raises ``NotFound`` or
``NotAllowed`` for the API to answer 404 or 403. It never decides whether the *caller* may ask:
that is ``fermion.cloud.domain.permissions.check``, done by the caller before it calls.

Key changes (upload, approve, reject, repair) are actions too, in ``fermion.cloud.keyops``;
ownership changes are in ``fermion.cloud.ownership``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.store.audit import record


@dataclass(frozen=True)
class By:
    """Who makes a change, as the audit trail records it."""

    label: str
    request_id: str | None = None

    def record(self, session: AsyncSession, action: str, **fields: Any) -> None:
        """The change's audit event, in the change's own transaction."""
        record(session, self.label, action, request_id=self.request_id, **fields)


ADMIN = By("admin:cli")
