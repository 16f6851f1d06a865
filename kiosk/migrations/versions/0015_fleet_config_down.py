"""Fleet: which cabinet used an approval (K7, used once across the fleet)

Reviewed by hand. Issue 12, item 6: an approval is authored at the hub and consumed by one
draw at one cabinet; consumption is the cabinet's fact, shipped up with the loan. The hub
records the first use per approval in ``hub_approval_uses`` (primary key: the approval), so it
can tell every other cabinet that the approval is spent, and a second use anywhere is a hub
alarm rather than a silent double.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-05 11:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hub_approval_uses",
        sa.Column("approval_id", sa.Uuid(), nullable=False),
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("used_at", kiosk.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("approval_id", name=op.f("pk_hub_approval_uses")),
    )


def downgrade() -> None:
    op.drop_table("hub_approval_uses")
