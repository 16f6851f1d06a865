"""RFID cards: issue, revoke, report lost (refused from the next tap on); enrol a card by
tapping it at the cabinet (issue 11)."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Request
from pydantic import Field

from api.deps import AuditDep, PrincipalDep, ReadSession, RuntimeDep, needs
from api.routes.live import get_cabinet
from api.schemas import CardUid, Instant, Limit, Note, Offset, Out, Page, Strict, page_of
from kiosk.cabinet import Cabinet
from kiosk.cabinet.flows.enrolment import Enrolment, EnrolmentFlow
from kiosk.errors import NotFound
from kiosk.services import cards, pins, tx
from kiosk.services.authz import Permission as P
from kiosk.services.people import visible_person
from kiosk.store.models import CardKind, CardStatus

router = APIRouter(tags=["cards"])


class CardIn(Strict):
    uid: CardUid
    person_id: uuid.UUID
    kind: CardKind = CardKind.STAFF
    valid_from: Instant | None = None
    valid_to: Instant | None = None


class NoteIn(Strict):
    note: Note | None = None


class CardOut(Out):
    id: uuid.UUID
    uid: str
    person_id: uuid.UUID
    kind: CardKind
    status: CardStatus
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None
    updated_at: dt.datetime


OptionalNote = Annotated[NoteIn | None, Body()]


@router.get("/cards", response_model=Page[CardOut], dependencies=[needs(P.CARDS_READ)])
def list_cards(
    by: PrincipalDep,
    session: ReadSession,
    person_id: uuid.UUID | None = None,
    status: CardStatus | None = None,
    uid: CardUid | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[CardOut]:
    rows, total = cards.list_cards(
        session, by=by, person_id=person_id, status=status, uid=uid, limit=limit, offset=offset
    )
    return page_of(CardOut, rows, total, limit, offset)


@router.post("/cards", response_model=CardOut, status_code=201, dependencies=[needs(P.CARDS_WRITE)])
def issue_card(body: CardIn, by: PrincipalDep, audit: AuditDep) -> CardOut:
    with tx.write(audit) as session:
        return CardOut.model_validate(cards.issue_card(session, audit, by=by, **body.model_dump()))


@router.get("/cards/{card_id:uuid}", response_model=CardOut, dependencies=[needs(P.CARDS_READ)])
def get_card(card_id: uuid.UUID, by: PrincipalDep, session: ReadSession) -> CardOut:
    return CardOut.model_validate(cards.get_card(session, by=by, card_id=card_id))


@router.post(
    "/cards/{card_id:uuid}/lost",
    response_model=CardOut,
    dependencies=[needs(P.CARDS_REPORT_LOST)],
    summary="Report a card lost: the cabinet refuses it from its next tap",
)
def report_lost(
    card_id: uuid.UUID, by: PrincipalDep, audit: AuditDep, body: OptionalNote = None
) -> CardOut:
    with tx.write(audit) as session:
        card = cards.report_lost(
            session, audit, by=by, card_id=card_id, note=body.note if body else None
        )
        return CardOut.model_validate(card)


@router.post(
    "/cards/{card_id:uuid}/revoke", response_model=CardOut, dependencies=[needs(P.CARDS_WRITE)]
)
def revoke_card(
    card_id: uuid.UUID, by: PrincipalDep, audit: AuditDep, body: OptionalNote = None
) -> CardOut:
    with tx.write(audit) as session:
        card = cards.revoke(
            session, audit, by=by, card_id=card_id, note=body.note if body else None
        )
        return CardOut.model_validate(card)


# ------------------------------------------------------------- the PIN with a badge
class PinResetOut(Out):
    person_id: uuid.UUID
    may_set_until: dt.datetime = Field(
        description="The person sets a new PIN at the cabinet with their badge until then.")


@router.post(
    "/people/{person_id:uuid}/pin/reset", response_model=PinResetOut,
    dependencies=[needs(P.PINS_RESET)],
    summary="Reset a person's cabinet PIN: they set a new one at the cabinet with their badge",
)
def reset_pin(person_id: uuid.UUID, by: PrincipalDep, audit: AuditDep,
              runtime: RuntimeDep) -> PinResetOut:
    """Clears the PIN and the duress PIN and any lock wrong PINs put on the person's cards
    (``pin.reset``). Until ``may_set_until`` (``[pin] set_window_min``) the person sets a new
    PIN at the cabinet with their badge alone: the custodian's word stands in for the old
    PIN (README "PIN and duress")."""
    window = dt.timedelta(minutes=runtime.settings.pin.set_window_min)
    with tx.write(audit) as session:
        row = pins.reset(session, audit, by=by, person_id=person_id, window=window)
        assert row.may_set_until is not None
        return PinResetOut(person_id=row.person_id, may_set_until=row.may_set_until)


# ------------------------------------------------- enrolment by a tap at the cabinet
class EnrolmentOut(Out):
    id: uuid.UUID
    person_id: uuid.UUID
    state: str = Field(description="waiting, enrolled, timed_out or cancelled")
    started_at: dt.datetime
    deadline: dt.datetime
    seconds_left: int = Field(description="Until the deadline while waiting; 0 once ended.")
    card_uid: str | None
    card_id: uuid.UUID | None
    refused: int = Field(description="Cards already on record tapped (and refused) meanwhile.")


def _enrolment_out(enrolment: Enrolment, now: dt.datetime) -> EnrolmentOut:
    left = (enrolment.deadline - now).total_seconds() if enrolment.state == "waiting" else 0
    return EnrolmentOut(
        id=enrolment.id, person_id=enrolment.person_id, state=enrolment.state,
        started_at=enrolment.started_at, deadline=enrolment.deadline,
        seconds_left=max(0, math.ceil(left)), card_uid=enrolment.card_uid,
        card_id=enrolment.card_id, refused=enrolment.refused,
    )


def _enrolments(request: Request) -> tuple[Cabinet, EnrolmentFlow]:
    cabinet = get_cabinet(request)
    return cabinet, cabinet.lookup("enrolment", EnrolmentFlow)


@router.post(
    "/people/{person_id:uuid}/cards/enrol",
    response_model=EnrolmentOut,
    status_code=202,
    dependencies=[needs(P.CARDS_WRITE)],
    summary="Enrol a card by tapping it: the next unknown card tapped at the cabinet within "
            "60 s is bound to this person",
    description=(
        "The cabinet's idle screen asks for the new card. A card already on record is refused "
        "(``access.denied``) and the enrolment keeps waiting; the binding is logged as "
        "``card.enrolled`` naming the account that started it, the deadline passing as "
        "``card.enrolment_timed_out``. One enrolment waits at a time (409 otherwise). "
        "Poll ``GET …/cards/enrol/{enrolment_id}`` for the outcome."
    ),
)
async def start_enrolment(person_id: uuid.UUID, request: Request, by: PrincipalDep
                          ) -> EnrolmentOut:
    cabinet, flow = _enrolments(request)
    async with cabinet.input():
        enrolment = await flow.start(person_id, by)
    return _enrolment_out(enrolment, cabinet.clock())


@router.get(
    "/people/{person_id:uuid}/cards/enrol/{enrolment_id:uuid}",
    response_model=EnrolmentOut,
    dependencies=[needs(P.CARDS_READ)],
    summary="An enrolment's state: waiting (with the seconds left), enrolled (the card), "
            "timed_out",
)
async def enrolment_state(person_id: uuid.UUID, enrolment_id: uuid.UUID, request: Request,
                          by: PrincipalDep, session: ReadSession) -> EnrolmentOut:
    cabinet, flow = _enrolments(request)
    enrolment = flow.state_of(enrolment_id)
    if enrolment is None or enrolment.person_id != person_id:
        raise NotFound("no such enrolment at this cabinet (they are not kept after a restart)")
    visible_person(session, by=by, person_id=person_id)
    return _enrolment_out(enrolment, cabinet.clock())
