"""Realistic bugs that once passed the suite, each pinned by a test at the cabinet's own
interface (issue 15, "Tests that bite"; docs/testing.md lists which test catches which).

- A lost or revoked card accepted as the K8 duty manager's second tap at night.
- Start-up never closing a return cut by a power failure (K4/K10): before, only the slow
  crash run (bench/crash_harness.py) caught it; this one needs no process kills.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rig import SH, Rig, close_rig, make_rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit.verify import verify_log
from kiosk.cabinet import Cabinet, calendar_from, options_from
from kiosk.store.models import Card

FRI_11PM = dt.datetime(2026, 11, 27, 23, 0, tzinfo=SH)


@pytest.fixture
async def night(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path, start=FRI_11PM)
    yield r
    await close_rig(r)


def _set_card_status(rig: Rig, uid: str, status: str) -> None:
    with Session(rig.runtime.engine) as s:
        card = s.scalars(select(Card).where(Card.uid == uid)).one()
        card.status = status  # type: ignore[assignment]
        s.commit()


@pytest.mark.parametrize("status", ["lost", "revoked"])
async def test_K8_the_duty_managers_lost_or_revoked_card_does_not_open_at_night(
    night: Rig, status: str
) -> None:
    uid, _ = night.card_of(dept="ENG")
    mgr_uid, _ = night.duty_manager_on(night.clock())
    _set_card_status(night, mgr_uid, status)  # rostered tonight, but the card is gone
    await night.cabinet.tap(uid)
    assert night.cabinet.screen()["state"] == "await_manager"
    night.clock.advance(10)
    await night.cabinet.tap(mgr_uid)
    screen = night.cabinet.screen()
    assert screen["state"] != "choosing", f"a {status} card opened the cabinet at night"
    assert screen["message"]["code"] == f"card_{status}"
    assert night.events("night.pair") == []
    denied = night.events("access.denied")[-1]
    assert "K8" in denied.rules and f"card_{status}" in denied.payload
    assert not any(night.hw.model.is_unlocked(n) for n in range(1, 209))


async def test_K4_K10_a_return_cut_by_a_power_failure_is_closed_at_start_up(
    tmp_path: Path,
) -> None:
    rig = await make_rig(tmp_path)
    uid, person = rig.card_of(dept="ENG")
    slot, fob = await rig.drawn(uid, "U1203")
    assert len(rig.open_loans()) == 1
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_return("U1203")
    assert [e.type for e in rig.events("return.")] == ["return.intent"]
    assert rig.hw.model.is_unlocked(slot)
    # The power fails after the durable intent and the unlock; the key goes back into its
    # popped-open slot while the Pi is dead, so the running daemon never sees it.
    rig.hw.power(False)
    rig.hw.insert(fob, slot)
    rig.hw.power(True)
    assert len(rig.open_loans()) == 1
    cabinet = Cabinet(rig.runtime, rig.hw.locks, calendar=calendar_from(rig.runtime.settings),
                      options=options_from(rig.runtime.settings), clock=rig.clock)
    rig.cabinet = cabinet
    summary = await cabinet.start()
    assert summary["resolved_returns"] == 1
    assert rig.open_loans() == []
    [resolved] = rig.events("return.resolved")
    assert '"outcome":"returned"' in resolved.payload and str(person.id) in resolved.actors
    assert rig.events("alarm.") == []  # the key is where the records now say it is
    await rig.settle()
    assert len(rig.events("return.resolved")) == 1  # resolved once, not at every tick
    result = verify_log(rig.runtime.engine, cabinet_id="cab-01",
                        public_key=rig.runtime.device_key.public)
    assert result.ok, result.problems
    await close_rig(rig)
