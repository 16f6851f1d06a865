"""The cabinet core and its flows (issue 14, items 0, 9, 10, 11): flows registered on the
core, every K8 refusal logged, every alarm owned from the moment it is raised (F1), and a
return finished at start-up by someone other than the borrower flagged like a live one (K5)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rig import SH, Rig, close_rig, make_rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.cabinet import Cabinet, calendar_from, options_from
from kiosk.cabinet.flows import DrawFlow, NightPairing
from kiosk.services import alarms as alarm_service
from kiosk.services import tx
from kiosk.store.models import Alarm, Loan, Person, Role
from kiosk.store.models_auth import Account, AccountRole

FRI_11PM = dt.datetime(2026, 11, 27, 23, 0, tzinfo=SH)


@pytest.fixture
async def night(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path, start=FRI_11PM)
    yield r
    await close_rig(r)


def _alarms(rig: Rig, kind: str | None = None) -> list[Alarm]:
    with Session(rig.runtime.engine) as s:
        query = select(Alarm).order_by(Alarm.raised_at)
        if kind is not None:
            query = query.where(Alarm.kind == kind)
        return list(s.scalars(query))


def _holders(rig: Rig, role: Role) -> list[Person]:
    with Session(rig.runtime.engine) as s:
        people = s.scalars(select(Person).order_by(Person.staff_no)).all()
        return [p for p in people if p.has_role(role) and p.active]


# ------------------------------------------------------------------- the core, item 0
async def test_every_flow_is_registered_on_the_core_and_found_by_name(rig: Rig) -> None:
    core = rig.cabinet
    assert set(core.flow_names()) == {
        "sensors", "draw", "return", "intake", "handover", "night", "remote", "enrolment", "pin",
        "stock"}
    assert isinstance(core.lookup("draw", DrawFlow), DrawFlow)
    with pytest.raises(TypeError):
        core.lookup("draw", NightPairing)
    with pytest.raises(ValueError, match="already registered"):
        DrawFlow(core)  # one flow per name: a second draw flow cannot shadow the first


# ------------------------------------------------------------------------- K8, item 9
async def test_K8_window_running_out_is_an_access_denied_event(night: Rig) -> None:
    uid, person = night.card_of(dept="ENG")
    await night.cabinet.tap(uid)
    night.clock.advance(61)
    await night.settle()
    assert night.cabinet.screen()["state"] == "idle"
    denied = night.events("access.denied")
    assert len(denied) == 1
    payload = json.loads(denied[0].payload)
    assert json.loads(denied[0].rules) == ["K8"]
    assert payload["code"] == "manager_timeout" and payload["cause"] == "window_ran_out"
    assert payload["card"] == uid and str(person.id) in denied[0].actors
    assert night.cabinet.screen()["message"]["code"] == "manager_timeout"


async def test_K8_manager_tapping_after_the_window_closed_is_refused_not_signed_in(
    night: Rig,
) -> None:
    uid, person = night.card_of(dept="ENG")
    mgr_uid, manager = night.duty_manager_on(night.clock())
    await night.cabinet.tap(uid)
    night.clock.advance(61)
    await night.settle()  # the window ran out: the visit ended
    night.clock.advance(5)
    await night.cabinet.tap(mgr_uid)  # the manager arrives, a little late
    screen = night.cabinet.screen()
    assert screen["state"] == "idle", "the late manager does not start a visit of their own"
    assert screen["message"]["code"] == "second_tap_too_late"
    late = night.events("access.denied")[-1]
    payload = json.loads(late.payload)
    assert json.loads(late.rules) == ["K8"]
    assert payload["code"] == "second_tap_too_late" and payload["cause"] == "window_closed"
    assert str(manager.id) in late.actors and str(person.id) in late.actors
    # A deliberate second tap is the manager's own visit, as any other tap would be.
    await night.cabinet.tap(mgr_uid)
    assert night.cabinet.screen()["state"] == "await_manager"


async def test_K8_a_tap_long_after_a_lapsed_wait_starts_a_visit_as_usual(night: Rig) -> None:
    uid, _ = night.card_of(dept="ENG")
    mgr_uid, _ = night.duty_manager_on(night.clock())
    await night.cabinet.tap(uid)
    night.clock.advance(61)
    await night.settle()
    night.clock.advance(600)
    await night.cabinet.tap(mgr_uid)
    assert night.cabinet.screen()["state"] == "await_manager"
    assert len(night.events("access.denied")) == 1  # only the window running out


# ------------------------------------------------------------------------ F1, item 10
async def test_F1_alarms_are_owned_from_the_moment_they_are_raised(rig: Rig) -> None:
    supervisor = _holders(rig, Role.SUPERVISOR)[0]
    custodian = _holders(rig, Role.CUSTODIAN)[0]
    rig.hw.door(True)  # forced: the supervisor's, by default
    await rig.settle()
    rig.hw.door(False)
    await rig.settle()
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("P-A梯-B4")  # due back in 120 minutes
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["P-A梯-B4"], "patrol")
    await rig.take(slot)
    rig.clock.advance(121 * 60)
    await rig.settle()  # overdue: the custodian's, by default
    [forced] = _alarms(rig, "door_forced")
    [overdue] = _alarms(rig, "key_overdue")
    assert forced.owner_id == supervisor.id
    assert overdue.owner_id == custodian.id
    raised = [json.loads(e.payload) for e in rig.events("alarm.door_forced")]
    assert raised[0]["owner"] == str(supervisor.id) and raised[0]["owner_name"] == supervisor.name


async def test_F1_alarm_owner_per_kind_from_the_settings(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, start=FRI_11PM, alarms={
        "owners": {"door_forced": "duty_manager", "slot_left_open": "night-desk"},
        "default_owner": "custodian"})
    try:
        _, manager = rig.duty_manager_on(rig.clock())
        custodian = _holders(rig, Role.CUSTODIAN)[0]
        supervisor = _holders(rig, Role.SUPERVISOR)[0]
        with Session(rig.runtime.engine) as s:  # an account names its linked person
            desk = _holders(rig, Role.STAFF)[7]
            s.add(Account(username="night-desk", password_hash="x", role=AccountRole.CUSTODIAN,
                          person_id=desk.id))
            s.commit()
        rig.hw.door(True)
        await rig.settle()
        rig.hw.door(False)
        rig.hw.model.unlock(5, 3600)  # a slot left open, no session
        await rig.settle()
        rig.clock.advance(31)
        await rig.settle()
        rig.hw.model.take(7, force=True)  # not set by the site: the built-in owner
        await rig.settle()
        with tx.write(rig.runtime.audit) as s:  # a kind nobody listed: the default owner
            alarm_service.raise_alarm(s, rig.runtime.audit, kind="tag_damaged", message="m",
                                      actors=[], owners=rig.cabinet.alarm_owners)
        assert _alarms(rig, "door_forced")[0].owner_id == manager.id  # the rostered one
        assert _alarms(rig, "slot_left_open")[0].owner_id == desk.id
        assert _alarms(rig, "key_removed_unauthorised")[0].owner_id == supervisor.id
        assert _alarms(rig, "tag_damaged")[0].owner_id == custodian.id
    finally:
        await close_rig(rig)


# ------------------------------------------------------------------------- K5, item 11
async def test_K5_return_finished_at_startup_by_someone_else_raises_the_alarm(
    tmp_path: Path,
) -> None:
    rig = await make_rig(tmp_path)
    borrower_uid, borrower = rig.card_of(dept="ENG", index=0)
    other_uid, other = rig.card_of(dept="ENG", index=1)
    slot, fob = await rig.drawn(borrower_uid, "U1203")
    await rig.cabinet.tap(fob)  # the key's fob, then someone else's badge (K4)
    await rig.cabinet.tap(other_uid)
    assert rig.cabinet.screen()["state"] == "returning"
    # The power fails after the return intent and the unlock: the key goes back in while
    # the daemon is down, and only the next start sees it.
    rig.hw.power(False)
    rig.hw.insert(fob, slot)
    rig.hw.power(True)
    cabinet = Cabinet(rig.runtime, rig.hw.locks, calendar=calendar_from(rig.runtime.settings),
                      options=options_from(rig.runtime.settings), clock=rig.clock)
    summary = await cabinet.start()
    rig.cabinet = cabinet
    try:
        assert summary["resolved_returns"] == 1
        with Session(rig.runtime.engine) as s:
            loan = s.scalars(select(Loan)).one()
            assert loan.returned_at is not None and loan.returned_by_id == other.id
            assert loan.returned_by_other and loan.borrower_id == borrower.id
        [alarm] = _alarms(rig, "returned_by_other")
        assert alarm.rule == "K5" and alarm.loan_id == loan.id and alarm.owner_id is not None
        [resolved] = rig.events("return.resolved")
        payload = json.loads(resolved.payload)
        assert payload["outcome"] == "returned" and payload["returned_by_other"] is True
        assert "K5" in json.loads(resolved.rules)
    finally:
        await close_rig(rig)


async def test_K4_return_finished_at_startup_by_the_borrower_raises_nothing(
    tmp_path: Path,
) -> None:
    rig = await make_rig(tmp_path)
    uid, person = rig.card_of(dept="ENG")
    slot, fob = await rig.drawn(uid, "U1203")
    await rig.cabinet.tap(fob)
    await rig.cabinet.tap(uid)
    rig.hw.power(False)
    rig.hw.insert(fob, slot)
    rig.hw.power(True)
    cabinet = Cabinet(rig.runtime, rig.hw.locks, calendar=calendar_from(rig.runtime.settings),
                      options=options_from(rig.runtime.settings), clock=rig.clock)
    await cabinet.start()
    rig.cabinet = cabinet
    try:
        with Session(rig.runtime.engine) as s:
            loan = s.scalars(select(Loan)).one()
            assert loan.returned_by_id == person.id and not loan.returned_by_other
        assert _alarms(rig, "returned_by_other") == []
    finally:
        await close_rig(rig)


# ------------------------------------------------------------------------ K8, item 5
async def test_K8_screen_says_after_hours_and_names_the_rostered_manager(night: Rig) -> None:
    _, manager = night.duty_manager_on(night.clock())
    idle = night.cabinet.screen()
    assert idle["after_hours"] is True
    assert idle["duty_manager"] == {"name": manager.name, "phone": manager.phone}
    uid, _ = night.card_of(dept="ENG")
    await night.cabinet.tap(uid)
    waiting = night.cabinet.screen()
    assert waiting["state"] == "await_manager"
    assert waiting["duty_manager"]["name"] == manager.name


async def test_screen_in_business_hours_is_not_after_hours(rig: Rig) -> None:
    screen = rig.cabinet.screen()
    assert screen["after_hours"] is False and screen["duty_manager"] is None


# ------------------------------------------------------------------------- item 3
async def test_K3_after_a_draw_the_screen_names_the_key_the_slot_and_when_it_is_due(
    rig: Rig,
) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = await rig.drawn(uid, "P-A梯-B4")  # a public-area key: due in 120 minutes
    message = rig.cabinet.screen()["message"]
    assert message["code"] == "drawn"
    assert "P-A梯-B4" in message["detail_zh"] and f"格口 {slot}" in message["detail_zh"]
    assert "今天 12:00 前归还" in message["detail_zh"]  # drawn 10:00, back by 12:00
    assert message["detail_en"] == f"P-A梯-B4 from slot {slot}: due back today 12:00"


async def test_K5_a_return_by_someone_else_says_so_instead_of_thank_you(rig: Rig) -> None:
    borrower_uid, _ = rig.card_of(dept="ENG", index=0)
    other_uid, _ = rig.card_of(dept="ENG", index=1)
    slot, fob = await rig.drawn(borrower_uid, "U1203")
    await rig.cabinet.tap(fob)
    await rig.cabinet.tap(other_uid)
    await rig.put_back(fob, slot)
    message = rig.cabinet.screen()["message"]
    assert message["code"] == "returned_by_other" and "K5" in message["en"]
    assert f"已放回格口 {slot}" in message["detail_zh"]


async def test_K5_a_return_without_a_badge_says_it_was_flagged(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, fob = await rig.drawn(uid, "U1203")
    await rig.cabinet.tap(fob)
    await rig.cabinet.return_without_badge()
    await rig.put_back(fob, slot)
    assert rig.cabinet.screen()["message"]["code"] == "returned_unidentified"


async def test_K4_a_return_by_the_borrower_is_thanked(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, fob = await rig.drawn(uid, "U1203")
    await rig.cabinet.tap(fob)
    await rig.cabinet.tap(uid)
    await rig.put_back(fob, slot)
    assert rig.cabinet.screen()["message"]["code"] == "returned"


async def test_cancel_with_a_compartment_open_asks_to_shut_it(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    await rig.settle()
    assert rig.hw.model.is_unlocked(slot)  # the compartment sprang open
    await rig.cabinet.cancel()
    message = rig.cabinet.screen()["message"]
    assert message["code"] == "close_slot" and message["level"] == "error"
    assert message["detail_zh"] == f"请关好格口 {slot}"
    assert message["detail_en"] == f"Please shut slot {slot}"


async def test_cancel_with_every_compartment_shut_just_says_cancelled(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    await rig.cabinet.cancel()  # nothing was opened
    assert rig.cabinet.screen()["message"]["code"] == "cancelled"


async def test_K9_overdue_keys_are_marked_under_my_keys(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    await rig.drawn(uid, "P-A梯-B4")  # due in 120 minutes
    await rig.drawn(uid, "U1203")  # due at the end of the business day
    rig.clock.advance(121 * 60)
    await rig.cabinet.tap(uid)
    mine = {loan["key_number"]: loan["overdue"] for loan in rig.cabinet.screen()["my_loans"]}
    assert mine == {"P-A梯-B4": True, "U1203": False}


def test_F1_an_alarm_owner_setting_cannot_name_a_step_as_a_kind(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from kiosk.config import Settings

    with pytest.raises(ValidationError, match="step in an alarm's life"):
        Settings(data_dir=tmp_path, alarms={"owners": {"closed": "supervisor"}})  # type: ignore[arg-type]
