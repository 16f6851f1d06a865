"""Stocking a new cabinet: when a cabinet was first registered, and which keys await stocking

Reviewed by hand. ``cabinets.registered_at``: when the cabinet's first slots were
registered (its first lock board, or ``kiosk run --empty``'s simulated board); NULL for a
cabinet registered before this was recorded. The K9 scheduler does not catch up a daily job
due before it (a count of a cabinet that did not exist yet is no count).
``keys.awaiting_stock``: a key imported with its home slot that has never hung in the
cabinet yet; a custodian's stocking session hangs it (``key.stocked``, K1/K2) and clears
it. Existing keys were in the cabinet already: false.

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-05 11:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0018"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cabinets") as batch:
        batch.add_column(sa.Column("registered_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("keys") as batch:
        batch.add_column(sa.Column(
            "awaiting_stock", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        batch.drop_column("awaiting_stock")
    with op.batch_alter_table("cabinets") as batch:
        batch.drop_column("registered_at")
