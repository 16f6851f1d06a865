"""A borrower's key due soon gets one reminder: a ``loan.due_soon`` event, routed like any.

The scheduler calls ``remind_due_soon`` on every tick. Each open loan whose due time falls
within the next ``within`` (30 minutes by default) gets a ``due_reminders`` row and the
event in one transaction; the row's unique loan id makes it once per loan, even across
restarts or two processes. A loan already overdue when first seen gets no reminder (the
overdue alarm and its escalation take over, K9), and neither does a loan drawn for less
time than the window once it has been reminded. The notification routes decide who hears
of it (a WeCom or DingTalk group, with the borrower @-mentioned by mobile number).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from kiosk.audit import AuditLog, NewEvent
from kiosk.services import tx
from kiosk.store.models import Loan
from kiosk.store.models_notify import DueReminder

EVENT_TYPE = "loan.due_soon"


def _due_soon(cabinet_id: uuid.UUID, now: dt.datetime, within: dt.timedelta) -> Any:
    return (
        select(Loan).options(selectinload(Loan.key), selectinload(Loan.borrower))
        .where(Loan.cabinet_id == cabinet_id, Loan.returned_at.is_(None),
               Loan.due_at > now, Loan.due_at <= now + within,
               Loan.id.not_in(select(DueReminder.loan_id)))
        .order_by(Loan.due_at)
    )


def any_due_soon(session: Session, *, cabinet_id: uuid.UUID, now: dt.datetime,
                 within: dt.timedelta) -> bool:
    """Whether a reminder is owed (read-only: the scheduler asks before taking the write
    lock, so a quiet tick never blocks the cabinet's own writes)."""
    if within <= dt.timedelta(0):
        return False
    return session.scalars(_due_soon(cabinet_id, now, within).limit(1)).first() is not None


def remind_due_soon(
    session: Session, audit: AuditLog, *, cabinet_id: uuid.UUID, now: dt.datetime,
    within: dt.timedelta,
) -> list[uuid.UUID]:
    """Log one reminder per open loan due in ``(now, now + within]``; returns their loans."""
    if within <= dt.timedelta(0):
        return []
    loans = session.scalars(_due_soon(cabinet_id, now, within)).all()
    for loan in loans:
        row = DueReminder(loan_id=loan.id, at=now)
        session.add(row)
        session.flush()
        stored = tx.log(session, audit, NewEvent(
            type=EVENT_TYPE, actors=["scheduler"], key_number=loan.key.key_number,
            payload={"loan": str(loan.id), "borrower": str(loan.borrower_id),
                     "borrower_name": loan.borrower.name, "label": loan.key.label,
                     "due_at": loan.due_at.isoformat(),
                     "minutes_left": int((loan.due_at - now).total_seconds() // 60)},
        ))
        row.event_seq = stored.seq
    return [loan.id for loan in loans]
