"""Bounded presented keys: where a device has been, and who presented what.

``devices.known_addresses``: the last few addresses the device handshook from with its current
key (JSON list), so that a key presented from anywhere else is flagged. ``devices.
candidates_dropped``: presented keys not kept because the device already had its share pending.
``key_candidates.addresses``: the distinct addresses that presented the key (JSON list, the last
few); ``key_candidates.new_address``: one of them was never used by the device.

Revision ID: 0004_candidates
Revises: 0003_ownership
Create Date: 2026-12-02 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_candidates"
down_revision = "0003_ownership"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("known_addresses", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("candidates_dropped", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("key_candidates") as batch:
        batch.add_column(sa.Column("addresses", sa.Text(), nullable=True))
        batch.add_column(sa.Column("new_address", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("key_candidates") as batch:
        batch.drop_column("new_address")
        batch.drop_column("addresses")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("candidates_dropped")
        batch.drop_column("known_addresses")
