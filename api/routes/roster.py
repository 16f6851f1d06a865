"""K8 duty roster: the on-duty managers who co-open the cabinet after hours."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter, Response

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import Instant, Limit, Offset, Out, Page, Strict, page_of
from kiosk.services import roster, tx
from kiosk.services.authz import Permission as P
from kiosk.store.types import utcnow

router = APIRouter(tags=["duty roster (K8)"])


class ShiftIn(Strict):
    person_id: uuid.UUID
    starts_at: Instant
    ends_at: Instant


class ShiftOut(Out):
    id: uuid.UUID
    person_id: uuid.UUID
    starts_at: dt.datetime
    ends_at: dt.datetime
    updated_at: dt.datetime


@router.get("/duty-roster", response_model=Page[ShiftOut], dependencies=[needs(P.ROSTER_READ)])
def list_shifts(
    session: ReadSession,
    starts_before: Instant | None = None,
    ends_after: Instant | None = None,
    person_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ShiftOut]:
    rows, total = roster.list_shifts(
        session,
        starts_before=starts_before,
        ends_after=ends_after,
        person_id=person_id,
        limit=limit,
        offset=offset,
    )
    return page_of(ShiftOut, rows, total, limit, offset)


@router.get(
    "/duty-roster/on-duty",
    response_model=list[ShiftOut],
    dependencies=[needs(P.ROSTER_READ)],
    summary="K8: who is the on-duty manager at a time (default: now)",
)
def on_duty(session: ReadSession, at: Instant | None = None) -> list[ShiftOut]:
    return [ShiftOut.model_validate(s) for s in roster.on_duty(session, at=at or utcnow())]


@router.post(
    "/duty-roster", response_model=ShiftOut, status_code=201, dependencies=[needs(P.ROSTER_WRITE)]
)
def add_shift(body: ShiftIn, by: PrincipalDep, audit: AuditDep) -> ShiftOut:
    with tx.write(audit) as session:
        return ShiftOut.model_validate(roster.add_shift(session, audit, by=by, **body.model_dump()))


@router.get(
    "/duty-roster/{shift_id:uuid}", response_model=ShiftOut, dependencies=[needs(P.ROSTER_READ)]
)
def get_shift(shift_id: uuid.UUID, session: ReadSession) -> ShiftOut:
    return ShiftOut.model_validate(roster.get_shift(session, shift_id=shift_id))


@router.delete(
    "/duty-roster/{shift_id:uuid}",
    status_code=204,
    response_class=Response,
    dependencies=[needs(P.ROSTER_WRITE)],
)
def remove_shift(shift_id: uuid.UUID, by: PrincipalDep, audit: AuditDep) -> Response:
    with tx.write(audit) as session:
        roster.remove_shift(session, audit, by=by, shift_id=shift_id)
    return Response(status_code=204)
