"""Notification outbox: the dispatcher's cursor, one row per delivery, one per attempt.

Kept apart from ``models.py`` like ``models_reports``; same ``Base``, one metadata, one
migration history (``0004``). The guarantees live in the schema:

- ``notification_cursors`` holds, per cabinet, the last event sequence number already
  routed. It moves in the same transaction that inserts that event's deliveries, so after a
  crash or restart an event is routed exactly once: never skipped, never twice.
- ``notification_deliveries`` is unique per (event, channel, target): even two dispatchers
  racing cannot queue the same message twice. It references the event it announces.
- ``notification_attempts`` keeps every try with its status and error, for the delivery log.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kiosk.store.models import Base
from kiosk.store.types import utcnow

DELIVERY_STATES = ("pending", "delivered", "failed")
DELIVERY_CHANNELS = ("email", "webhook", "wecom", "dingtalk")


class NotificationCursor(Base):
    """Events of ``cabinet_id`` up to ``last_seq`` have been routed into the outbox."""

    __tablename__ = "notification_cursors"

    cabinet_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("last_seq >= 0", name="last_seq_not_negative"),)


class NotificationDelivery(Base):
    """One event to one target (an email address or a webhook name) and where it stands."""

    __tablename__ = "notification_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    cabinet_id: Mapped[str] = mapped_column(String(64))
    event_seq: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(254), doc="Email address or webhook name.")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, doc="Every attempt, ever.")
    round_attempts: Mapped[int] = mapped_column(
        Integer, default=0,
        doc="Attempts since the delivery was queued or last retried by hand: the budget "
        "(max_attempts) and the backoff exponent count these.",
    )
    retries: Mapped[int] = mapped_column(Integer, default=0, doc="Manual retries.")
    next_attempt_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    attempt_log: Mapped[list[NotificationAttempt]] = relationship(
        back_populates="delivery", order_by="NotificationAttempt.attempt"
    )

    __table_args__ = (
        UniqueConstraint("cabinet_id", "event_seq", "channel", "target"),
        ForeignKeyConstraint(
            ["cabinet_id", "event_seq"], ["events.cabinet_id", "events.seq"],
            name="fk_notification_deliveries_event_events",
        ),
        Index("ix_notification_deliveries_due", "state", "next_attempt_at"),
        Index("ix_notification_deliveries_created_at", "created_at"),
        CheckConstraint(
            "channel IN ('email', 'webhook', 'wecom', 'dingtalk')", name="channel_known"
        ),
        CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state_known"),
        CheckConstraint(
            "attempts >= 0 AND round_attempts >= 0 AND retries >= 0", name="counts_not_negative"
        ),
        CheckConstraint(
            "(state = 'pending') = (next_attempt_at IS NOT NULL)", name="pending_has_due_time"
        ),
    )


class NotificationAttempt(Base):
    """One try at a delivery: when, how it went, how long it took."""

    __tablename__ = "notification_attempts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notification_deliveries.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool]
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)

    delivery: Mapped[NotificationDelivery] = relationship(back_populates="attempt_log")

    __table_args__ = (
        UniqueConstraint("delivery_id", "attempt"),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
    )


class DueReminder(Base):
    """A borrower was reminded that a loan is due soon: one row per loan, so once per loan.

    The unique loan id is the guarantee: two scheduler ticks, or two daemons on one
    database, cannot both remind (the second insert fails and its transaction rolls back).
    """

    __tablename__ = "due_reminders"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    loan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loans.id"), unique=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    event_seq: Mapped[int | None] = mapped_column(BigInteger)
