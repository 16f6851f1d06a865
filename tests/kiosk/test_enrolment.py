"""Card enrolment by tapping (issue 11) at a whole simulated cabinet.

The console starts an enrolment for a person; the next unknown card tapped at the idle
screen is bound to them (one ``card.enrolled`` event naming the account that started it and
the person); a card already on record is refused and the enrolment keeps waiting; the
deadline ends it with ``card.enrolment_timed_out``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from rig import Rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.cabinet.flows.enrolment import EnrolmentFlow
from kiosk.errors import Conflict
from kiosk.services.authz import ROLE_PERMISSIONS, Principal
from kiosk.store.models import Card, Event, Person, Role
from kiosk.store.models_auth import AccountRole, TokenKind

NEW_UID = "E1A0B0C0"


def _custodian(rig: Rig) -> Principal:
    """The console account that starts the enrolment (a key custodian's)."""
    _, person = rig.card_of(role=Role.CUSTODIAN)
    return Principal(account_id=uuid.uuid4(), username="desk", role=AccountRole.CUSTODIAN,
                     person_id=person.id, department_id=None,
                     permissions=ROLE_PERMISSIONS[AccountRole.CUSTODIAN],
                     token_id=uuid.uuid4(), token_kind=TokenKind.ACCESS)


def _new_person(rig: Rig) -> uuid.UUID:
    with Session(rig.runtime.engine) as s:
        person = Person(staff_no="NEW-001", name="新员工")
        s.add(person)
        s.commit()
        return person.id


def _cards_of(rig: Rig, person_id: uuid.UUID) -> list[str]:
    with Session(rig.runtime.engine) as s:
        return list(s.scalars(select(Card.uid).where(Card.person_id == person_id)))


def _p(event: Event) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(event.payload)
    return payload


def _flow(rig: Rig) -> EnrolmentFlow:
    return rig.cabinet.lookup("enrolment", EnrolmentFlow)


async def test_the_next_unknown_card_is_bound_to_the_chosen_person(rig: Rig) -> None:
    person_id = _new_person(rig)
    by = _custodian(rig)
    enrolment = await _flow(rig).start(person_id, by)

    screen = rig.cabinet.screen()
    assert screen["message"]["zh"] == "登记卡片：请刷新卡"
    assert screen["message"]["en"] == "Enrolling a card: tap the new card"
    assert screen["state"] == "idle"

    await rig.cabinet.tap(NEW_UID.lower())

    assert _cards_of(rig, person_id) == [NEW_UID]
    assert enrolment.state == "enrolled" and enrolment.card_uid == NEW_UID
    [event] = rig.events("card.enrolled")
    assert json.loads(event.actors) == by.actors()  # the account that started it, and its person
    assert _p(event)["person"] == str(person_id)
    assert _p(event)["uid"] == NEW_UID
    assert rig.events("card.issued") == []  # one event for one binding
    assert rig.cabinet.screen()["message"]["code"] == "card_enrolled"
    assert rig.cabinet.session.state.value == "idle"  # no visit was started by the tap

    # the enrolment is over: the same new card now starts a visit as its holder would
    other_uid = "E1A0B0C1"
    await rig.cabinet.tap(other_uid)
    assert _cards_of(rig, person_id) == [NEW_UID]
    assert _p(rig.events("access.denied")[-1])["code"] == "card_unknown"


async def test_a_known_card_is_refused_and_the_enrolment_keeps_waiting(rig: Rig) -> None:
    person_id = _new_person(rig)
    enrolment = await _flow(rig).start(person_id, _custodian(rig))
    known_uid, _holder = rig.card_of(dept="ENG")

    await rig.cabinet.tap(known_uid)

    denied = rig.events("access.denied")[-1]
    assert _p(denied)["code"] == "card_known"
    assert json.loads(denied.rules) == ["K3"]  # one card, one person: the badge identifies (K3)
    assert _p(denied)["card"] == known_uid
    assert rig.cabinet.screen()["message"]["en"] == \
        "This card is already on record: tap a new card"
    assert rig.cabinet.session.state.value == "idle"  # the holder was not signed in
    assert enrolment.state == "waiting" and enrolment.refused == 1
    assert _cards_of(rig, person_id) == []

    # once the refusal has been read, the screen asks for the new card again
    rig.clock.advance(rig.cabinet.options.message_for.total_seconds() + 1)
    await rig.settle(2)
    assert rig.cabinet.screen()["message"]["code"] == "enrolling"

    await rig.cabinet.tap(NEW_UID)
    assert enrolment.state == "enrolled"
    assert _cards_of(rig, person_id) == [NEW_UID]


async def test_the_deadline_ends_the_enrolment_with_an_event(rig: Rig) -> None:
    person_id = _new_person(rig)
    enrolment = await _flow(rig).start(person_id, _custodian(rig))

    rig.clock.advance(61)
    await rig.settle()

    assert enrolment.state == "timed_out"
    [event] = rig.events("card.enrolment_timed_out")
    assert _p(event)["enrolment"] == str(enrolment.id)
    assert rig.cabinet.screen()["message"]["code"] == "enrol_timeout"
    # a new card tapped afterwards is not bound to anybody
    await rig.cabinet.tap(NEW_UID)
    assert _cards_of(rig, person_id) == []


async def test_one_enrolment_waits_at_a_time(rig: Rig) -> None:
    flow = _flow(rig)
    first = await flow.start(_new_person(rig), _custodian(rig))
    _, other = rig.card_of(dept="ENG")
    with pytest.raises(Conflict):
        await flow.start(other.id, _custodian(rig))
    assert flow.current is first
    assert [e.type for e in rig.events("card.enrolment_started")] == ["card.enrolment_started"]
