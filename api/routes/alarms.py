"""F1 alarms: acknowledge (open → handled), assign, add notes, close (handled → closed)."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter
from pydantic import Field

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import Code, Limit, Note, Offset, Out, Page, RuleId, Strict, page_of
from kiosk.services import alarms, tx
from kiosk.services.authz import Permission as P
from kiosk.store.models import AlarmState

router = APIRouter(tags=["alarms (F1)"])


class AlarmIn(Strict):
    """A discrepancy reported by a person (the cabinet raises its own alarms)."""

    kind: Code
    message: Note
    rule: RuleId | None = None
    key_id: uuid.UUID | None = None
    slot_id: uuid.UUID | None = None


class NoteIn(Strict):
    note: Note


class AssignIn(Strict):
    owner_id: uuid.UUID = Field(description="The person who owns the alarm from now on.")
    note: Note


class AlarmNoteOut(Out):
    id: uuid.UUID
    author_id: uuid.UUID
    at: dt.datetime
    text: str
    new_state: AlarmState | None


class AlarmOut(Out):
    id: uuid.UUID
    kind: str
    cabinet_id: uuid.UUID | None
    slot_id: uuid.UUID | None
    key_id: uuid.UUID | None
    loan_id: uuid.UUID | None
    rule: str | None
    message: str
    state: AlarmState
    owner_id: uuid.UUID | None
    raised_at: dt.datetime
    closed_at: dt.datetime | None
    event_seq: int | None
    notes: list[AlarmNoteOut]
    updated_at: dt.datetime


@router.get("/alarms", response_model=Page[AlarmOut], dependencies=[needs(P.ALARMS_READ)])
def list_alarms(
    session: ReadSession,
    state: AlarmState | None = None,
    kind: Code | None = None,
    owner_id: uuid.UUID | None = None,
    key_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AlarmOut]:
    rows, total = alarms.list_alarms(
        session,
        state=state,
        kind=kind,
        owner_id=owner_id,
        key_id=key_id,
        limit=limit,
        offset=offset,
    )
    return page_of(AlarmOut, rows, total, limit, offset)


@router.post(
    "/alarms",
    response_model=AlarmOut,
    status_code=201,
    dependencies=[needs(P.ALARMS_WRITE)],
    summary="Report a discrepancy by hand; the reporter owns it (F1)",
)
def report(body: AlarmIn, by: PrincipalDep, audit: AuditDep) -> AlarmOut:
    with tx.write(audit) as session:
        alarm = alarms.raise_alarm(
            session,
            audit,
            kind=body.kind,
            message=body.message,
            rule=body.rule,
            key_id=body.key_id,
            slot_id=body.slot_id,
            owner_id=by.person_id,
            actors=by.actors(),
        )
        return AlarmOut.model_validate(alarm)


@router.get("/alarms/{alarm_id:uuid}", response_model=AlarmOut, dependencies=[needs(P.ALARMS_READ)])
def get_alarm(alarm_id: uuid.UUID, session: ReadSession) -> AlarmOut:
    return AlarmOut.model_validate(alarms.get_alarm(session, alarm_id=alarm_id))


@router.post(
    "/alarms/{alarm_id:uuid}/acknowledge",
    response_model=AlarmOut,
    dependencies=[needs(P.ALARMS_WRITE)],
    summary="F1: open → handled; the first to acknowledge owns it",
)
def acknowledge(alarm_id: uuid.UUID, body: NoteIn, by: PrincipalDep, audit: AuditDep) -> AlarmOut:
    with tx.write(audit) as session:
        return AlarmOut.model_validate(
            alarms.acknowledge(session, audit, by=by, alarm_id=alarm_id, note=body.note)
        )


@router.post(
    "/alarms/{alarm_id:uuid}/assign", response_model=AlarmOut, dependencies=[needs(P.ALARMS_WRITE)]
)
def assign(alarm_id: uuid.UUID, body: AssignIn, by: PrincipalDep, audit: AuditDep) -> AlarmOut:
    with tx.write(audit) as session:
        return AlarmOut.model_validate(
            alarms.assign(
                session, audit, by=by, alarm_id=alarm_id, owner_id=body.owner_id, note=body.note
            )
        )


@router.post(
    "/alarms/{alarm_id:uuid}/notes", response_model=AlarmOut, dependencies=[needs(P.ALARMS_WRITE)]
)
def add_note(alarm_id: uuid.UUID, body: NoteIn, by: PrincipalDep, audit: AuditDep) -> AlarmOut:
    with tx.write(audit) as session:
        return AlarmOut.model_validate(
            alarms.add_note(session, audit, by=by, alarm_id=alarm_id, note=body.note)
        )


@router.post(
    "/alarms/{alarm_id:uuid}/close",
    response_model=AlarmOut,
    dependencies=[needs(P.ALARMS_WRITE)],
    summary="F1: handled → closed, with the resolution",
)
def close(alarm_id: uuid.UUID, body: NoteIn, by: PrincipalDep, audit: AuditDep) -> AlarmOut:
    with tx.write(audit) as session:
        return AlarmOut.model_validate(
            alarms.close(session, audit, by=by, alarm_id=alarm_id, note=body.note)
        )
