"""PIN and duress at the cabinet (issue 14, item 8; README "PIN and duress").

The whole cabinet on simulated hardware, real SQLite, real argon2 hashes. The PIN is the
second factor of K3's borrower confirmation (the badge is the first), so refusals cite K3;
the duress PIN fits no rule of the company's (docs/rules.md, notes) and its alarm carries
F1 only (an owner from ``[alarms]``)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rig import FRI_10AM, Rig, close_rig, make_rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.kiosk.app import create_kiosk_app
from kiosk.cabinet import Cabinet, CabinetError, calendar_from, options_from
from kiosk.notify.dispatcher import Dispatcher
from kiosk.services import pins, tx
from kiosk.services.authz import ROLE_PERMISSIONS, Principal
from kiosk.store.models import Alarm, Person, Role
from kiosk.store.models_auth import AccountRole, TokenKind
from kiosk.store.models_notify import NotificationDelivery

PIN, DURESS = "2580", "1470"
PIN_SETTINGS = {"key_groups": ["MASTER"], "roles": ["dept_leader"], "after_hours": True}


def borrower(rig: Rig) -> tuple[str, Person]:
    """A customer-service clerk: draws master keys (a custodian co-signs them, K3)."""
    return rig.card_of(role=Role.STAFF, dept="CS", exclude_roles=(
        Role.CUSTODIAN, Role.SUPERVISOR, Role.DUTY_MANAGER, Role.DEPT_LEADER))


def give_pin(rig: Rig, person_id: uuid.UUID, uid: str, pin: str = PIN,
             duress: str | None = DURESS) -> None:
    with tx.write(rig.runtime.audit) as s:
        pins.set_pin(s, rig.runtime.audit, person_id=person_id, card_uid=uid, pin=pin,
                     duress=duress, now=rig.clock(), changed=False)


def custodian_desk() -> Principal:
    return Principal(account_id=uuid.uuid4(), username="desk", role=AccountRole.CUSTODIAN,
                     person_id=None, department_id=None,
                     permissions=ROLE_PERMISSIONS[AccountRole.CUSTODIAN],
                     token_id=uuid.uuid4(), token_kind=TokenKind.ACCESS)


@pytest.fixture
async def pin_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path, pin=PIN_SETTINGS)
    yield r
    await close_rig(r)


def payloads(rig: Rig, type_: str) -> list[dict[str, object]]:
    return [json.loads(e.payload) for e in rig.events(type_)]


async def choose_master(rig: Rig, uid: str) -> None:
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["M-01"], "repair")


async def test_a_master_key_waits_for_the_pin_then_opens(pin_rig: Rig) -> None:
    rig = pin_rig
    uid, person = borrower(rig)
    give_pin(rig, person.id, uid)
    await choose_master(rig, uid)
    screen = rig.cabinet.screen()
    assert screen["state"] == "choosing" and screen["pin"]["asked"] is True
    assert not rig.events("draw.intent")  # nothing opens before the PIN
    await rig.cabinet.enter_pin(PIN)
    assert rig.cabinet.screen()["state"] == "await_cosign"  # then the K3 co-sign as before
    custodian, _ = rig.card_of(role=Role.CUSTODIAN)
    await rig.cabinet.tap(custodian)
    assert rig.cabinet.session.state.value == "releasing"
    intent = payloads(rig, "draw.intent")[-1]
    assert intent["second_factor"] == "pin"


async def test_a_unit_key_by_day_asks_nothing(pin_rig: Rig) -> None:
    rig = pin_rig
    uid, _ = borrower(rig)
    unit = rig.first_key("UNIT")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw([unit], "repair")
    assert rig.cabinet.session.state.value == "releasing"
    assert "second_factor" not in payloads(rig, "draw.intent")[-1]


async def test_a_role_asks_for_the_pin_on_any_key(pin_rig: Rig) -> None:
    rig = pin_rig
    uid, person = rig.card_of(role=Role.DEPT_LEADER)
    give_pin(rig, person.id, uid)
    keys = [k for k in (await _drawable(rig, uid)) if k.startswith("U")]
    await rig.cabinet.choose_draw(keys[:1], "repair")
    assert rig.cabinet.screen()["pin"]["asked"] is True


async def _drawable(rig: Rig, uid: str) -> list[str]:
    await rig.cabinet.tap(uid)
    return [k["key_number"] for k in rig.cabinet.screen()["keys"] if k["status"] == "ok"]


async def test_no_pin_yet_refuses_and_says_to_ask_a_custodian(pin_rig: Rig) -> None:
    rig = pin_rig
    uid, _ = borrower(rig)
    with pytest.raises(CabinetError) as refused:
        await choose_master(rig, uid)
    assert refused.value.code == "pin_not_set"
    denied = rig.events("access.denied")[-1]
    assert "K3" in json.loads(denied.rules) and json.loads(denied.payload)["cause"] == "no_pin"
    assert rig.cabinet.message is not None and rig.cabinet.message.code == "pin_not_set"


async def test_five_wrong_pins_lock_the_card_for_15_minutes_across_a_restart(
        pin_rig: Rig) -> None:
    rig = pin_rig
    uid, person = borrower(rig)
    give_pin(rig, person.id, uid)
    await choose_master(rig, uid)
    for left in (4, 3, 2, 1):
        with pytest.raises(CabinetError) as wrong:
            await rig.cabinet.enter_pin("9999")
        assert wrong.value.code == "pin_wrong" and f"{left} tries left" in str(wrong.value)
    with pytest.raises(CabinetError) as fifth:
        await rig.cabinet.enter_pin("9999")
    assert fifth.value.code == "pin_locked"
    locked = rig.events("pin.locked")
    assert len(locked) == 1 and json.loads(locked[0].rules) == ["K3"]
    event = json.loads(locked[0].payload)
    assert event["cause"] == "too_many_wrong_pins" and event["card"] == uid
    assert event["rule"] == "[pin] max_tries = 5"
    assert dt.datetime.fromisoformat(event["locked_until"]) == rig.clock() + dt.timedelta(
        minutes=15)
    assert [json.loads(e.payload)["cause"] for e in rig.events("access.denied")[-5:]] == [
        "pin_wrong"] * 4 + ["too_many_wrong_pins"]

    # the daemon restarts: the lock holds, even the right PIN is not asked for
    await rig.cabinet.stop()
    rig.cabinet = Cabinet(rig.runtime, rig.hw.bank, calendar=calendar_from(rig.runtime.settings),
                          options=options_from(rig.runtime.settings), clock=rig.clock,
                          door_is_open=lambda: rig.hw.door_sensor.is_open)
    await rig.cabinet.start()
    rig.clock.advance(14 * 60)
    with pytest.raises(CabinetError) as still:
        await choose_master(rig, uid)
    assert still.value.code == "pin_locked"
    await rig.cabinet.cancel()
    rig.clock.advance(61)  # 15 minutes and a second after the lock
    await choose_master(rig, uid)
    await rig.cabinet.enter_pin(PIN)
    assert rig.cabinet.session.state.value == "await_cosign"


async def test_a_right_pin_clears_the_count(pin_rig: Rig) -> None:
    rig = pin_rig
    uid, person = borrower(rig)
    give_pin(rig, person.id, uid)
    await choose_master(rig, uid)
    for _ in range(4):
        with pytest.raises(CabinetError):
            await rig.cabinet.enter_pin("9999")
    await rig.cabinet.enter_pin(PIN)
    with Session(rig.runtime.engine) as s:
        assert pins.failures(s, card_uid=uid) == 0


async def test_set_after_a_reset_then_change_with_the_old_pin(pin_rig: Rig) -> None:
    rig = pin_rig
    uid, person = borrower(rig)
    await rig.cabinet.tap(uid)
    with pytest.raises(CabinetError) as refused:  # no PIN, no reset: a custodian first
        await rig.cabinet.change_pin(None, PIN, None)
    assert refused.value.code == "pin_not_set"
    with tx.write(rig.runtime.audit) as s:
        pins.reset(s, rig.runtime.audit, by=custodian_desk(), person_id=person.id,
                   window=dt.timedelta(minutes=30), now=rig.clock())
    assert rig.cabinet.screen()["pin"] == {"asked": False, "has_pin": False, "may_set": True}
    await rig.cabinet.change_pin(None, PIN, DURESS)
    assert rig.events("pin.set") and rig.cabinet.message is not None
    assert rig.cabinet.message.code == "pin_set"
    assert rig.cabinet.screen()["pin"]["has_pin"] is True
    with pytest.raises(CabinetError) as wrong:
        await rig.cabinet.change_pin("0852", "3691", None)
    assert wrong.value.code == "pin_old_wrong"
    with pytest.raises(CabinetError) as simple:
        await rig.cabinet.change_pin(PIN, "1111", None)
    assert simple.value.code == "pin_too_simple"
    await rig.cabinet.change_pin(PIN, "3691", "3692")
    changed = json.loads(rig.events("pin.changed")[-1].payload)
    assert changed == {"card": uid, "duress_pin": True, "at": "cabinet"}
    assert PIN not in rig.events("pin.")[-1].payload  # no PIN in the log, only the fact
    with Session(rig.runtime.engine) as s:
        assert pins.check(s, person_id=person.id, pin="3691") == "pin"
        assert pins.check(s, person_id=person.id, pin="3692") == "duress"
        assert pins.check(s, person_id=person.id, pin=PIN) == "wrong"


async def test_the_set_window_closes(pin_rig: Rig) -> None:
    rig = pin_rig
    uid, person = borrower(rig)
    with tx.write(rig.runtime.audit) as s:
        pins.reset(s, rig.runtime.audit, by=custodian_desk(), person_id=person.id,
                   window=dt.timedelta(minutes=30), now=rig.clock())
    rig.clock.advance(31 * 60)
    await rig.cabinet.tap(uid)
    with pytest.raises(CabinetError) as late:
        await rig.cabinet.change_pin(None, PIN, None)
    assert late.value.code == "pin_not_set"


# --------------------------------------------------------------------------- duress
async def _open_master(tmp: Path, pin: str) -> tuple[Rig, list[dict[str, Any]]]:
    """A fresh cabinet at the same moment; the page's requests for one master-key draw with
    ``pin`` through the kiosk app; returns the rig and every answer body the page got."""
    rig = await make_rig(tmp, start=FRI_10AM, pin=PIN_SETTINGS)
    uid, person = borrower(rig)
    give_pin(rig, person.id, uid)
    app = create_kiosk_app(rig.cabinet)
    transport = httpx.ASGITransport(app=app)
    bodies = []
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as page:
        await rig.cabinet.tap(uid)
        for path, body in (("screen", None), ("draw", {"keys": ["M-01"], "reason_code": "repair"}),
                           ("pin", {"pin": pin})):
            r = await (page.get(f"/kiosk/api/{path}") if body is None
                       else page.post(f"/kiosk/api/{path}", json=body))
            assert r.status_code == 200, r.text
            bodies.append(r.json())
        custodian, _ = rig.card_of(role=Role.CUSTODIAN)
        await rig.cabinet.tap(custodian)
        bodies.append((await page.get("/kiosk/api/screen")).json())
        await rig.take(rig.key("M-01")[0])
        bodies.append((await page.get("/kiosk/api/screen")).json())
    return rig, bodies


async def test_duress_opens_exactly_as_normal_and_alarms_the_supervisor_silently(
        tmp_path: Path) -> None:
    normal_rig, normal = await _open_master(tmp_path / "normal", PIN)
    duress_rig, duress = await _open_master(tmp_path / "duress", DURESS)
    try:
        # every answer the page received, byte for byte the same (version, state, slot,
        # message, alarms banner included)
        assert duress == normal
        assert normal[2]["state"] == "await_cosign" and normal[-1]["state"] == "idle"
        assert normal[-1]["message"]["code"] == "drawn"
        # the same events at the cabinet, but for the one alarm
        kinds = [e.type for e in normal_rig.events()]
        assert [t for t in (e.type for e in duress_rig.events()) if t != "alarm.duress"] == kinds
        assert not normal_rig.events("alarm.")
        (raised,) = duress_rig.events("alarm.duress")
        with Session(duress_rig.runtime.engine) as s:
            alarm = s.scalars(select(Alarm).where(Alarm.kind == "duress")).one()
            owner = alarm.owner_id
            assert alarm.state.value == "open"
        _, supervisor = duress_rig.card_of(role=Role.SUPERVISOR)
        assert owner == supervisor.id  # [alarms]: the supervisor owns it from the start (F1)
        payload = json.loads(raised.payload)
        assert payload["keys"] == ["M-01"] and payload["opened"] is True
        assert payload["during"] == "draw"
        # the loan is an ordinary loan
        assert len(duress_rig.open_loans()) == len(normal_rig.open_loans()) == 1
        assert [e.key_number for e in duress_rig.events("key.drawn")] == ["M-01"]
    finally:
        await close_rig(normal_rig)
        await close_rig(duress_rig)


async def test_duress_as_the_current_pin_changes_it_and_alarms(pin_rig: Rig) -> None:
    """Forced to change the PIN: the duress PIN works as the current one, silently."""
    rig = pin_rig
    uid, person = borrower(rig)
    give_pin(rig, person.id, uid)
    await rig.cabinet.tap(uid)
    await rig.cabinet.change_pin(DURESS, "3691", None)
    assert rig.cabinet.message is not None and rig.cabinet.message.code == "pin_changed"
    (raised,) = rig.events("alarm.duress")
    assert json.loads(raised.payload)["during"] == "change"
    assert rig.cabinet.screen()["alarms"] == []


async def test_a_locked_card_is_refused_before_any_pin_is_asked(pin_rig: Rig) -> None:
    """The lock reads the same to everyone: refused before the pad, with when it ends."""
    rig = pin_rig
    uid, person = borrower(rig)
    give_pin(rig, person.id, uid)
    await choose_master(rig, uid)
    for _ in range(5):
        with pytest.raises(CabinetError):
            await rig.cabinet.enter_pin("9999")
    await rig.cabinet.cancel()
    rig.clock.advance(60)
    refusals = []
    for _ in range(2):
        await rig.cabinet.tap(uid)
        with pytest.raises(CabinetError) as refused:
            await rig.cabinet.choose_draw(["M-01"], "repair")
        refusals.append((refused.value.code, str(refused.value)))
        await rig.cabinet.cancel()
    assert refusals[0] == refusals[1] and refusals[0][0] == "pin_locked"
    assert "locked until" in refusals[0][1]
    assert not rig.events("alarm.duress")


async def test_the_duress_alarm_is_queued_for_the_supervisors_route_at_once(
        tmp_path: Path) -> None:
    """A route for ``alarm.duress`` (or ``alarm.*``) gets the alarm at the next routing pass;
    nothing is queued for a normal opening."""
    rig = await make_rig(tmp_path, pin=PIN_SETTINGS, notifications={
        "webhooks": {"supervisor": {"url": "http://127.0.0.1:9/duress", "secret": "s" * 16}},
        "routes": [{"events": ["alarm.duress"], "webhooks": ["supervisor"]}]})
    try:
        uid, person = borrower(rig)
        give_pin(rig, person.id, uid)
        dispatcher = Dispatcher(rig.runtime, clock=rig.clock)
        await choose_master(rig, uid)
        await rig.cabinet.enter_pin(PIN)
        await rig.cabinet.cancel()
        assert dispatcher.route() == 0
        await choose_master(rig, uid)
        await rig.cabinet.enter_pin(DURESS)
        assert dispatcher.route() == 1
        with Session(rig.runtime.engine) as s:
            (delivery,) = s.scalars(select(NotificationDelivery))
            assert (delivery.event_type, delivery.target) == ("alarm.duress", "supervisor")
    finally:
        await close_rig(rig)


async def test_after_hours_every_draw_asks_for_the_pin_after_the_duty_manager(
        tmp_path: Path) -> None:
    """K8 first (two people), then the PIN of the employee, then the slot."""
    night = FRI_10AM.replace(hour=23)
    rig = await make_rig(tmp_path, start=night, pin={"after_hours": True})
    try:
        uid, person = rig.card_of(role=Role.STAFF, dept="ENG")
        give_pin(rig, person.id, uid)
        manager, _ = rig.duty_manager_on(rig.clock())
        unit = rig.first_key("UNIT")
        await rig.cabinet.tap(uid)
        await rig.cabinet.tap(manager)
        await rig.cabinet.choose_draw([unit], "emergency")
        assert rig.cabinet.screen()["pin"]["asked"] is True
        await rig.cabinet.enter_pin(PIN)
        assert rig.cabinet.session.state.value == "releasing"
        intent = payloads(rig, "draw.intent")[-1]
        assert intent["second_factor"] == "pin" and intent["duty_manager"] is not None
    finally:
        await close_rig(rig)
