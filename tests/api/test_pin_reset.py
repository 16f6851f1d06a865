"""Resetting a cabinet PIN over the REST API (issue 14, item 8; README "PIN and duress").

A custodian (who enrols badges) resets it: the PIN, the duress PIN and any lock wrong PINs
put on the person's cards are gone, and the person may set a new PIN at the cabinet with
their badge until ``may_set_until`` (``[pin] set_window_min``)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from kiosk.services import pins, tx
from kiosk.store.models import Card, Event
from kiosk.store.models_auth import AccountRole
from kiosk.store.models_pin import PinLockout
from kiosk.store.types import utcnow
from tests.api.conftest import World

V1 = "/api/v1"


def test_a_custodian_resets_a_pin_and_the_lock(world: World) -> None:
    person = world.person("PIN1", dept="A")
    world.add(Card(uid="0A0B0C0D", person_id=person))
    with tx.write(world.audit) as s:
        pins.set_pin(s, world.audit, person_id=person, card_uid="0A0B0C0D", pin="2580",
                     duress="1470", now=utcnow(), changed=False)
        s.add(PinLockout(card_uid="0A0B0C0D", failures=0,
                         locked_until=utcnow() + dt.timedelta(minutes=10)))
    before = utcnow()
    r = world.client.post(f"{V1}/people/{person}/pin/reset",
                          headers=world.token(AccountRole.CUSTODIAN))
    assert r.status_code == 200, r.text
    until = dt.datetime.fromisoformat(r.json()["may_set_until"])
    assert before + dt.timedelta(minutes=30) <= until <= utcnow() + dt.timedelta(minutes=30)
    with tx.read(world.audit) as s:
        assert pins.check(s, person_id=person, pin="2580") == "none"
        assert pins.status(s, person_id=person, now=utcnow()) == pins.PinStatus(False, True)
        assert pins.locked_until(s, card_uid="0A0B0C0D", now=utcnow()) is None
        event = s.scalars(select(Event).where(Event.type == "pin.reset")).one()
        assert json.loads(event.payload)["person"] == str(person)
        assert "2580" not in event.payload


def test_a_supervisor_may_not_and_an_unknown_person_is_404(world: World) -> None:
    person = world.person("PIN2", dept="A")
    refused = world.client.post(f"{V1}/people/{person}/pin/reset",
                                headers=world.token(AccountRole.SUPERVISOR))
    assert refused.status_code == 403
    missing = world.client.post(f"{V1}/people/00000000-0000-4000-8000-000000000000/pin/reset",
                                headers=world.token(AccountRole.CUSTODIAN))
    assert missing.status_code == 404
