"""The outbox: routing new events into delivery rows, recording attempts, the delivery log.

Every function here works inside the caller's transaction and does no I/O but the
database, so the dispatcher can keep sockets out of transactions (a slow SMTP server must
never hold the SQLite write lock that the cabinet needs to record a draw).

Routing is restart-safe because ``route_new`` inserts an event's deliveries and moves the
cursor past it in one transaction: either both commit or neither does. Sending is at least
once: a crash after the receiver accepted a message but before ``record_attempt`` commits
sends it again after the restart, with the same ``X-Kiosk-Delivery`` id.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict, NotFound
from kiosk.notify.outcome import Outcome
from kiosk.notify.routing import targets_for
from kiosk.notify.settings import RouteSettings
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import Event
from kiosk.store.models_notify import NotificationAttempt, NotificationCursor, NotificationDelivery

ROUTE_BATCH = 500
"""Events routed per transaction: bounds one transaction after a long outage."""

ACTOR = "notifier"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: the n-th failure of a round waits
    ``min(max_s, initial_s * factor**(n-1))`` scaled by a factor in [0.5, 1] ("equal
    jitter"), so deliveries that failed together (a receiver down) do not all retry in the
    same second, and no wait exceeds ``max_s``."""

    initial_s: float
    max_s: float
    factor: float = 2.0

    def delay_s(self, failures: int, jitter: float) -> float:
        base = min(self.max_s, self.initial_s * self.factor ** max(0, failures - 1))
        return base * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))


@dataclass(frozen=True)
class Routed:
    events: int
    deliveries: int
    last_seq: int


def head_seq(session: Session, cabinet_id: str) -> int:
    """The last sequence number in the log of ``cabinet_id`` (0 for an empty log)."""
    return int(session.scalar(select(func.max(Event.seq)).where(Event.cabinet_id == cabinet_id))
               or 0)


def route_new(
    session: Session, *, cabinet_id: str, routes: Sequence[RouteSettings], now: dt.datetime,
    batch: int = ROUTE_BATCH,
) -> Routed:
    """Queue deliveries for the next ``batch`` events after the cursor, and move the cursor.

    The first call for a cabinet only places the cursor at the current head: turning
    notifications on does not mail out the history of the log.
    """
    cursor = session.execute(
        select(NotificationCursor).where(NotificationCursor.cabinet_id == cabinet_id)
        .with_for_update()
    ).scalar_one_or_none()
    if cursor is None:
        head = head_seq(session, cabinet_id)
        session.add(NotificationCursor(cabinet_id=cabinet_id, last_seq=head, updated_at=now))
        session.flush()
        return Routed(0, 0, head)
    rows = session.execute(
        select(Event.seq, Event.type)
        .where(Event.cabinet_id == cabinet_id, Event.seq > cursor.last_seq)
        .order_by(Event.seq).limit(batch)
    ).all()
    queued = 0
    for seq, event_type in rows:
        for target in targets_for(event_type, routes):
            session.add(NotificationDelivery(
                cabinet_id=cabinet_id, event_seq=seq, event_type=event_type,
                channel=target.channel, target=target.target, state="pending",
                attempts=0, round_attempts=0, retries=0, next_attempt_at=now, created_at=now,
            ))
            queued += 1
    if rows:
        cursor.last_seq = rows[-1].seq
        cursor.updated_at = now
    session.flush()
    return Routed(len(rows), queued, cursor.last_seq)


def due(
    session: Session, *, cabinet_id: str, now: dt.datetime, limit: int
) -> list[NotificationDelivery]:
    """Pending deliveries whose next attempt is due, oldest first."""
    return list(session.scalars(
        select(NotificationDelivery)
        .where(NotificationDelivery.cabinet_id == cabinet_id,
               NotificationDelivery.state == "pending",
               NotificationDelivery.next_attempt_at <= now)
        .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.created_at,
                  NotificationDelivery.id)
        .limit(limit)
    ))


def record_attempt(
    session: Session, audit: AuditLog, *, delivery_id: uuid.UUID, outcome: Outcome,
    now: dt.datetime, max_attempts: int, backoff: Backoff, jitter: float,
) -> NotificationDelivery:
    """Store one attempt and decide what is next: delivered, retry later, or failed.

    A delivery fails after ``max_attempts`` attempts in its round, or at once on a permanent
    failure; failing appends ``notification.failed`` to the log (the delivery log is not
    the only place a lost alarm notification shows up).
    """
    delivery = tx.get(session, NotificationDelivery, delivery_id, "notification")
    if delivery.state != "pending":
        # Retried by hand and already sent by another path, or a stale batch: keep the log
        # honest and do not overwrite a final state.
        raise Conflict(f"notification {delivery_id} is {delivery.state}, not pending")
    delivery.attempts += 1
    delivery.round_attempts += 1
    session.add(NotificationAttempt(
        delivery_id=delivery.id, attempt=delivery.attempts, at=now, ok=outcome.ok,
        status_code=outcome.status_code, error=outcome.error, duration_ms=outcome.duration_ms,
    ))
    if outcome.ok:
        delivery.state = "delivered"
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif outcome.permanent or delivery.round_attempts >= max_attempts:
        delivery.state = "failed"
        delivery.next_attempt_at = None
        delivery.last_error = outcome.error
        tx.log(session, audit, NewEvent(
            type="notification.failed", actors=[ACTOR],
            payload={
                "delivery": str(delivery.id), "event_seq": delivery.event_seq,
                "event_type": delivery.event_type, "channel": delivery.channel,
                "target": delivery.target, "attempts": delivery.attempts,
                "permanent": outcome.permanent, "status_code": outcome.status_code,
                "error": outcome.error,
            },
        ))
    else:
        delivery.last_error = outcome.error
        delivery.next_attempt_at = now + dt.timedelta(
            seconds=backoff.delay_s(delivery.round_attempts, jitter))
    session.flush()
    return delivery


# ----------------------------------------------------------------------- delivery log
def list_deliveries(
    session: Session, *, state: str | None = None, channel: str | None = None,
    event_type: str | None = None, limit: int = 50, offset: int = 0,
) -> tuple[list[NotificationDelivery], int]:
    query = select(NotificationDelivery)
    if state is not None:
        query = query.where(NotificationDelivery.state == state)
    if channel is not None:
        query = query.where(NotificationDelivery.channel == channel)
    if event_type is not None:
        query = query.where(NotificationDelivery.event_type == event_type)
    return tx.page(session, query,
                   order_by=[NotificationDelivery.created_at.desc(),
                             NotificationDelivery.event_seq.desc(), NotificationDelivery.id],
                   limit=limit, offset=offset)


def get_delivery(session: Session, *, delivery_id: uuid.UUID) -> NotificationDelivery:
    row = session.scalars(
        select(NotificationDelivery).where(NotificationDelivery.id == delivery_id)
        .options(selectinload(NotificationDelivery.attempt_log))
    ).one_or_none()
    if row is None:
        raise NotFound(f"notification {delivery_id} does not exist")
    return row


def retry(
    session: Session, audit: AuditLog, *, by: Principal | None, delivery_id: uuid.UUID,
    now: dt.datetime,
) -> NotificationDelivery:
    """A failed delivery goes back to pending for a fresh round of attempts, now.

    Its attempts so far stay in the log; only a failed delivery can be retried (a pending
    one is already on its way, a delivered one arrived), so anything else is a conflict.
    """
    delivery = get_delivery(session, delivery_id=delivery_id)
    if delivery.state != "failed":
        raise Conflict(
            f"notification {delivery_id} is {delivery.state}; only a failed one is retried"
        )
    delivery.state = "pending"
    delivery.next_attempt_at = now
    delivery.round_attempts = 0
    delivery.retries += 1
    tx.log(session, audit, NewEvent(
        type="notification.retried", actors=by.actors() if by else ["console"],
        payload={"delivery": str(delivery.id), "event_seq": delivery.event_seq,
                 "event_type": delivery.event_type, "channel": delivery.channel,
                 "target": delivery.target, "attempts": delivery.attempts,
                 "retries": delivery.retries},
    ))
    session.flush()
    return delivery
