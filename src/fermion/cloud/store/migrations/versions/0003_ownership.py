"""``devices.owner_since``: when the device's current owner got it; ``claim_codes``.

A caller who sees a device as its owner (a user outside the product's team, a customer) sees its
audit events from this instant on, never the previous owner's. Existing devices take the time of
their last ownership change recorded in the audit trail, or their creation. Claim codes
(``POST /v1/device_claims``) are stored hashed, single use, with an expiry.

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
    op.create_table(
        "claim_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("device_id", sa.String(length=24), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_claim_codes_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_claim_codes_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_claim_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_claim_codes_code_hash")),
    )
    op.create_index(op.f("ix_claim_codes_customer_id"), "claim_codes", ["customer_id"])
    op.create_index(op.f("ix_claim_codes_user_id"), "claim_codes", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_claim_codes_user_id"), table_name="claim_codes")
    op.drop_index(op.f("ix_claim_codes_customer_id"), table_name="claim_codes")
    op.drop_table("claim_codes")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("owner_since")
