"""Issue 13: the return timer while a wrong key is swapped for the right one (K4).

On an identity cabinet a wrong key hung in the open slot keeps the slot open and the screen
tells the person to take it out and hang the right one. That swap takes time: the return's
timer restarts when the wrong key is detected and again when it comes back out, so the
person is not cut off halfway through doing what the screen asked. Driven on the cabinet's
controllable clock, through the real drivers against the DS2482 and Kerong simulators.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rig import Rig, close_rig, make_rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk import session as flow
from kiosk.store.models import Alarm, Key

IDENTITY: dict[str, Any] = {"hardware": {"identity": {"enabled": True}}}
PUT_BACK_S = 30  # the default return_timeout_s


@pytest.fixture
async def irig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path, **IDENTITY)
    yield r
    await close_rig(r)


def keys_out(rig: Rig) -> set[str]:
    with Session(rig.runtime.engine) as s:
        ids = {loan.key_id for loan in rig.open_loans()}
        return set(s.scalars(select(Key.key_number).where(Key.id.in_(ids))))


async def return_with_wrong_key_hung(rig: Rig) -> tuple[int, str, str]:
    """U606 and U701 out; 归还 U606 and, 25 s into the return, U701 hung in its slot."""
    uid, _ = rig.card_of(dept="ENG")
    slot606, fob606 = await rig.drawn(uid, "U606")
    _, fob701 = await rig.drawn(uid, "U701")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_return("U606")
    rig.clock.advance(PUT_BACK_S - 5)
    await rig.put_back(fob701, slot606)
    assert rig.cabinet.message is not None and rig.cabinet.message.code == "wrong_key"
    return slot606, fob606, fob701


async def test_K4_the_return_timer_restarts_for_the_swap(irig: Rig) -> None:
    rig = irig
    slot606, fob606, _ = await return_with_wrong_key_hung(rig)
    # the screen's countdown starts again from the full return time when the person is told
    assert rig.cabinet.screen()["seconds_left"] == PUT_BACK_S

    rig.clock.advance(PUT_BACK_S - 5)  # 50 s after 归还: past the first deadline
    await rig.settle()
    assert rig.cabinet.session.state == flow.State.RETURNING
    assert rig.hw.model.is_unlocked(slot606)

    await rig.take(slot606)  # the wrong key comes out: time again to hang the right one
    assert rig.cabinet.screen()["seconds_left"] == PUT_BACK_S
    # and the screen no longer says "not the key for this slot", but to put the key back
    assert rig.cabinet.message is not None and rig.cabinet.message.code == "put_back"
    rig.clock.advance(PUT_BACK_S - 5)
    await rig.settle()
    assert rig.cabinet.session.state == flow.State.RETURNING

    await rig.put_back(fob606, slot606)
    assert keys_out(rig) == {"U701"}
    assert rig.events("key.returned")[-1].key_number == "U606"


async def test_K4_a_swap_left_unfinished_still_times_out_and_raises_wrong_slot(irig: Rig) -> None:
    """The timer restarts, it does not stop: a person who walks away from the wrong key
    still ends the return, the slot locks and ``wrong_slot`` names the key left there."""
    rig = irig
    slot606, _, _ = await return_with_wrong_key_hung(rig)
    rig.hw.model.shut_slot(slot606)
    rig.clock.advance(PUT_BACK_S + 1)
    await rig.settle(2)
    assert rig.cabinet.session.state == flow.State.IDLE
    assert keys_out(rig) == {"U606", "U701"}
    with Session(rig.runtime.engine) as s:
        alarms = list(s.scalars(select(Alarm).where(Alarm.kind == "wrong_slot")))
    assert len(alarms) == 1 and "U701" in alarms[0].message
