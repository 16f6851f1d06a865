"""Stocking a new cabinet (K1, K2): keys imported with their home slots are hung by a
custodian in a stocking session, each recorded as ``key.stocked``, with no alarm; a key in
the wrong slot still alarms (``wrong_slot``, K4); the released slots are locked again when
the session ends; a stocked key is then drawn and returned like any other.

Driven through the real drivers against the Kerong simulator (pop-open compartments). The
keys "imported and not yet hung" are three of the demo tower's keys marked
``awaiting_stock`` before the simulated cabinet is built, so their slots are empty.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rig import FRI_10AM, Clock, Rig, close_rig
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kiosk import session as flow
from kiosk.cabinet import Cabinet, calendar_from, options_from
from kiosk.cabinet.options import CabinetError
from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.runtime import Runtime
from kiosk.store.models import Alarm, Key, Role
from kiosk.wiring import build_simulated
from simulators.cabinet import PhysicalError

BOXED = ("U601", "U602", "U603")


async def stocking_rig(tmp_path: Path, **settings: object) -> Rig:
    """The demo tower, with three of its keys imported but never hung (their slots empty)."""
    cfg = Settings(data_dir=tmp_path / "var", cabinet_id="cab-01", **settings)  # type: ignore[arg-type]
    runtime = Runtime.open(cfg)
    clock = Clock(FRI_10AM)
    load_demo(runtime, now=clock())
    with Session(runtime.engine) as s:
        s.execute(update(Key).where(Key.key_number.in_(BOXED)).values(awaiting_stock=True))
        s.commit()
    hw = build_simulated(runtime)
    cabinet = Cabinet(runtime, hw.bank, calendar=calendar_from(cfg), options=options_from(cfg),
                      clock=clock, door_is_open=lambda: hw.door_sensor.is_open)
    await cabinet.start()
    return Rig(runtime, hw, cabinet, clock)


@pytest.fixture
async def srig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await stocking_rig(tmp_path)
    yield r
    await close_rig(r)


@pytest.fixture
async def isrig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await stocking_rig(tmp_path, hardware={"identity": {"enabled": True}})
    yield r
    await close_rig(r)


def alarms(rig: Rig) -> list[str]:
    with Session(rig.runtime.engine) as s:
        return [a.kind for a in s.scalars(select(Alarm))]


def awaiting(rig: Rig) -> set[str]:
    with Session(rig.runtime.engine) as s:
        return set(s.scalars(select(Key.key_number).where(Key.awaiting_stock.is_(True))))


async def start_stocking(rig: Rig) -> tuple[dict[str, tuple[int, str]], str]:
    """A custodian taps and presses 上架; the boxed keys' (slot, fob), and the custodian's id."""
    uid, custodian = rig.card_of(role=Role.CUSTODIAN)
    await rig.cabinet.tap(uid)
    screen = rig.cabinet.screen()
    assert screen["stock"] == {"awaiting": len(BOXED)}  # the 上架 button and how many
    slots = await rig.cabinet.start_stock()
    keys = {number: rig.key(number) for number in BOXED}
    assert sorted(slots) == sorted(slot for slot, _ in keys.values())
    return keys, str(custodian.id)


async def test_K1_K2_each_key_hung_in_its_home_slot_is_stocked_by_the_custodian_no_alarm(
        srig: Rig) -> None:
    rig = srig
    keys, custodian = await start_stocking(rig)
    assert rig.cabinet.session.state == flow.State.STOCKING
    shown = rig.cabinet.screen()["stock"]
    assert [k["key_number"] for k in shown["keys"]] == list(BOXED)
    assert all(rig.hw.model.is_unlocked(slot) for slot, _ in keys.values())  # released

    for number in BOXED:
        slot, fob = keys[number]
        await rig.put_back(fob, slot)
    stocked = rig.events("key.stocked")
    assert [(e.key_number, e.slot) for e in stocked] == [(n, keys[n][0]) for n in BOXED]
    assert all(json.loads(e.actors) == [custodian] for e in stocked)  # the custodian's
    assert all(json.loads(e.rules) == ["K1", "K2"] for e in stocked)
    assert len(rig.events("stock.intent")) == len(BOXED)  # K2: every opening accounted for
    assert rig.cabinet.session.state == flow.State.IDLE
    assert rig.cabinet.message is not None and rig.cabinet.message.code == "stocked"
    assert alarms(rig) == []  # no key_inserted_unexpectedly, no door_forced
    assert awaiting(rig) == set()
    assert rig.cabinet.screen()["stock"] is None

    # from now on, a stocked key is drawn and returned like any other (K3, K4)
    uid, _ = rig.card_of(dept="ENG")
    slot, fob = await rig.drawn(uid, "U601")
    assert rig.events("key.drawn")[-1].key_number == "U601"
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_return("U601")
    await rig.put_back(fob, slot)
    assert rig.events("key.returned")[-1].key_number == "U601"
    assert alarms(rig) == []


async def test_K2_ending_stocking_early_locks_every_released_slot_and_keeps_the_rest_waiting(
        srig: Rig) -> None:
    rig = srig
    keys, _ = await start_stocking(rig)
    first, rest = BOXED[0], BOXED[1:]
    await rig.put_back(keys[first][1], keys[first][0])
    await rig.cabinet.finish_stock()
    assert rig.cabinet.session.state == flow.State.IDLE
    message = rig.cabinet.message
    assert message is not None and message.code == "close_slot"  # the open ones, named
    for number in rest:
        slot, fob = keys[number]
        assert str(slot) in (message.detail or ("", ""))[0]
        rig.hw.model.shut_slot(slot)
        with pytest.raises(PhysicalError):  # locked again: no key goes in any more
            rig.hw.model.insert(fob, slot)
    await rig.settle()
    assert [e.key_number for e in rig.events("key.stocked")] == [first]
    abandoned = rig.events("stock.abandoned")
    assert sorted(e.key_number or "" for e in abandoned) == sorted(rest)
    assert awaiting(rig) == set(rest)  # still waiting for the next stocking session
    assert alarms(rig) == []


async def test_K1_only_a_custodian_stocks_and_only_keys_awaiting_it(srig: Rig) -> None:
    rig = srig
    uid, _ = rig.card_of(dept="ENG", exclude_roles=(Role.CUSTODIAN,))
    await rig.cabinet.tap(uid)
    assert rig.cabinet.screen()["stock"] is None  # no 上架 button for them
    # K2: a key on record but still in its box is not offered, nor drawn by its number
    offered = {k["key_number"] for k in rig.cabinet.screen()["keys"]}
    assert not offered & set(BOXED) and "U701" in offered
    with pytest.raises(CabinetError) as boxed:
        await rig.cabinet.choose_draw([BOXED[0]], "repair")
    assert boxed.value.code == "key_not_stocked"
    assert rig.cabinet.session.state == flow.State.CHOOSING  # no slot opened
    with pytest.raises(CabinetError) as refused:
        await rig.cabinet.start_stock()
    assert refused.value.code == "stock_not_custodian"
    denied = rig.events("access.denied")[-1]
    assert "stock_not_custodian" in denied.payload and "K1" in json.loads(denied.rules)
    await rig.cabinet.cancel()

    keys, _ = await start_stocking(rig)
    for slot, fob in keys.values():
        await rig.put_back(fob, slot)
    uid, _ = rig.card_of(role=Role.CUSTODIAN)
    await rig.cabinet.tap(uid)
    with pytest.raises(CabinetError) as nothing:
        await rig.cabinet.start_stock()
    assert nothing.value.code == "nothing_to_stock"


async def test_K4_a_key_hung_in_another_keys_slot_is_not_stocked_and_alarms_wrong_slot(
        isrig: Rig) -> None:
    rig = isrig
    keys, _ = await start_stocking(rig)
    (_, fob_a), (slot_b, _) = keys[BOXED[0]], keys[BOXED[1]]
    rig.hw.model.insert(fob_a, slot_b)  # U601's key hung in U602's released slot
    await rig.settle()
    assert rig.events("key.stocked") == []
    wrong = rig.events("stock.wrong_key")[-1]
    assert wrong.key_number == BOXED[1] and f'"hung":"{BOXED[0]}"' in wrong.payload
    assert rig.cabinet.message is not None and rig.cabinet.message.code == "wrong_key"
    assert rig.cabinet.session.state == flow.State.STOCKING  # still open for the right key
    assert alarms(rig) == []  # it may still be taken out and hung right
    await rig.cabinet.finish_stock()
    await rig.settle()
    assert alarms(rig) == ["wrong_slot"]  # left there: K4
    assert awaiting(rig) == set(BOXED)
