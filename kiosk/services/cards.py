"""RFID cards: issue, revoke, report lost; and the check a tap goes through.

A lost or revoked card stays on record (never deleted) so that the next tap of it is
recognised and refused by name, instead of looking like an unknown card.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict, InvalidRequest
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.services.people import visible_person
from kiosk.store.models import Card, CardKind, CardStatus, Person
from kiosk.store.types import utcnow


def _visible_card(session: Session, by: Principal, card_id: uuid.UUID) -> Card:
    card = tx.get(session, Card, card_id, "card")
    by.check_department(card.person.department_id, f"card {card_id}")
    return card


def get_card(session: Session, *, by: Principal, card_id: uuid.UUID) -> Card:
    return _visible_card(session, by, card_id)


def list_cards(
    session: Session,
    *,
    by: Principal,
    person_id: uuid.UUID | None,
    status: CardStatus | None,
    uid: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Card], int]:
    query = select(Card).join(Person, Card.person_id == Person.id)
    if by.department_id is not None:
        query = query.where(Person.department_id == by.department_id)
    if person_id is not None:
        query = query.where(Card.person_id == person_id)
    if status is not None:
        query = query.where(Card.status == status)
    if uid is not None:
        query = query.where(Card.uid == uid.upper())
    return tx.page(session, query, order_by=[Card.uid], limit=limit, offset=offset)


def issue_card(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    uid: str,
    person_id: uuid.UUID,
    kind: CardKind,
    valid_from: dt.datetime | None,
    valid_to: dt.datetime | None,
    event: str = "card.issued",
    extra: dict[str, object] | None = None,
) -> Card:
    """Bind a new card to a person. ``event``/``extra``: a card enrolled by a tap at the
    cabinet is logged once, as ``card.enrolled`` with the enrolment's details."""
    person = visible_person(session, by=by, person_id=person_id)
    uid = uid.upper()
    if valid_from and valid_to and valid_to <= valid_from:
        raise InvalidRequest("valid_to must be after valid_from")
    if session.scalar(select(Card.id).where(Card.uid == uid)):
        raise Conflict(f"card {uid} is already on record (lost and revoked cards stay)")
    card = Card(uid=uid, person=person, kind=kind, valid_from=valid_from, valid_to=valid_to)
    session.add(card)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type=event,
            actors=by.actors(),
            payload={
                "card": str(card.id),
                "uid": uid,
                "person": str(person.id),
                "kind": kind.value,
                **(extra or {}),
            },
        ),
    )
    return card


def _set_status(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    card_id: uuid.UUID,
    status: CardStatus,
    allowed_from: frozenset[CardStatus],
    event: str,
    note: str | None,
) -> Card:
    card = _visible_card(session, by, card_id)
    if card.status not in allowed_from:
        raise Conflict(f"card {card.uid} is {card.status.value}; cannot mark it {status.value}")
    card.status = status
    tx.log(
        session,
        audit,
        NewEvent(
            type=event,
            actors=by.actors(),
            payload={
                "card": str(card.id),
                "uid": card.uid,
                "person": str(card.person_id),
                "note": note,
            },
        ),
    )
    return card


def report_lost(
    session: Session, audit: AuditLog, *, by: Principal, card_id: uuid.UUID, note: str | None
) -> Card:
    """Mark an active card lost: the cabinet refuses it from its next tap on."""
    return _set_status(
        session,
        audit,
        by=by,
        card_id=card_id,
        status=CardStatus.LOST,
        allowed_from=frozenset({CardStatus.ACTIVE}),
        event="card.reported_lost",
        note=note,
    )


def revoke(
    session: Session, audit: AuditLog, *, by: Principal, card_id: uuid.UUID, note: str | None
) -> Card:
    """Withdraw a card for good (it may have been lost first)."""
    return _set_status(
        session,
        audit,
        by=by,
        card_id=card_id,
        status=CardStatus.REVOKED,
        allowed_from=frozenset({CardStatus.ACTIVE, CardStatus.LOST}),
        event="card.revoked",
        note=note,
    )


class TapRefusal(enum.StrEnum):
    UNKNOWN = "unknown_card"
    LOST = "card_lost"
    REVOKED = "card_revoked"
    NOT_YET_VALID = "card_not_yet_valid"
    EXPIRED = "card_expired"
    PERSON_INACTIVE = "person_inactive"


@dataclass(frozen=True)
class TapCheck:
    """Whether a tapped card may start a session at the cabinet, and if not, why."""

    card: Card | None
    refusal: TapRefusal | None

    @property
    def accepted(self) -> bool:
        return self.refusal is None


def check_tap(session: Session, *, uid: str, at: dt.datetime | None = None) -> TapCheck:
    """The card half of a tap decision (the cabinet's policy adds keys, hours and rules)."""
    at = at or utcnow()
    card = session.scalars(select(Card).where(Card.uid == uid.upper())).one_or_none()
    if card is None:
        return TapCheck(None, TapRefusal.UNKNOWN)
    if card.status == CardStatus.LOST:
        return TapCheck(card, TapRefusal.LOST)
    if card.status == CardStatus.REVOKED:
        return TapCheck(card, TapRefusal.REVOKED)
    if card.valid_from is not None and at < card.valid_from:
        return TapCheck(card, TapRefusal.NOT_YET_VALID)
    if card.valid_to is not None and at >= card.valid_to:
        return TapCheck(card, TapRefusal.EXPIRED)
    if not card.person.active:
        return TapCheck(card, TapRefusal.PERSON_INACTIVE)
    return TapCheck(card, None)
