"""RFID cards: issue, revoke, report lost (refused from the next tap on)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Body

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import CardUid, Instant, Limit, Note, Offset, Out, Page, Strict, page_of
from kiosk.services import cards, tx
from kiosk.services.authz import Permission as P
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
