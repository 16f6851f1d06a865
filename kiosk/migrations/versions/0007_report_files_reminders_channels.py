"""Issued reports keep their exact files; due-soon reminders; WeCom and DingTalk channels

Reviewed by hand. ``report_files`` holds the bytes of each rendering of an issued report
(zh/en × PDF/CSV) whose SHA-256 is in the report's ``report.generated`` event;
``due_reminders`` has one row per loan reminded (once per loan); the delivery channels
gain ``wecom`` and ``dingtalk`` (group robots). SQLite changes the check constraint by
copy-and-move (batch mode), PostgreSQL in place.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-05 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHANNELS_OLD = "channel IN ('email', 'webhook')"
_CHANNELS_NEW = "channel IN ('email', 'webhook', 'wecom', 'dingtalk')"


def upgrade() -> None:
    op.create_table(
        "report_files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "name IN ('zh.pdf', 'zh.csv', 'en.pdf', 'en.csv')",
            name=op.f("ck_report_files_name_known"),
        ),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_report_files_report_id_reports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_files")),
        sa.UniqueConstraint("report_id", "name", name=op.f("uq_report_files_report_id_name")),
    )
    op.create_table(
        "due_reminders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["loan_id"], ["loans.id"], name=op.f("fk_due_reminders_loan_id_loans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_due_reminders")),
        sa.UniqueConstraint("loan_id", name=op.f("uq_due_reminders_loan_id")),
    )
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.drop_constraint(op.f("ck_notification_deliveries_channel_known"), type_="check")
        batch.create_check_constraint("channel_known", _CHANNELS_NEW)


def downgrade() -> None:
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.drop_constraint(op.f("ck_notification_deliveries_channel_known"), type_="check")
        batch.create_check_constraint("channel_known", _CHANNELS_OLD)
    op.drop_table("due_reminders")
    op.drop_table("report_files")
