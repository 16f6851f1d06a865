"""PINs at the cabinet: argon2id hashes of each person's PIN and duress PIN, and the lock
that wrong PINs put on a card (kept in a table, so it survives a restart)

Reviewed by hand. Issue 14, item 8.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = kiosk.store.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "pin_credentials",
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("pin_hash", sa.Text(), nullable=True),
        sa.Column("duress_hash", sa.Text(), nullable=True),
        sa.Column("set_at", _TIME(), nullable=True),
        sa.Column("may_set_until", _TIME(), nullable=True),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name=op.f("fk_pin_credentials_person_id_people")),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_pin_credentials")),
    )
    op.create_table(
        "pin_lockouts",
        sa.Column("card_uid", sa.String(20), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", _TIME(), nullable=True),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.PrimaryKeyConstraint("card_uid", name=op.f("pk_pin_lockouts")),
    )


def downgrade() -> None:
    op.drop_table("pin_lockouts")
    op.drop_table("pin_credentials")
