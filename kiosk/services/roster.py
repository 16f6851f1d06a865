"""K8 duty roster: who is the on-duty manager when.

Outside business hours the cabinet opens only with the on-duty manager per this roster, so
a shift must name a person holding the duty-manager role, and one person's shifts never
overlap (an overlap would make "who was on duty" ambiguous in a later review).
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict, InvalidRequest
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import DutyShift, Person, Role

MAX_SHIFT = dt.timedelta(hours=48)


def list_shifts(
    session: Session,
    *,
    starts_before: dt.datetime | None,
    ends_after: dt.datetime | None,
    person_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[DutyShift], int]:
    query = select(DutyShift)
    if starts_before is not None:
        query = query.where(DutyShift.starts_at < starts_before)
    if ends_after is not None:
        query = query.where(DutyShift.ends_at > ends_after)
    if person_id is not None:
        query = query.where(DutyShift.person_id == person_id)
    return tx.page(
        session, query, order_by=[DutyShift.starts_at, DutyShift.id], limit=limit, offset=offset
    )


def on_duty(session: Session, *, at: dt.datetime) -> list[DutyShift]:
    """The shifts covering ``at`` (the managers who may co-open the cabinet then, K8)."""
    return list(
        session.scalars(
            select(DutyShift)
            .where(DutyShift.starts_at <= at, DutyShift.ends_at > at)
            .order_by(DutyShift.starts_at)
        ).all()
    )


def get_shift(session: Session, *, shift_id: uuid.UUID) -> DutyShift:
    return tx.get(session, DutyShift, shift_id, "duty shift")


def add_shift(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    person_id: uuid.UUID,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
) -> DutyShift:
    person = tx.get(session, Person, person_id, "person")
    if not person.has_role(Role.DUTY_MANAGER) or not person.active:
        raise InvalidRequest(f"K8: {person.name} is not an active duty manager")
    if ends_at <= starts_at:
        raise InvalidRequest("K8: a shift ends after it starts")
    if ends_at - starts_at > MAX_SHIFT:
        raise InvalidRequest("K8: a shift lasts at most 48 hours")
    clash = session.scalars(
        select(DutyShift).where(
            DutyShift.person_id == person.id,
            DutyShift.starts_at < ends_at,
            DutyShift.ends_at > starts_at,
        )
    ).first()
    if clash is not None:
        raise Conflict(
            f"K8: {person.name} already has a shift {clash.starts_at.isoformat()} – "
            f"{clash.ends_at.isoformat()}"
        )
    shift = DutyShift(person_id=person.id, starts_at=starts_at, ends_at=ends_at)
    session.add(shift)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="roster.shift_added",
            actors=by.actors(),
            rules=["K8"],
            payload={
                "shift": str(shift.id),
                "person": str(person.id),
                "starts_at": starts_at.isoformat(),
                "ends_at": ends_at.isoformat(),
            },
        ),
    )
    return shift


def remove_shift(session: Session, audit: AuditLog, *, by: Principal, shift_id: uuid.UUID) -> None:
    shift = tx.get(session, DutyShift, shift_id, "duty shift")
    session.delete(shift)
    tx.log(
        session,
        audit,
        NewEvent(
            type="roster.shift_removed",
            actors=by.actors(),
            rules=["K8"],
            payload={
                "shift": str(shift_id),
                "person": str(shift.person_id),
                "starts_at": shift.starts_at.isoformat(),
                "ends_at": shift.ends_at.isoformat(),
            },
        ),
    )
