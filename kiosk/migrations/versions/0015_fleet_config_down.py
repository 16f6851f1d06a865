"""Fleet: which cabinet used an approval (K7); accounts scoped to one site

Reviewed by hand. Issue 12, item 6: an approval is authored at the hub and consumed by one
draw at one cabinet; consumption is the cabinet's fact, shipped up with the loan. The hub
records the first use per approval in ``hub_approval_uses`` (primary key: the approval), so it
can tell every other cabinet that the approval is spent, and a second use anywhere is a hub
alarm rather than a silent double.

Issue 12, item 1: site-scoped roles at the hub. ``hub_account_sites`` scopes an account to
one site (a supervisor of one tower sees only that tower); an account without a row sees
the whole fleet.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 11:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0015"
down_revision: str | None = "0014"
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
    op.create_table(
        "hub_account_sites",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE",
                                name=op.f("fk_hub_account_sites_account_id_accounts")),
        sa.ForeignKeyConstraint(["site_id"], ["hub_sites.id"],
                                name=op.f("fk_hub_account_sites_site_id_hub_sites")),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_hub_account_sites")),
    )


def downgrade() -> None:
    op.drop_table("hub_account_sites")
    op.drop_table("hub_approval_uses")
