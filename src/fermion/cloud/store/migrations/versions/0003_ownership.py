"""``devices.owner_since``: when the device's current owner got it.

A caller who sees a device as its owner (a user outside the product's team, a customer) sees its
audit events from this instant on, never the previous owner's. Existing devices take the time of
their last ownership change recorded in the audit trail, or their creation.

Revision ID: 0003_ownership
Revises: 0002
Create Date: 2026-12-02 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_ownership"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("owner_since", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE devices SET owner_since = COALESCE("
        "(SELECT MAX(a.at) FROM audit_events a WHERE a.device_id = devices.id "
        "AND a.action IN ('device.claim', 'device.unclaim', 'device.remove', 'device.assign')), "
        "created_at)"
    )
    with op.batch_alter_table("devices") as batch:
        batch.alter_column("owner_since", existing_type=sa.DateTime(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("owner_since")
