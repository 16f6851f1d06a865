"""notifications: the dispatcher's cursor, the delivery outbox and its attempts

Reviewed by hand: three new tables, no change to existing ones. The cursor row moves in the
same transaction that inserts an event's deliveries (restart-safe routing); the unique
(cabinet_id, event_seq, channel, target) makes a second delivery of one event to one
target impossible; the composite foreign key ties each delivery to the event it announces.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_cursors",
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "last_seq >= 0", name=op.f("ck_notification_cursors_last_seq_not_negative")
        ),
        sa.PrimaryKeyConstraint("cabinet_id", name=op.f("pk_notification_cursors")),
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=254), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("round_attempts", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "channel IN ('email', 'webhook')",
            name=op.f("ck_notification_deliveries_channel_known"),
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_notification_deliveries_state_known"),
        ),
        sa.CheckConstraint(
            "attempts >= 0 AND round_attempts >= 0 AND retries >= 0",
            name=op.f("ck_notification_deliveries_counts_not_negative"),
        ),
        sa.CheckConstraint(
            "(state = 'pending') = (next_attempt_at IS NOT NULL)",
            name=op.f("ck_notification_deliveries_pending_has_due_time"),
        ),
        sa.ForeignKeyConstraint(
            ["cabinet_id", "event_seq"],
            ["events.cabinet_id", "events.seq"],
            name="fk_notification_deliveries_event_events",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
        sa.UniqueConstraint(
            "cabinet_id", "event_seq", "channel", "target",
            name=op.f("uq_notification_deliveries_cabinet_id_event_seq_channel_target"),
        ),
    )
    op.create_index(
        "ix_notification_deliveries_due",
        "notification_deliveries",
        ["state", "next_attempt_at"],
    )
    op.create_index(
        "ix_notification_deliveries_created_at", "notification_deliveries", ["created_at"]
    )
    op.create_table(
        "notification_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "attempt >= 1", name=op.f("ck_notification_attempts_attempt_positive")
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["notification_deliveries.id"],
            name=op.f("fk_notification_attempts_delivery_id_notification_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_attempts")),
        sa.UniqueConstraint(
            "delivery_id", "attempt", name=op.f("uq_notification_attempts_delivery_id_attempt")
        ),
    )


def downgrade() -> None:
    op.drop_table("notification_attempts")
    op.drop_index("ix_notification_deliveries_created_at", table_name="notification_deliveries")
    op.drop_index("ix_notification_deliveries_due", table_name="notification_deliveries")
    op.drop_table("notification_deliveries")
    op.drop_table("notification_cursors")
