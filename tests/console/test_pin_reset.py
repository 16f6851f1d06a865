"""The console's 重置 PIN button on a person's page (issue 14, item 8; README "PIN and
duress"): shown to those who may reset a PIN (custodians, administrators), and it does what
``POST /api/v1/people/{id}/pin/reset`` does."""

from __future__ import annotations

import datetime as dt

from kiosk.services import pins, tx
from kiosk.store.models_auth import AccountRole
from kiosk.store.types import utcnow
from tests.api.conftest import World
from tests.console.conftest import console_user


def test_a_custodian_resets_a_pin_from_the_persons_page(world: World) -> None:
    person = world.person("PINC1", dept="A")
    with tx.write(world.audit) as s:
        pins.set_pin(s, world.audit, person_id=person, card_uid="0C0C0C0C", pin="2580",
                     duress=None, now=utcnow(), changed=False)
    custodian = console_user(world, AccountRole.CUSTODIAN)
    page = custodian.get(f"/console/people/{person}")
    assert page.status_code == 200 and 'id="pin-reset"' in page.text
    done = custodian.post(f"/console/people/{person}/pin/reset")
    assert done.status_code == 303
    with tx.read(world.audit) as s:
        state = pins.status(s, person_id=person, now=utcnow())
        assert state == pins.PinStatus(has_pin=False, may_set=True)
        assert not pins.status(s, person_id=person,
                               now=utcnow() + dt.timedelta(minutes=31)).may_set


def test_a_supervisor_sees_no_reset_button(world: World) -> None:
    person = world.person("PINC2", dept="A")
    supervisor = console_user(world, AccountRole.SUPERVISOR)
    page = supervisor.get(f"/console/people/{person}")
    assert page.status_code == 200 and 'id="pin-reset"' not in page.text
    assert supervisor.post(f"/console/people/{person}/pin/reset").status_code == 403
