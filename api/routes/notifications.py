"""The notification delivery log: list, read with attempts, retry a failed delivery.

Deliveries are made by the daemon's dispatcher from the event log (``kiosk.notify``);
nothing here sends anything. A retry only puts a failed delivery back in the outbox for a
fresh round of attempts, and is itself an audit event (``notification.retried``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from fastapi import APIRouter

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import EventType, Limit, Offset, Out, Page, page_of
from kiosk.notify import outbox
from kiosk.services import tx
from kiosk.services.authz import Permission as P
from kiosk.store.types import utcnow

router = APIRouter(tags=["notifications"])

State = Literal["pending", "delivered", "failed"]
ChannelName = Literal["email", "webhook", "wecom", "dingtalk"]


class AttemptOut(Out):
    attempt: int
    at: dt.datetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(Out):
    id: uuid.UUID
    cabinet_id: str
    event_seq: int
    event_type: str
    channel: str
    target: str
    state: str
    attempts: int
    retries: int
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    last_error: str | None


class DeliveryDetail(DeliveryOut):
    attempt_log: list[AttemptOut]


@router.get(
    "/notifications", response_model=Page[DeliveryOut],
    dependencies=[needs(P.NOTIFICATIONS_READ)],
    summary="The delivery log, newest first",
)
def list_notifications(
    session: ReadSession,
    state: State | None = None,
    channel: ChannelName | None = None,
    event_type: EventType | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeliveryOut]:
    rows, total = outbox.list_deliveries(
        session, state=state, channel=channel, event_type=event_type, limit=limit, offset=offset
    )
    return page_of(DeliveryOut, rows, total, limit, offset)


@router.get(
    "/notifications/{delivery_id:uuid}", response_model=DeliveryDetail,
    dependencies=[needs(P.NOTIFICATIONS_READ)],
    summary="One delivery with every attempt (status code, error, duration)",
)
def get_notification(delivery_id: uuid.UUID, session: ReadSession) -> DeliveryDetail:
    return DeliveryDetail.model_validate(outbox.get_delivery(session, delivery_id=delivery_id))


@router.post(
    "/notifications/{delivery_id:uuid}/retry", response_model=DeliveryOut,
    dependencies=[needs(P.NOTIFICATIONS_RETRY)],
    summary="Send a failed delivery again (a fresh round of attempts; 409 unless failed)",
)
def retry_notification(delivery_id: uuid.UUID, by: PrincipalDep, audit: AuditDep) -> DeliveryOut:
    with tx.write(audit) as session:
        row = outbox.retry(session, audit, by=by, delivery_id=delivery_id, now=utcnow())
        return DeliveryOut.model_validate(row)
