"""Key identity: each key's 1-Wire fob ROM, and key groups whose keys may go back anywhere

Reviewed by hand. Issue 13, item 2: a cabinet with identity receptors reads *which* key
hangs in a slot, so each key records the ROM of the chip in its fob (``keys.fob_rom``, 16
hex digits, unique: two keys cannot carry one chip; NULL until it is paired at intake or
from the demo data). ``key_groups.return_anywhere``: keys of such a group may be hung in any
free slot, which then becomes their home (default false: today's fixed homes).

Revision ID: 0013
Revises: 0007
Create Date: 2026-12-05 09:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        batch.add_column(sa.Column("fob_rom", sa.String(length=16), nullable=True))
        batch.create_unique_constraint(op.f("uq_keys_fob_rom"), ["fob_rom"])
    with op.batch_alter_table("key_groups") as batch:
        batch.add_column(sa.Column(
            "return_anywhere", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("key_groups") as batch:
        batch.drop_column("return_anywhere")
    with op.batch_alter_table("keys") as batch:
        batch.drop_constraint(op.f("uq_keys_fob_rom"), type_="unique")
        batch.drop_column("fob_rom")
