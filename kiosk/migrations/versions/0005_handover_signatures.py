"""H1 handovers: both signatures, expiry, the stored report; reports gain the handover kind

Reviewed by hand. ``handovers`` existed since 0001 but nothing wrote it; it gains who
signed and how (badge UID or linked admin account), the event sequence numbers, an expiry,
the stored report it produced and a partial unique index (one pending handover per
cabinet). ``reports.kind`` accepts ``handover``. SQLite changes constraints by
copy-and-move (batch mode), PostgreSQL in place.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 08:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS_OLD = "kind IN ('daily', 'overdue', 'key', 'person')"
_KINDS_NEW = "kind IN ('daily', 'overdue', 'key', 'person', 'handover')"
_PENDING = sa.text("state = 'started'")


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_constraint(op.f("ck_reports_kind_known"), type_="check")
        batch.create_check_constraint("kind_known", _KINDS_NEW)
    with op.batch_alter_table("handovers") as batch:
        batch.add_column(sa.Column("outgoing_card", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("outgoing_account", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("incoming_card", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column(
            "expires_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column(
            "closed_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("close_reason", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("started_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("accepted_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("report_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_handovers_report_id_reports"), "reports", ["report_id"], ["id"]
        )
        batch.create_check_constraint(
            "incoming_tapped", "state <> 'accepted' OR incoming_card IS NOT NULL"
        )
        batch.create_check_constraint(
            "outgoing_signed", "outgoing_card IS NOT NULL OR outgoing_account IS NOT NULL"
        )
    op.create_index(
        "uq_handovers_one_pending", "handovers", ["cabinet_id"], unique=True,
        sqlite_where=_PENDING, postgresql_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("uq_handovers_one_pending", table_name="handovers")
    with op.batch_alter_table("handovers") as batch:
        batch.drop_constraint(op.f("ck_handovers_outgoing_signed"), type_="check")
        batch.drop_constraint(op.f("ck_handovers_incoming_tapped"), type_="check")
        batch.drop_constraint(op.f("fk_handovers_report_id_reports"), type_="foreignkey")
        for column in ("report_id", "accepted_seq", "started_seq", "close_reason", "closed_at",
                       "expires_at", "incoming_card", "outgoing_account", "outgoing_card"):
            batch.drop_column(column)
    with op.batch_alter_table("reports") as batch:
        batch.drop_constraint(op.f("ck_reports_kind_known"), type_="check")
        batch.create_check_constraint("kind_known", _KINDS_OLD)
