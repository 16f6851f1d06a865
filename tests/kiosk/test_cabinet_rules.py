"""The rules at the cabinet, end to end: K8 night opening, K6 proxies, K7 approvals, K1
intake, F1 alarms, and the start-up reconciliation after a power cut (K10)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rig import SH, Rig, close_rig, make_rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.cabinet import Cabinet, CabinetError, calendar_from, options_from
from kiosk.store.models import (
    Alarm,
    Approval,
    ApprovalStatus,
    Card,
    IntakeRecord,
    Key,
    OwnerAuthorization,
    Person,
    PhoneConfirmation,
    Role,
)

FRI_11PM = dt.datetime(2026, 11, 27, 23, 0, tzinfo=SH)


@pytest.fixture
async def night(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path, start=FRI_11PM)
    yield r
    await close_rig(r)


# --------------------------------------------------------------------------- K8
async def test_K8_night_opening_with_the_rostered_duty_manager(night: Rig) -> None:
    uid, person = night.card_of(dept="ENG")
    mgr_uid, manager = night.duty_manager_on(night.clock())
    await night.cabinet.tap(uid)
    assert night.cabinet.screen()["state"] == "await_manager"
    night.clock.advance(20)
    await night.cabinet.tap(mgr_uid)
    assert night.cabinet.screen()["state"] == "choosing"
    assert night.cabinet.screen()["manager"] == manager.name
    key_number = night.first_key("UNIT")  # an occupied unit: due at the end of business
    slot, _ = night.key(key_number)
    await night.cabinet.choose_draw([key_number], "emergency")
    await night.take(slot)
    loan = night.open_loans()[0]
    assert (loan.borrower_id, loan.duty_manager_id) == (person.id, manager.id)
    drawn = night.events("key.drawn")[0]
    assert "K8" in drawn.rules and str(manager.id) in drawn.actors and str(person.id) in drawn.actors
    # Drawn at night: due when the office opens on Monday.
    assert loan.due_at == dt.datetime(2026, 11, 30, 8, 30, tzinfo=SH)


async def _second_tap(rig: Rig, first: str, second: str, after_s: float) -> str:
    await rig.cabinet.tap(first)
    rig.clock.advance(after_s)
    await rig.cabinet.tap(second)
    denied = rig.events("access.denied")
    assert rig.cabinet.screen()["state"] == "idle", "nothing opens"
    assert not any(rig.hw.model.is_unlocked(n) for n in rig.hw.model.slots)
    assert denied and "K8" in denied[-1].rules
    return str(denied[-1].payload)


async def test_K8_one_person_alone_is_refused_when_the_window_runs_out(night: Rig) -> None:
    uid, _ = night.card_of(dept="ENG")
    await night.cabinet.tap(uid)
    night.clock.advance(61)
    await night.settle()
    assert night.cabinet.screen()["state"] == "idle"
    assert [e.type for e in night.events("draw.")] == []


async def test_K8_the_same_person_twice_is_refused(night: Rig) -> None:
    uid, _ = night.card_of(dept="ENG")
    assert "same_person_twice" in await _second_tap(night, uid, uid, 5)


async def test_K8_second_badge_too_late_is_refused(night: Rig) -> None:
    uid, _ = night.card_of(dept="ENG")
    mgr_uid, _ = night.duty_manager_on(night.clock())
    night.cabinet.session.timeouts = night.cabinet.session.timeouts.__class__(
        manager=dt.timedelta(seconds=120))  # keep the session open past the K8 window
    assert "second_tap_too_late" in await _second_tap(night, uid, mgr_uid, 75)


async def test_K8_a_manager_not_on_the_roster_is_refused(night: Rig) -> None:
    uid, _ = night.card_of(dept="ENG")
    on_duty, _ = night.duty_manager_on(night.clock())
    others = [night.card_of(role=Role.DUTY_MANAGER, index=i)[0] for i in range(4)]
    off_duty = next(u for u in others if u != on_duty)
    assert "not_on_duty" in await _second_tap(night, uid, off_duty, 10)


# --------------------------------------------------------------------------- K6
def _proxy(rig: Rig) -> tuple[str, Person, OwnerAuthorization, str]:
    """The first demo proxy whose letter of authorization has a phone confirmation."""
    with Session(rig.runtime.engine) as s:
        for auth in s.scalars(select(OwnerAuthorization)):
            if auth.phone_confirmations:
                proxy = s.get(Person, auth.proxy_id)
                assert proxy is not None
                unit_key = s.scalars(select(Key).where(Key.unit_id == auth.units[0].unit_id)).one()
                return proxy.cards[0].uid, proxy, auth, unit_key.key_number
    raise AssertionError("demo data has a confirmed proxy")


async def test_K6_proxy_sees_only_the_owners_unit_and_draws_it(rig: Rig) -> None:
    uid, proxy, auth, key_number = _proxy(rig)
    await rig.cabinet.tap(uid)
    screen = rig.cabinet.screen()
    assert [k["key_number"] for k in screen["keys"]] == [key_number]
    slot, _ = rig.key(key_number)
    await rig.cabinet.choose_draw([key_number], "owner_request")
    await rig.take(slot)
    loan = rig.open_loans()[0]
    assert loan.borrower_id == proxy.id and loan.authorization_id == auth.id
    assert rig.events("key.drawn")[0].rules == '["K6"]'


async def test_K6_proxy_without_phone_confirmation_is_refused(rig: Rig) -> None:
    uid, _, auth, key_number = _proxy(rig)
    with Session(rig.runtime.engine) as s:
        for pc in s.scalars(select(PhoneConfirmation).where(
                PhoneConfirmation.authorization_id == auth.id)):
            s.delete(pc)
        s.commit()
    await rig.cabinet.tap(uid)
    with pytest.raises(CabinetError) as err:
        await rig.cabinet.choose_draw([key_number], "owner_request")
    assert err.value.code == "phone_confirmation_required"
    assert "K6" in rig.events("access.denied")[-1].rules


# --------------------------------------------------------------------------- K7
async def test_K7_special_room_needs_an_approval_which_its_draw_uses_up(rig: Rig) -> None:
    uid, person = rig.card_of(dept="ENG")
    key_number = "E-配电房-B1"
    await rig.cabinet.tap(uid)
    listed = {k["key_number"]: k["status"] for k in rig.cabinet.screen()["keys"]}
    assert listed[key_number] == "approval_required"
    with pytest.raises(CabinetError) as err:
        await rig.cabinet.choose_draw([key_number], "repair")
    assert err.value.code == "approval_required"
    assert "K7" in rig.events("access.denied")[-1].rules
    await rig.cabinet.cancel()

    with Session(rig.runtime.engine) as s:  # the department leader approves (demo request)
        approval = s.scalars(select(Approval)).one()
        assert approval.requested_for_id == person.id
        approval.status = ApprovalStatus.APPROVED
        s.commit()
        approval_id = approval.id
    await rig.cabinet.tap(uid)
    slot, fob = rig.key(key_number)
    await rig.cabinet.choose_draw([key_number], "repair")
    await rig.take(slot)
    loan = rig.open_loans()[0]
    assert loan.approval_id == approval_id
    assert rig.events("key.drawn")[-1].rules == '["K3","K7"]'
    with Session(rig.runtime.engine) as s:
        used = s.get(Approval, approval_id)
        assert used is not None and used.status == ApprovalStatus.USED and used.used_loan_id == loan.id
    # Used once: after returning it, the same approval does not open it again.
    await rig.cabinet.tap(fob)
    await rig.cabinet.tap(uid)  # K4: the returner's badge opens the slot
    await rig.put_back(fob, slot)
    await rig.cabinet.tap(uid)
    with pytest.raises(CabinetError):
        await rig.cabinet.choose_draw([key_number], "repair")


# --------------------------------------------------------------------------- K1
async def test_K1_custodian_registers_a_received_key_into_a_free_slot(rig: Rig) -> None:
    uid, custodian = rig.card_of(role=Role.CUSTODIAN)
    await rig.cabinet.tap(uid)
    slot = await rig.cabinet.choose_intake(
        key_number="U3007", label="3007 室 新装修", room_number="3007", delivered_by="孙伟",
        delivered_by_department="装修公司 Renovation contractor", key_count=2,
        group_code="UNIT", fob_tag="04AA11BB22CC33",
    )
    assert rig.hw.model.is_unlocked(slot) and rig.hw.model.fob_in(slot) is None
    await rig.put_back("04AA11BB22CC33", slot)
    with Session(rig.runtime.engine) as s:
        key = s.scalars(select(Key).where(Key.key_number == "U3007")).one()
        record = s.scalars(select(IntakeRecord).where(IntakeRecord.key_id == key.id)).one()
        assert (record.delivered_by_name, record.key_count, record.custodian_id) == (
            "孙伟", 2, custodian.id)
    assert rig.events("key.intake")[0].rules == '["K1"]'
    # The new key can be drawn like any other.
    staff_uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(staff_uid)
    assert "U3007" in {k["key_number"] for k in rig.cabinet.screen()["keys"]}


async def test_K1_duplicate_key_number_and_non_custodian_are_refused(rig: Rig) -> None:
    uid, _ = rig.card_of(role=Role.CUSTODIAN)
    await rig.cabinet.tap(uid)
    details = dict(label="x", delivered_by="a", delivered_by_department="b", group_code="UNIT")
    with pytest.raises(CabinetError) as err:
        await rig.cabinet.choose_intake(key_number="U1203", **details)
    assert err.value.code == "duplicate_key_number"
    await rig.cabinet.cancel()
    staff, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(staff)
    with pytest.raises(CabinetError) as err:
        await rig.cabinet.choose_intake(key_number="U3008", **details)
    assert err.value.code == "intake_not_custodian"
    assert "K1" in rig.events("access.denied")[-1].rules


# --------------------------------------------------------------------------- F1
def _alarms(rig: Rig, kind: str) -> list[Alarm]:
    with Session(rig.runtime.engine) as s:
        return list(s.scalars(select(Alarm).where(Alarm.kind == kind)))


async def test_F1_forced_and_held_open_door_raise_alarms_with_a_state(rig: Rig) -> None:
    rig.hw.door(True)
    await rig.settle()
    forced = _alarms(rig, "door_forced")
    assert len(forced) == 1 and forced[0].state == "open" and forced[0].event_seq
    rig.hw.door(False)
    await rig.settle()
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    rig.hw.door(True)  # opened during a session: not forced...
    await rig.settle()
    assert len(_alarms(rig, "door_forced")) == 1
    rig.clock.advance(121)  # ...but held open too long
    await rig.settle()
    assert len(_alarms(rig, "door_held_open")) == 1


async def test_F1_K9_overdue_key_raises_one_alarm(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("P-A梯-B4")  # public-area key: due back in 120 minutes
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["P-A梯-B4"], "patrol")
    await rig.take(slot)
    rig.clock.advance(121 * 60)
    await rig.settle()
    rig.clock.advance(120)
    await rig.settle()
    overdue = _alarms(rig, "key_overdue")
    assert len(overdue) == 1 and overdue[0].rule == "K9"


async def test_lock_bus_down_is_a_fault_and_nothing_is_recorded_as_drawn(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    rig.hw.board.sim.set_faults(offline_boards=set(range(13)))  # the whole bus is dead
    await rig.cabinet.choose_draw(["U1203"], "repair")
    screen = rig.cabinet.screen()
    assert screen["state"] == "idle" and screen["message"]["code"] == "lock_fault"
    assert rig.open_loans() == []
    assert _alarms(rig, "lock_fault")
    assert [e.type for e in rig.events("unlock.")] == ["unlock.failed"]
    rig.hw.board.sim.clear_faults()


# ------------------------------------------------------------------ power cut, K10
async def test_power_cut_mid_draw_is_resolved_from_the_intent_at_restart(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    uid, person = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    # The power fails after the durable intent and the unlock, before the sensor scan:
    # the daemon dies with the Pi; the compartment stays popped open and the key is taken.
    rig.hw.power(False)
    rig.hw.take(slot)
    rig.hw.power(True)
    assert rig.open_loans() == []
    cabinet = Cabinet(rig.runtime, rig.hw.locks, calendar=calendar_from(rig.runtime.settings),
                      options=options_from(rig.runtime.settings), clock=rig.clock)
    summary = await cabinet.start()
    assert summary["resolved_draws"] == 1
    loan = rig.open_loans()[0]
    assert loan.borrower_id == person.id and loan.reason_code == "repair"
    resolved = rig.events("draw.resolved")
    assert len(resolved) == 1 and '"outcome":"taken"' in resolved[0].payload
    rig.cabinet = cabinet
    await close_rig(rig)


async def test_startup_reconciliation_raises_alarms_for_missing_and_unknown_keys(
    tmp_path: Path,
) -> None:
    rig = await make_rig(tmp_path)
    slot, _ = rig.key("U1203")
    free_slot = 208
    rig.hw.model.take(slot, force=True)  # gone while the daemon was down
    rig.hw.model.unlock(free_slot, 1)
    rig.hw.model.insert("04FFFFFFFFFFFF", free_slot)
    rig.hw.model.shut_slot(free_slot)
    cabinet = Cabinet(rig.runtime, rig.hw.locks, calendar=calendar_from(rig.runtime.settings),
                      options=options_from(rig.runtime.settings), clock=rig.clock)
    summary = await cabinet.start()
    assert summary["alarms"] == 2
    missing = _alarms(rig, "key_missing")
    unexpected = _alarms(rig, "key_unexpected")
    assert len(missing) == 1 and "U1203" in missing[0].message
    assert len(unexpected) == 1 and "unregistered" in unexpected[0].message
    await cabinet.start()  # a second restart does not duplicate open alarms
    assert len(_alarms(rig, "key_missing")) == 1
    rig.cabinet = cabinet
    await close_rig(rig)


async def test_lost_card_is_refused_at_the_next_tap(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    with Session(rig.runtime.engine) as s:
        card = s.scalars(select(Card).where(Card.uid == uid)).one()
        card.status = "lost"  # type: ignore[assignment]
        s.commit()
    await rig.cabinet.tap(uid)
    assert rig.cabinet.screen()["message"]["code"] == "card_lost"
    assert rig.cabinet.screen()["state"] == "idle"
    denied = rig.events("access.denied")[-1]
    assert denied.rules == '["K3"]' and "card_lost" in denied.payload
