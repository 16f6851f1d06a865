"""Issue 13, item 2: the cabinet uses key identity (each fob's 1-Wire ROM, read by the
slot's receptor) wherever the hardware has it; presence-only cabinets keep today's
behaviour. Driven through the real drivers against the DS2482 and Kerong simulators.

The bug from the issue: badge → 归还 for U606 opens U606's slot, the person hangs U701
there, and U606 was recorded as returned with no alarm (K4: a return records *which* key
came back).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rig import Rig, close_rig, make_rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from drivers.identity import FobId
from kiosk import records
from kiosk import session as flow
from kiosk.cabinet import Cabinet, calendar_from, options_from
from kiosk.cabinet.options import CabinetError
from kiosk.reports import data as report_data
from kiosk.reports.data import COUNT_JOB
from kiosk.scheduler import Scheduler
from kiosk.store.models import Alarm, Key, KeyGroup, Role
from kiosk.wiring import identity_receptors

IDENTITY: dict[str, Any] = {"hardware": {"identity": {"enabled": True}}}


@pytest.fixture
async def irig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path, **IDENTITY)
    yield r
    await close_rig(r)


def open_alarms(rig: Rig, kind: str) -> list[Alarm]:
    with Session(rig.runtime.engine) as s:
        return list(s.scalars(select(Alarm).where(Alarm.kind == kind)))


def on_loan(rig: Rig) -> set[str]:
    with Session(rig.runtime.engine) as s:
        ids = {loan.key_id for loan in rig.open_loans()}
        return {k.key_number for k in s.scalars(select(Key).where(Key.id.in_(ids)))}


async def two_keys_out(rig: Rig) -> tuple[str, tuple[int, str], tuple[int, str]]:
    uid, _ = rig.card_of(dept="ENG")
    await rig.drawn(uid, "U606")
    await rig.drawn(uid, "U701")
    return uid, rig.key("U606"), rig.key("U701")


async def test_K4_a_wrong_key_hung_is_never_recorded_as_the_right_ones_return(irig: Rig) -> None:
    rig = irig
    uid, (slot606, fob606), (slot701, fob701) = await two_keys_out(rig)
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_return("U606")
    await rig.put_back(fob701, slot606)  # the wrong key in U606's open slot

    # The log: neither key is back; the mistake is recorded.
    assert on_loan(rig) == {"U606", "U701"}
    assert not rig.events("key.returned")
    wrong = rig.events("return.wrong_key")
    assert len(wrong) == 1 and wrong[0].slot == slot606 and '"hung":"U701"' in wrong[0].payload
    # The person: the slot is open again, the screen says which key belongs there and where
    # the one in hand goes.
    assert rig.hw.model.is_unlocked(slot606)
    msg = rig.cabinet.message
    assert msg is not None and msg.code == "wrong_key" and msg.detail is not None
    assert "U606" in msg.detail[0] and f"格口 {slot701}" in msg.detail[0]
    assert f"slot {slot701}" in msg.detail[1]
    assert rig.cabinet.session.state == flow.State.RETURNING

    await rig.take(slot606)  # takes U701 back out: no alarm, nothing recorded
    assert not open_alarms(rig, "key_removed_unauthorised")
    await rig.put_back(fob606, slot606)  # the right key
    assert on_loan(rig) == {"U701"}
    assert rig.events("key.returned")[-1].key_number == "U606"
    await rig.settle()
    assert not open_alarms(rig, "wrong_slot")


async def test_K4_a_wrong_key_left_in_the_slot_raises_wrong_slot(irig: Rig) -> None:
    rig = irig
    uid, (slot606, _), (_, fob701) = await two_keys_out(rig)
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_return("U606")
    await rig.put_back(fob701, slot606)
    rig.hw.model.shut_slot(slot606)
    await rig.cabinet.cancel()  # walks away
    await rig.settle()
    alarms = open_alarms(rig, "wrong_slot")
    assert len(alarms) == 1 and "U701" in alarms[0].message
    assert on_loan(rig) == {"U606", "U701"}  # nothing recorded as returned


async def test_a_presence_only_cabinet_keeps_todays_behaviour_and_says_so(rig: Rig) -> None:
    assert rig.cabinet.live_status()["identity"] is False
    assert rig.cabinet.screen()["identity"] is False
    uid, (slot606, _), _ = await two_keys_out(rig)
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_return("U606")
    await rig.put_back(rig.key("U606")[1], slot606)
    assert on_loan(rig) == {"U701"}


async def test_an_identity_cabinet_says_so_and_shows_each_slots_fob(irig: Rig) -> None:
    status = irig.cabinet.live_status()
    assert status["identity"] is True and irig.cabinet.screen()["identity"] is True
    slot, fob = irig.key("U606")
    row = next(s for s in status["slots"] if s["number"] == slot)
    assert row["fob"] == FobId.derived(fob).hex


async def test_return_to_any_free_slot_for_a_group_that_allows_it(irig: Rig) -> None:
    rig = irig
    with Session(rig.runtime.engine) as s:
        public = s.scalars(select(Key.key_number).join(KeyGroup)
                           .where(KeyGroup.return_anywhere.is_(True)).order_by(Key.key_number)).first()
        cabinet = records.cabinet_row(s, code="cab-01")
        free = records.free_slots(s, cabinet_id=cabinet.id)
    assert public and free
    uid, _ = rig.card_of(dept="ENG")
    old_slot, fob = rig.key(public)
    await rig.drawn(uid, public)
    # A key of a fixed-home group cannot be sent elsewhere.
    await rig.drawn(uid, "U606")
    await rig.cabinet.tap(uid)
    with pytest.raises(CabinetError) as err:
        await rig.cabinet.choose_return("U606", slot=free[0])
    assert err.value.code == "return_home_only"
    await rig.cabinet.choose_return(public, slot=free[0])
    assert rig.hw.model.is_unlocked(free[0])
    await rig.put_back(fob, free[0])
    assert on_loan(rig) == {"U606"}
    assert rig.key(public)[0] == free[0]  # its new home
    returned = rig.events("key.returned")[-1]
    assert returned.slot == free[0] and f'"moved_from":{old_slot}' in returned.payload
    with Session(rig.runtime.engine) as s:
        assert old_slot in records.free_slots(s, cabinet_id=cabinet.id)


async def test_K1_intake_pairs_the_fob_chip_when_the_key_is_hung(irig: Rig) -> None:
    rig = irig
    uid, _ = rig.card_of(role=Role.CUSTODIAN)
    await rig.cabinet.tap(uid)
    slot = await rig.cabinet.choose_intake(
        key_number="U3007", label="3007 室", room_number="3007", delivered_by="孙伟",
        delivered_by_department="装修公司", group_code="UNIT", fob_tag="04AA11BB22CC33")
    await rig.put_back("04AA11BB22CC33", slot)
    with Session(rig.runtime.engine) as s:
        key = s.scalars(select(Key).where(Key.key_number == "U3007")).one()
        assert key.fob_rom == FobId.derived("04AA11BB22CC33").hex
    assert FobId.derived("04AA11BB22CC33").hex in rig.events("key.intake")[-1].payload


async def swap_while_down(rig: Rig) -> tuple[int, int]:
    """Two keys swapped in their slots while the daemon was down (by someone with the
    service key): presence is unchanged, identities are not."""
    (a, fa), (b, fb) = rig.key("U606"), rig.key("U701")
    model = rig.hw.model
    for slot in (a, b):
        rig.hw.locks.unlock(slot)
        model.take(slot)
    model.insert(fb, a)
    model.insert(fa, b)
    model.shut_slot(a)
    model.shut_slot(b)
    return a, b


async def test_K10_start_up_scan_compares_identities(irig: Rig) -> None:
    rig = irig
    await rig.cabinet.stop()
    a, b = await swap_while_down(rig)
    rig.cabinet = Cabinet(rig.runtime, rig.hw.bank, calendar=calendar_from(rig.runtime.settings),
                          options=options_from(rig.runtime.settings), clock=rig.clock)
    await rig.cabinet.start()
    alarms = open_alarms(rig, "wrong_slot")
    assert {al.message.split()[1] for al in alarms} == {str(a), str(b)}
    assert all(al.rule == "K10" for al in alarms)


async def test_K9_daily_count_compares_identities(irig: Rig) -> None:
    rig = irig
    a, b = await swap_while_down(rig)
    await rig.settle()
    rig.clock.advance(11 * 60)  # the cabinet re-reads every receptor while idle
    await rig.settle()
    fobs = rig.cabinet.last_fobs()
    assert fobs is not None
    with Session(rig.runtime.engine) as s:
        cabinet = records.cabinet_row(s, code="cab-01")
        count = report_data.take_count(s, cabinet_id=cabinet.id, sensed=rig.cabinet.last_scan(),
                                       zone=rig.runtime.settings.zone,
                                       now=dt.datetime.now(dt.UTC), fobs=fobs)
        presence_only = report_data.take_count(
            s, cabinet_id=cabinet.id, sensed=rig.cabinet.last_scan(),
            zone=rig.runtime.settings.zone, now=dt.datetime.now(dt.UTC))
    assert count.identity_checked and not presence_only.identity_checked
    assert {(m.slot, m.problem, getattr(m, "found", None)) for m in count.mismatches} == {
        (a, "wrong_key", "U701"), (b, "wrong_key", "U606")}
    assert presence_only.mismatches == []  # what presence alone cannot see


async def test_K4_an_unreadable_receptor_never_passes_for_the_right_key(irig: Rig) -> None:
    """A shorted receptor cannot say which key hangs there: the return is not recorded (a
    wrong key must not pass for the right one), the screen says the key is not recognised,
    and once the contact reads again the same return goes through."""
    rig = irig
    uid, _ = rig.card_of(dept="ENG")
    slot, fob = await rig.drawn(uid, "U606")
    assert rig.hw.i2c is not None
    receptor = identity_receptors(rig.runtime.settings.hardware.identity,
                                  sorted(rig.hw.model.slots))[slot]
    bridge = rig.hw.i2c.chip(receptor.address, mux=receptor.mux)
    bridge.faults.shorted.add(receptor.channel)
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_return("U606")
    await rig.put_back(fob, slot)
    assert on_loan(rig) == {"U606"}
    msg = rig.cabinet.message
    assert msg is not None and msg.code == "wrong_key" and "无法识别" in (msg.detail or ("",))[0]
    assert slot in rig.cabinet.live_status()["identity_faults"]

    bridge.faults.shorted.clear()
    await rig.take(slot)
    await rig.put_back(fob, slot)
    assert on_loan(rig) == set()


async def test_K9_the_scheduled_daily_count_raises_a_mismatch_for_a_swapped_key(irig: Rig) -> None:
    rig = irig
    a, _b = await swap_while_down(rig)
    rig.clock.advance(11 * 60)
    await rig.settle()
    scheduler = Scheduler(rig.runtime, presence=rig.cabinet.last_scan,
                          identities=rig.cabinet.last_fobs, clock=rig.clock)
    count_job = next(job for job in scheduler.jobs if job.name == COUNT_JOB)
    now = rig.clock()
    assert scheduler.run_job(count_job, now.astimezone(rig.runtime.settings.zone).date(),
                             now=now, catch_up=False)
    mismatches = {al.message for al in open_alarms(rig, "count_mismatch")}
    assert any(f"slot {a} (U606)" in m and "another key (U701)" in m for m in mismatches)
    assert '"compared":"identity"' in rig.events("count.daily")[-1].payload
