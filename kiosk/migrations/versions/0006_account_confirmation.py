"""Accounts: who created each one, and a second administrator's confirmation of new admins

Reviewed by hand. Issue 16 (dual control that one person could satisfy): an administrator
could make a second admin account over the API and confirm their own K2 remote unlock with
it. Each account now records the account that created it (NULL: the device console) and,
for an administrator made or promoted over the API, stays unusable until a different
administrator confirms it (``awaiting_confirmation``, ``confirmed_by_id``). Existing
accounts count as confirmed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 08:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("created_by_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("confirmed_by_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column(
            "awaiting_confirmation", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_foreign_key(
            op.f("fk_accounts_created_by_id_accounts"), "accounts", ["created_by_id"], ["id"])
        batch.create_foreign_key(
            op.f("fk_accounts_confirmed_by_id_accounts"), "accounts", ["confirmed_by_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint(op.f("fk_accounts_confirmed_by_id_accounts"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_accounts_created_by_id_accounts"), type_="foreignkey")
        batch.drop_column("awaiting_confirmation")
        batch.drop_column("confirmed_by_id")
        batch.drop_column("created_by_id")
