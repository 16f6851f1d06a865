"""A whole day at the cabinet through the simulators (issue: the cabinet daemon).

Badges are read by the real MFRC522 driver from the chip simulator, locks are driven by the
real Kerong driver over a TCP socket to the board simulator. From opening to night: intake,
twenty draws and returns by several roles, a proxy draw, a special room with and without
approval, a key not taken, a forced door, a power cut mid-draw and one mid-return by someone else (K5), and every way a night
opening can go, and a master key drawn under duress (the duress PIN: it opens as the PIN
does, and a silent alarm goes to the supervisor). The cabinet reads key identity (issue 13): a wrong key hung in an open slot
and a return to another free slot are part of the day. Afterwards loans, events and sensors agree and `kiosk audit verify` passes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from rig import SH, Rig, close_rig, make_rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk import records
from kiosk.audit.verify import verify_log
from kiosk.cabinet import Cabinet, CabinetError, calendar_from, options_from
from kiosk.services import pins, tx
from kiosk.services.authz import ROLE_PERMISSIONS, Principal
from kiosk.store.models import (
    Alarm,
    Approval,
    ApprovalStatus,
    Key,
    KeyGroup,
    Loan,
    OwnerAuthorization,
    Person,
    Role,
)
from kiosk.store.models_auth import AccountRole, TokenKind
from kiosk.wiring import ReaderPump
from simulators.tags import card_from_uid_hex

OPENING = dt.datetime(2026, 11, 27, 8, 40, tzinfo=SH)


async def badge(rig: Rig, uid: str) -> None:
    """Hold a card to the antenna until the cabinet has handled the read, as a person holds
    it until the screen answers, then take it away. (A fixed 0.1 s hold went unread when
    the reader's polling thread was starved on a loaded machine.)"""
    before = rig.cabinet.version
    tag = card_from_uid_hex(uid)
    rig.hw.model.place_tag(tag)
    try:
        for _ in range(500):
            if rig.cabinet.version != before:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"the reader never delivered {uid}")
    finally:
        rig.hw.model.remove_tag(tag)
    # Taken away: the same card counts as a new tap only once the reader has seen it gone
    # for its hold-off (two polls and 0.3 s). Waited on, not slept: a starved reader thread
    # took longer than a fixed 0.5 s, and the next tap of the card was never delivered.
    for _ in range(500):
        if not rig.hw.reader.holding:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the reader still holds {uid} 10 s after it was taken away")


async def draw(rig: Rig, uid: str, key_number: str, reason: str = "repair") -> int:
    await badge(rig, uid)
    await rig.cabinet.choose_draw([key_number], reason)
    slot, _ = rig.key(key_number)
    await rig.take(slot)
    return slot


async def give_back(rig: Rig, uid: str, key_number: str) -> None:
    slot, fob = rig.key(key_number)
    await badge(rig, uid)
    await rig.cabinet.choose_return(key_number)
    await rig.put_back(fob, slot)


def keys_of_group(rig: Rig, code: str, n: int) -> list[str]:
    with Session(rig.runtime.engine) as s:
        return list(s.scalars(select(Key.key_number).join(KeyGroup).where(KeyGroup.code == code)
                              .order_by(Key.key_number).limit(n)))


async def test_a_full_day(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, start=OPENING, hardware={"identity": {"enabled": True}},
                         pin={"key_groups": ["MASTER"]})
    # Reads go to whichever cabinet is current (it is replaced after the power cut).
    pump = ReaderPump(rig.hw.reader, lambda uid: rig.cabinet.tap(uid),
                      asyncio.get_running_loop()).start()
    try:
        await _day(rig, tmp_path)
    finally:
        pump.stop()
        await close_rig(rig)
    # The log verifies with the operator's own command.
    out = subprocess.run([sys.executable, "-m", "kiosk", "audit", "verify"], capture_output=True,
                         text=True, env={**os.environ, "KIOSK_DATA_DIR": str(tmp_path / "var"),
                                         "KIOSK_CABINET_ID": "cab-01", "KIOSK_DATABASE_URL": ""})
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stdout


async def _day(rig: Rig, tmp_path: Path) -> None:
    # 08:40 — a custodian registers a key delivered by a contractor (K1).
    custodian, _ = rig.card_of(role=Role.CUSTODIAN)
    await badge(rig, custodian)
    slot = await rig.cabinet.choose_intake(
        key_number="U3007", label="3007 室", room_number="3007", delivered_by="孙伟",
        delivered_by_department="装修公司", key_count=1, group_code="UNIT", fob_tag="04C0FFEE000001")
    await rig.put_back("04C0FFEE000001", slot)

    # 09:00–16:00 — twenty draws and returns by engineering, security, cleaning, service.
    people = ([rig.card_of(dept="ENG", index=i)[0] for i in range(3)]
              + [rig.card_of(dept="SEC", index=i)[0] for i in range(3)]
              + [rig.card_of(dept="CLN", index=i)[0] for i in range(2)]
              + [rig.card_of(dept="CS", index=5)[0]])
    unit_keys = [*keys_of_group(rig, "UNIT", 40), "U3007"]
    public_keys = keys_of_group(rig, "PUBLIC", 20)
    vacant_keys = keys_of_group(rig, "VACANT", 20)
    rig.clock.set_local(OPENING.replace(hour=9))
    draws = 0
    for i in range(20):
        uid = people[i % len(people)]
        dept_index = i % len(people)
        if dept_index < 3 or dept_index == 8:
            key_number = unit_keys[-1] if i == 0 else unit_keys[i]  # the new key goes out first
        else:
            key_number = public_keys[i % len(public_keys)] if i % 3 else vacant_keys[i % len(vacant_keys)]
        reason = ["repair", "patrol", "cleaning", "meter", "viewing"][i % 5]
        await draw(rig, uid, key_number, reason)
        draws += 1
        rig.clock.advance(10 * 60)
        if i % 4 != 3:  # most come back within the hour; some stay out a while
            await give_back(rig, uid, key_number)
        rig.clock.advance(10 * 60)
    assert draws == 20
    out_now = {loan.key_id for loan in rig.open_loans()}
    assert len(out_now) == 5

    # Issue 13 / K4: 归还 for one key, another hung in its slot: not recorded, the slot
    # re-opens and the screen says where each goes; the right key then closes the loan.
    engineer = people[0]
    first, second = unit_keys[32], unit_keys[33]
    await draw(rig, engineer, first)
    await draw(rig, engineer, second)
    (slot_a, fob_a), (slot_b, fob_b) = rig.key(first), rig.key(second)
    await badge(rig, engineer)
    await rig.cabinet.choose_return(first)
    await rig.put_back(fob_b, slot_a)
    assert rig.cabinet.message is not None and rig.cabinet.message.code == "wrong_key"
    assert f"格口 {slot_b}" in (rig.cabinet.message.detail or ("", ""))[0]
    assert not rig.events("key.returned") or rig.events("key.returned")[-1].key_number != first
    await rig.take(slot_a)
    await rig.put_back(fob_a, slot_a)
    assert rig.events("key.returned")[-1].key_number == first
    await give_back(rig, engineer, second)
    assert not rig.events("alarm.wrong_slot")

    # A public-area key goes back to another free slot, which becomes its home.
    guard = people[3]
    roaming = public_keys[-1]
    home_before, roaming_fob = rig.key(roaming)
    await draw(rig, guard, roaming, "patrol")
    with Session(rig.runtime.engine) as s:
        free = records.free_slots(s, cabinet_id=rig.cabinet.cabinet_id)
    await badge(rig, guard)
    await rig.cabinet.choose_return(roaming, slot=free[-1])
    await rig.put_back(roaming_fob, free[-1])
    assert rig.key(roaming)[0] == free[-1] != home_before
    returned = rig.events("key.returned")[-1]
    assert returned.key_number == roaming and returned.slot == free[-1]

    # A proxy with the owner's letter and phone confirmation draws the owner's unit key (K6).
    with Session(rig.runtime.engine) as s:
        auth = next(a for a in s.scalars(select(OwnerAuthorization)) if a.phone_confirmations)
        proxy = s.get(Person, auth.proxy_id)
        assert proxy is not None
        proxy_card = proxy.cards[0].uid
        proxy_key = s.scalars(select(Key.key_number).where(Key.unit_id == auth.units[0].unit_id)).one()
    # The proxy's view (K6, issue 14): at the screen only the owner's unit, never another
    # owner's unit or a master key, even while keys of other units are out.
    await badge(rig, proxy_card)
    shown = rig.cabinet.screen()["keys"]
    assert [k["key_number"] for k in shown] == [proxy_key]
    await rig.cabinet.cancel()
    await draw(rig, proxy_card, proxy_key, "owner_request")
    await give_back(rig, proxy_card, proxy_key)
    # A proxy whose owner has not yet confirmed by phone sees the unit, and why it waits.
    with Session(rig.runtime.engine) as s:
        waiting = next(
            a for a in s.scalars(select(OwnerAuthorization)) if not a.phone_confirmations
        )
        waiting_person = s.get(Person, waiting.proxy_id)
        assert waiting_person is not None
        waiting_card = waiting_person.cards[0].uid
        waiting_key = s.scalars(
            select(Key.key_number).where(Key.unit_id == waiting.units[0].unit_id)
        ).one()
    await badge(rig, waiting_card)
    shown = rig.cabinet.screen()["keys"]
    assert [(k["key_number"], k["status"], k["why"]["zh"]) for k in shown] == [
        (waiting_key, "phone_confirmation_required", "需业主电话确认")
    ]
    await rig.cabinet.cancel()

    # A special room: refused without an approval, drawn with one (K7).
    await badge(rig, engineer)
    try:
        await rig.cabinet.choose_draw(["E-配电房-B1"], "repair")
        raise AssertionError("a special room opened without approval")
    except CabinetError as exc:
        assert exc.code == "approval_required"
    await rig.cabinet.cancel()
    with Session(rig.runtime.engine) as s:
        approval = s.scalars(select(Approval)).one()
        approval.status = ApprovalStatus.APPROVED
        s.commit()
    await draw(rig, engineer, "E-配电房-B1", "repair")
    await give_back(rig, engineer, "E-配电房-B1")

    # PIN and duress (issue 14, item 8): master keys need a PIN (K3's second factor). A
    # clerk sets one after the custodian's reset, then is forced to open the cabinet: the
    # duress PIN opens exactly as the PIN would, and a silent alarm goes to the supervisor.
    await _duress_opening(rig)

    # A key not taken: the slot is shut again without taking it.
    await badge(rig, people[1])
    await rig.cabinet.choose_draw([unit_keys[30]], "repair")
    rig.hw.shut(rig.key(unit_keys[30])[0])
    rig.clock.advance(25)
    await rig.settle()
    assert rig.events("draw.not_taken")

    # A forced door while nobody is at the screen.
    rig.hw.door(True)
    await rig.settle()
    rig.hw.door(False)
    await rig.settle()
    assert rig.events("alarm.door_forced")

    # A power cut mid-draw: intent logged and slot released, then the Pi dies.
    await badge(rig, people[2])
    await rig.cabinet.choose_draw([unit_keys[31]], "repair")
    cut_slot = rig.key(unit_keys[31])[0]
    rig.hw.power(False)
    rig.hw.take(cut_slot)
    rig.hw.power(True)
    rig.cabinet = Cabinet(rig.runtime, rig.hw.bank, calendar=calendar_from(rig.runtime.settings),
                          options=options_from(rig.runtime.settings), clock=rig.clock,
                          door_is_open=lambda: rig.hw.door_sensor.is_open)
    summary = await rig.cabinet.start()
    assert summary["resolved_draws"] == 1

    # A power cut mid-return, by someone other than the borrower (K4, K5): the key's fob and
    # a colleague's badge, the slot opens, the Pi dies, the key goes in while it is down.
    # The next start finishes the return through the live path's one write path, so it is
    # flagged exactly as a live return by someone else would be.
    await _return_by_another_across_a_power_cut(rig, people[1], people[4], unit_keys[34])

    # 23:00 — night openings (K8).
    rig.clock.set_local(OPENING.replace(hour=23))
    await _night(rig, people)

    # Afterwards loans, events and sensors agree.
    with Session(rig.runtime.engine) as s:
        expected_in = records.expected_presence(s, cabinet_id=rig.cabinet.cabinet_id)
        open_loans = list(s.scalars(select(Loan).where(Loan.returned_at.is_(None))))
        drawn = len(rig.events("key.drawn")) + len(rig.events("draw.resolved")) - sum(
            1 for e in rig.events("draw.resolved") if '"not_taken"' in e.payload)
        came_back = len(rig.events("key.returned")) + sum(
            1 for e in rig.events("return.resolved") if '"returned"' in e.payload)
        total_loans = s.query(Loan).count()
    for n in rig.hw.model.slots:
        assert rig.hw.model.key_present(n) == (n in expected_in), f"slot {n} disagrees"
    assert drawn == total_loans and total_loans - came_back == len(open_loans)
    result = verify_log(rig.runtime.engine, cabinet_id="cab-01",
                        public_key=rig.runtime.device_key.public)
    assert result.ok, result.problems


async def _return_by_another_across_a_power_cut(
    rig: Rig, borrower_uid: str, other_uid: str, key_number: str
) -> None:
    await draw(rig, borrower_uid, key_number)
    slot, fob = rig.key(key_number)
    await rig.cabinet.tap(fob)  # the key's fob at the reader, then the colleague's badge
    await badge(rig, other_uid)
    assert rig.cabinet.screen()["state"] == "returning"
    rig.hw.power(False)
    rig.hw.insert(fob, slot)
    rig.hw.power(True)
    rig.cabinet = Cabinet(rig.runtime, rig.hw.bank, calendar=calendar_from(rig.runtime.settings),
                          options=options_from(rig.runtime.settings), clock=rig.clock,
                          door_is_open=lambda: rig.hw.door_sensor.is_open)
    summary = await rig.cabinet.start()
    assert summary["resolved_returns"] == 1
    with Session(rig.runtime.engine) as s:
        key = s.scalars(select(Key).where(Key.key_number == key_number)).one()
        loan = s.scalars(select(Loan).where(Loan.key_id == key.id)
                         .order_by(Loan.id.desc())).first()
        assert loan is not None and loan.returned_at is not None
        assert loan.returned_by_other and loan.returned_by_id != loan.borrower_id
        flagged = list(s.scalars(select(Alarm).where(Alarm.kind == "returned_by_other",
                                                      Alarm.loan_id == loan.id)))
    assert len(flagged) == 1 and flagged[0].rule == "K5" and flagged[0].owner_id is not None


async def _duress_opening(rig: Rig) -> None:
    clerk, person = rig.card_of(role=Role.STAFF, dept="CS", exclude_roles=(
        Role.CUSTODIAN, Role.SUPERVISOR, Role.DUTY_MANAGER, Role.DEPT_LEADER))
    custodian, _ = rig.card_of(role=Role.CUSTODIAN)
    desk = Principal(account_id=uuid.uuid4(), username="desk", role=AccountRole.CUSTODIAN,
                     person_id=None, department_id=None,
                     permissions=ROLE_PERMISSIONS[AccountRole.CUSTODIAN],
                     token_id=uuid.uuid4(), token_kind=TokenKind.ACCESS)
    with tx.write(rig.runtime.audit) as s:
        pins.reset(s, rig.runtime.audit, by=desk, person_id=person.id,
                   window=dt.timedelta(minutes=30), now=rig.clock())
    await badge(rig, clerk)
    await rig.cabinet.change_pin(None, "2580", "1470")
    await rig.cabinet.cancel()
    await badge(rig, clerk)
    await rig.cabinet.choose_draw(["M-01"], "repair")
    assert rig.cabinet.screen()["pin"]["asked"] is True
    await rig.cabinet.enter_pin("1470")  # the duress PIN
    await badge(rig, custodian)  # the master key's co-sign (K3), as on any day
    await rig.take(rig.key("M-01")[0])
    assert rig.cabinet.message is not None and rig.cabinet.message.code == "drawn"
    # never on the cabinet's own banner (the day's overdue keys are, as they should be)
    assert "duress" not in [a["kind"] for a in rig.cabinet.screen()["alarms"]]
    (alarm,) = rig.events("alarm.duress")
    raised = json.loads(alarm.payload)
    _, supervisor = rig.card_of(role=Role.SUPERVISOR)
    assert raised["owner"] == str(supervisor.id) and raised["keys"] == ["M-01"]
    await give_back(rig, clerk, "M-01")


async def _night(rig: Rig, people: list[str]) -> None:
    employee = people[0]
    manager, _ = rig.duty_manager_on(rig.clock())
    off_duty = next(u for u in (rig.card_of(role=Role.DUTY_MANAGER, index=i)[0] for i in range(4))
                    if u != manager)
    denials_before = len(rig.events("access.denied"))
    # One person alone: the window runs out.
    await badge(rig, employee)
    rig.clock.advance(61)
    await rig.settle()
    # The same person twice.
    await badge(rig, employee)
    await badge(rig, employee)
    # A manager not on the roster.
    await badge(rig, employee)
    await badge(rig, off_duty)
    # The second badge too late (session kept open longer than the K8 window).
    rig.cabinet.session.timeouts = rig.cabinet.session.timeouts.__class__(
        manager=dt.timedelta(seconds=300))
    await badge(rig, employee)
    rig.clock.advance(90)
    await badge(rig, manager)
    codes = [e.payload for e in rig.events("access.denied")[denials_before:]]
    assert any("same_person_twice" in c for c in codes)
    assert any("not_on_duty" in c for c in codes)
    assert any("second_tap_too_late" in c for c in codes)
    assert not [e for e in rig.events("key.drawn") if "K8" in e.rules]
    # And the night opening that works.
    key_number = rig.first_key("UNIT")
    await badge(rig, employee)
    rig.clock.advance(15)
    await badge(rig, manager)
    await rig.cabinet.choose_draw([key_number], "emergency")
    await rig.take(rig.key(key_number)[0])
    night_draws = [e for e in rig.events("key.drawn") if "K8" in e.rules]
    assert len(night_draws) == 1
