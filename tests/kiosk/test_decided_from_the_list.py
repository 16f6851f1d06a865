"""A draw decided from the facts read for the person's list (issue 15, item 1).

At the choice the cabinet reads nothing if nothing has changed since the list was made:
every change a decision depends on is written with an event, the cabinet's listeners hear
every event written in this process, SQLite's commit mark moves with any commit by anyone,
and the intent goes onto the log only if its head has not moved since the list (checked in
the intent's own write transaction). What must hold: a right withdrawn meanwhile, in this
process, by another one or by a bare edit of the database, is weighed at the choice; a
write that lands after the decision and before the intent sends the same choice to be
decided again from fresh reads: refused with its rule if it no longer stands, opened if
it does. Real SQLite, a real second process, the Kerong board simulator.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from rig import Rig
from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession

from kiosk.audit import NewEvent
from kiosk.cabinet.flows.draw import DrawFlow
from kiosk.cabinet.options import CabinetError
from kiosk.services import tx
from kiosk.store.models import AccessRight, Key, Slot

WITHDRAW_EVERY_RIGHT = """
import sys
from pathlib import Path
from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession
from kiosk.audit import NewEvent
from kiosk.config import Settings
from kiosk.runtime import Runtime
from kiosk.services import tx
from kiosk.store.models import AccessRight, Key, Slot
runtime = Runtime.open(Settings(data_dir=Path(sys.argv[1]), cabinet_id="cab-01"))
with tx.write(runtime.audit) as s:
    s.execute(delete(AccessRight))
    tx.log(s, runtime.audit, NewEvent(type="right.withdrawn", payload={"all": True}))
runtime.close()
"""


async def test_K3_a_right_withdrawn_here_between_list_and_choice_is_weighed(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    with tx.write(rig.runtime.audit) as s:  # the admin API, in the daemon's process
        s.execute(delete(AccessRight))
        tx.log(s, rig.runtime.audit, NewEvent(type="right.withdrawn", payload={"all": True}))
    with pytest.raises(CabinetError):
        await rig.cabinet.choose_draw(["U1203"], "repair")
    assert not rig.hw.model.is_unlocked(slot)
    assert rig.events("draw.intent") == []


async def test_K3_a_right_withdrawn_by_another_process_is_weighed_at_the_choice(
        rig: Rig) -> None:
    """Not heard here, but committed: SQLite's commit mark moved, so the choice reads afresh
    and refuses, as it refuses a right withdrawn in this process."""
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    subprocess.run([sys.executable, "-c", WITHDRAW_EVERY_RIGHT,
                    str(rig.runtime.settings.data_dir)], check=True, timeout=120)
    with pytest.raises(CabinetError):
        await rig.cabinet.choose_draw(["U1203"], "repair")
    assert not rig.hw.model.is_unlocked(slot)
    assert rig.events("draw.intent") == []


async def test_K3_a_right_withdrawn_without_an_event_is_weighed_at_the_choice(
        rig: Rig) -> None:
    """An edit straight into the database (no event, another connection) still moves the
    commit mark."""
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    with sqlite3.connect(rig.runtime.settings.data_dir / "kiosk.db") as db:
        db.execute("DELETE FROM access_rights")
    with pytest.raises(CabinetError):
        await rig.cabinet.choose_draw(["U1203"], "repair")
    assert not rig.hw.model.is_unlocked(slot)


def land_before_the_intent(rig: Rig, monkeypatch: pytest.MonkeyPatch,
                           write: Callable[[DbSession], object]) -> None:
    """``write`` (with an event) commits after the choice was decided from the list's facts
    and before its intent: the narrowest window, the one only the intent's head check sees."""
    writer = rig.cabinet.writer
    submit = writer.submit_durable
    landed: list[bool] = []

    def a_write_lands_first(*args: Any, **kwargs: Any) -> Any:
        if not landed:
            landed.append(True)
            with tx.write(rig.runtime.audit) as s:
                write(s)
        return submit(*args, **kwargs)

    monkeypatch.setattr(writer, "submit_durable", a_write_lands_first)


async def test_K3_a_right_withdrawn_between_the_decision_and_the_intent_refuses_the_draw(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The log moved under the decision: the same choice is decided again from fresh reads,
    and the withdrawn right refuses it with its rule: logged, on the screen, nothing opened,
    no intent."""
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)

    def withdraw(s: DbSession) -> None:
        s.execute(delete(AccessRight))
        tx.log(s, rig.runtime.audit, NewEvent(type="right.withdrawn", payload={"all": True}))

    land_before_the_intent(rig, monkeypatch, withdraw)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    monkeypatch.undo()
    await rig.cabinet.writer.drain(5)
    screen = rig.cabinet.screen()
    assert screen["message"]["code"] == "no_access_right"
    assert screen["state"] == "idle"
    assert not rig.hw.model.is_unlocked(slot)
    assert rig.events("draw.intent") == []
    denied = rig.events("access.denied")[-1]
    assert json.loads(denied.payload)["code"] == "no_access_right" and "K3" in denied.rules
    await rig.cabinet.tap(uid)  # and the next visit reads afresh: the right is still gone
    with pytest.raises(CabinetError):
        await rig.cabinet.choose_draw(["U1203"], "repair")
    assert not rig.hw.model.is_unlocked(slot)


async def test_K2_an_unrelated_event_between_the_decision_and_the_intent_still_opens(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting applied from the hub (or any event) lands in the window: the draw is decided
    again, still stands, and opens; its intent follows that event on the log. (Before, the
    draw was refused as stale: seen as a slot that never opened in the fleet's proxy test.)"""
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    land_before_the_intent(rig, monkeypatch, lambda s: tx.log(
        s, rig.runtime.audit, NewEvent(type="fleet.config_applied", payload={"cursor": 7})))
    await rig.cabinet.choose_draw(["U1203"], "repair")
    monkeypatch.undo()
    assert rig.hw.model.is_unlocked(slot), rig.cabinet.screen()["message"]
    applied = rig.events("fleet.config_applied")[-1]
    assert [e.seq for e in rig.events("draw.intent")] == [applied.seq + 1]
    assert rig.cabinet.screen()["message"] is None or \
        rig.cabinet.screen()["message"]["code"] != "decision_stale"


async def test_K2_a_draw_that_now_needs_a_cosigner_is_refused_as_stale(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key's group is made co-signed in the window: the draw cannot wait for a custodian
    on its way to the lock, so it is refused as stale, logged under K2, and nothing opens."""
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)

    def cosigned(s: DbSession) -> None:
        key = s.scalars(select(Key).where(Key.key_number == "U1203")).one()
        key.group.requires_cosign = True
        tx.log(s, rig.runtime.audit, NewEvent(type="key_group.changed",
                                              payload={"requires_cosign": True}))

    land_before_the_intent(rig, monkeypatch, cosigned)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    monkeypatch.undo()
    await rig.cabinet.writer.drain(5)
    assert rig.cabinet.screen()["message"]["code"] == "decision_stale"
    assert not rig.hw.model.is_unlocked(slot)
    assert rig.events("draw.intent") == []
    denied = rig.events("access.denied")[-1]
    assert json.loads(denied.payload)["code"] == "decision_stale" and json.loads(denied.rules) == ["K2"]


async def test_K2_with_nothing_logged_since_the_list_the_draw_opens(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The common case: the choice reads nothing, and its intent goes on the head the list
    saw."""
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    seen = rig.cabinet.visit.prepared
    assert seen is not None

    def no_read(*_: Any) -> Any:
        raise AssertionError("the choice read the person's rights again")

    monkeypatch.setattr(DrawFlow, "context", no_read)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    assert rig.hw.model.is_unlocked(slot)
    assert [e.seq for e in rig.events("draw.intent")] == [seen.head + 1]


async def test_K4_a_refused_draw_leaves_no_head_for_the_return_that_follows(rig: Rig) -> None:
    """A person is refused one key, then returns the one they hold, in the same visit. The
    refusal (decided from the list's facts) logged its denial; the return's intent must not
    be held to the head that draw saw."""
    uid, _ = rig.card_of(dept="ENG")
    slot, fob = await rig.drawn(uid, "U1203")
    await rig.cabinet.tap(uid)
    with pytest.raises(CabinetError):  # K7: a special room waits for its approval
        await rig.cabinet.choose_draw(["E-配电房-B1"], "repair")
    await rig.cabinet.choose_return("U1203")
    assert rig.cabinet.screen()["message"] is None or \
        rig.cabinet.screen()["message"]["code"] != "decision_stale"
    assert rig.hw.model.is_unlocked(slot)
    await rig.put_back(fob, slot)
    assert len(rig.events("key.returned")) == 1


async def test_K2_a_key_given_another_home_meanwhile_is_refused_as_stale(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key is given another home slot in the window: the unlock already queued is for
    the old slot, so the draw is refused as stale (K2, logged) and neither slot opens."""
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)

    def rehomed(s: DbSession) -> None:
        key = s.scalars(select(Key).where(Key.key_number == "U1203")).one()
        homes = select(Key.home_slot_id).where(Key.home_slot_id.is_not(None))
        free = s.scalars(select(Slot).where(Slot.id.not_in(homes))
                         .order_by(Slot.number)).first()
        assert free is not None
        key.home_slot_id = free.id
        moved.append(free.number)
        tx.log(s, rig.runtime.audit, NewEvent(type="key.moved", key_number="U1203",
                                              payload={"slot": free.number}))

    moved: list[int] = []
    land_before_the_intent(rig, monkeypatch, rehomed)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    monkeypatch.undo()
    await rig.cabinet.writer.drain(5)
    assert rig.cabinet.screen()["message"]["code"] == "decision_stale"
    assert not rig.hw.model.is_unlocked(slot) and not rig.hw.model.is_unlocked(moved[0])
    assert rig.events("draw.intent") == []
    assert json.loads(rig.events("access.denied")[-1].payload)["code"] == "decision_stale"

