"""At most one current server key per algorithm, kept by the database itself.

Several processes (``fermion serve --workers``, several nodes) may start on an empty store at
once; the partial unique index makes the second one's insert fail instead of leaving devices two
"current" keys to choose from. A store that already has more than one keeps the oldest as
current and the others as previous (still accepted from devices, as during a rotation).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 07:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_CURRENT = sa.text("state = 'current'")


def upgrade() -> None:
    op.execute(
        "UPDATE server_keys SET state = 'previous' WHERE state = 'current' AND id NOT IN "
        "(SELECT MIN(id) FROM server_keys WHERE state = 'current' GROUP BY algorithm)"
    )
    op.create_index(
        "uq_server_keys_current",
        "server_keys",
        ["algorithm"],
        unique=True,
        sqlite_where=_CURRENT,
        postgresql_where=_CURRENT,
    )


def downgrade() -> None:
    op.drop_index("uq_server_keys_current", table_name="server_keys")
