"""The first unlock follows its intent's commit on the writer thread itself when the lock
bus is idle (issue 15), and the lock still never moves before the intent is durable (K2,
K10).

The writer thread sends the first unlock the moment the intents commit if nothing is
queued or running on the bus (``kiosk.cabinet.bus``); a bus busy at that moment gets the
unlock from the loop, queued behind its work; a commit that fails opens nothing on either
path. What the lock saw is checked against another connection's view of the database at
the instant the unlock was asked for, with the thread that asked. Real SQLite, the Kerong
board simulator.
"""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
from typing import Any

import pytest
from disk_full import database_full
from rig import Rig

from kiosk.cabinet.flows.draw import DrawFlow
from kiosk.cabinet.opening import FirstUnlock, Opening
from kiosk.cabinet.options import CabinetError


def committed_intents(rig: Rig, slot: int) -> int:
    """``draw.intent`` events for ``slot`` another connection sees: committed ones."""
    with sqlite3.connect(rig.runtime.settings.data_dir / "kiosk.db") as db:
        row = db.execute("SELECT count(*) FROM events WHERE type = 'draw.intent' AND slot = ?",
                         (slot,)).fetchone()
    return int(row[0])


def thread_kind() -> str:
    """Which of the cabinet's threads this is: "writer" or "lockbus" (else its name)."""
    name = threading.current_thread().name
    return next((kind for kind in ("writer", "lockbus") if name.startswith(kind)), name)


@pytest.fixture
def seen(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Each unlock asked of the lock bank, with the intents committed at that instant and
    the thread that asked, and what the writer did with each first slot on its commit."""
    log: dict[str, list[Any]] = {"unlocks": [], "handoffs": []}
    locks = rig.cabinet.locks
    unlock = locks.unlock

    def spying(slot: int) -> None:
        log["unlocks"].append((slot, committed_intents(rig, slot),
                               thread_kind()))
        unlock(slot)

    handoff = Opening.unlock_on_commit

    def spy_handoff(self: Opening, first: FirstUnlock) -> None:
        handoff(self, first)
        log["handoffs"].append(first.opened)

    monkeypatch.setattr(locks, "unlock", spying)
    monkeypatch.setattr(Opening, "unlock_on_commit", spy_handoff)
    return log


async def test_K2_the_writer_unlocks_the_moment_the_intent_commits(
        rig: Rig, seen: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The intent's transaction is held open 0.3 s: nothing opens meanwhile, and the
    writer thread itself sends the unlock once it has committed (the bus was idle)."""
    writer = rig.cabinet.writer
    submit = writer.submit_durable

    def slow_commit(work: Any, *args: Any, **kwargs: Any) -> Any:
        def held(s: Any) -> Any:
            result = work(s)
            time.sleep(0.3)  # in the writer thread, before the commit
            assert not rig.hw.model.is_unlocked(slot)
            return result
        return submit(held, *args, **kwargs)

    monkeypatch.setattr(writer, "submit_durable", slow_commit)
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    assert rig.hw.model.is_unlocked(slot)
    assert seen["unlocks"] == [(slot, 1, "writer")]  # once, with its intent committed
    assert seen["handoffs"] == [True]


async def test_K2_a_busy_bus_gets_the_unlock_from_the_loop_after_its_work(
        rig: Rig, seen: dict[str, list[Any]]) -> None:
    """A bus still talking when the intent commits (a sweep, an arming): the writer leaves
    the unlock alone, and the loop queues it behind that work (never both, never before)."""
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    talking = threading.Event()
    order: list[str] = []

    def long_exchange() -> None:
        talking.set()
        time.sleep(0.3)
        order.append("exchange")

    busy = rig.cabinet.on_bus(long_exchange)
    while not talking.is_set():
        time.sleep(0.001)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    await busy
    assert rig.hw.model.is_unlocked(slot)
    assert seen["handoffs"] == [False]
    assert seen["unlocks"] == [(slot, 1, "lockbus")] and order == ["exchange"]


async def test_K2_an_intent_that_cannot_commit_opens_nothing_on_the_bus(
        rig: Rig, seen: dict[str, list[Any]]) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    with database_full(rig):
        await rig.cabinet.choose_draw(["U1203"], "repair")
    assert rig.cabinet.screen()["message"]["code"] == "storage_fault"
    assert not rig.hw.model.is_unlocked(slot)
    assert seen["unlocks"] == [] and seen["handoffs"] == []  # never asked: no commit
    assert committed_intents(rig, slot) == 0


async def test_K2_two_slots_open_in_order_each_after_the_commit(
        rig: Rig, seen: dict[str, list[Any]]) -> None:
    """A draw of two keys: one transaction for both intents; the first slot opens from the
    writer thread as it commits, the second from the loop on the bus, both after it."""
    uid, _ = rig.card_of(dept="ENG")
    first, _ = rig.key("U1203")
    second, _ = rig.key("U1204")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["U1203", "U1204"], "repair")
    assert rig.hw.model.is_unlocked(first) and rig.hw.model.is_unlocked(second)
    assert seen["unlocks"] == [(first, 1, "writer"), (second, 1, "lockbus")]
    assert seen["handoffs"] == [True]


async def test_no_garbage_collection_between_the_choice_and_the_unlock(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: a collection on the way from the choice to the lock cost nearly every
    choice about 0.1 ms (a full one a millisecond). Collection is off, for every thread,
    from the decision to the unlock frame (sent from the writer thread), and on again once
    the choice is done, refused or not."""
    collecting: dict[str, list[bool]] = {"deciding": [], "unlocking": []}
    locks = rig.cabinet.locks
    unlock = locks.unlock
    plan = DrawFlow.plan

    def timed(slot: int) -> None:
        collecting["unlocking"].append(gc.isenabled())
        unlock(slot)

    def deciding(self: DrawFlow, *args: Any, **kwargs: Any) -> Any:
        collecting["deciding"].append(gc.isenabled())
        return plan(self, *args, **kwargs)

    monkeypatch.setattr(locks, "unlock", timed)
    monkeypatch.setattr(DrawFlow, "plan", deciding)
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    assert gc.isenabled()
    await rig.cabinet.choose_draw(["U1203"], "repair")
    assert rig.hw.model.is_unlocked(slot)
    assert collecting == {"deciding": [False], "unlocking": [False]}
    assert gc.isenabled()
    await rig.cabinet.cancel()
    await rig.cabinet.tap(uid)
    with pytest.raises(CabinetError):
        await rig.cabinet.choose_draw(["NO-SUCH-KEY"], "repair")
    assert gc.isenabled()
