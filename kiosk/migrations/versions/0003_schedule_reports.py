"""scheduler job runs, overdue escalations and K9 reports (never deleted)

Reviewed by hand: three new tables, no change to existing ones; the unique
(job, day) and (alarm_id, level) constraints are what make the scheduler restart-safe.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 06:03:29.317973
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("ran_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("catch_up", sa.Boolean(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
        sa.UniqueConstraint("job", "day", name=op.f("uq_job_runs_job_day")),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("generated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=True),
        sa.Column("acknowledged_by_id", sa.Uuid(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledgement_note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('daily', 'overdue', 'key', 'person')", name=op.f("ck_reports_kind_known")
        ),
        sa.CheckConstraint("language IN ('zh', 'en')", name=op.f("ck_reports_language_known")),
        sa.CheckConstraint(
            "(acknowledged_at IS NULL) = (acknowledged_by IS NULL)",
            name=op.f("ck_reports_ack_complete"),
        ),
        sa.CheckConstraint("period_end >= period_start", name=op.f("ck_reports_period_order")),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_id"],
            ["accounts.id"],
            name=op.f("fk_reports_acknowledged_by_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    op.create_table(
        "alarm_escalations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("alarm_id", sa.Uuid(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("to_role", sa.String(length=24), nullable=False),
        sa.Column("to_person_id", sa.Uuid(), nullable=True),
        sa.Column("at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "level IN ('custodian', 'supervisor', 'long_overdue')",
            name=op.f("ck_alarm_escalations_level_known"),
        ),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarms.id"], name=op.f("fk_alarm_escalations_alarm_id_alarms")
        ),
        sa.ForeignKeyConstraint(
            ["to_person_id"], ["people.id"], name=op.f("fk_alarm_escalations_to_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_escalations")),
        sa.UniqueConstraint("alarm_id", "level", name=op.f("uq_alarm_escalations_alarm_id_level")),
    )


def downgrade() -> None:
    op.drop_table("alarm_escalations")
    op.drop_table("reports")
    op.drop_table("job_runs")
