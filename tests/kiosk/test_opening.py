"""The unlock follows its intent's commit on the bus thread itself (issue 15), and the lock
still never moves before the intent is durable (K2, K10).

The bus thread waits on the intent's commit and sends the unlock the moment it lands; a
commit slower than ``HANDOFF_WAIT_S`` leaves the unlock to the loop once the commit is in;
a commit that fails opens nothing on either path. What the lock saw is checked against
another connection's view of the database at the instant the unlock was asked for. Real
SQLite, the Kerong board simulator.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
from disk_full import database_full
from rig import Rig

from kiosk.cabinet import opening
from kiosk.cabinet.opening import Opening


def committed_intents(rig: Rig, slot: int) -> int:
    """``draw.intent`` events for ``slot`` another connection sees: committed ones."""
    with sqlite3.connect(rig.runtime.settings.data_dir / "kiosk.db") as db:
        row = db.execute("SELECT count(*) FROM events WHERE type = 'draw.intent' AND slot = ?",
                         (slot,)).fetchone()
    return int(row[0])


@pytest.fixture
def seen(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Each unlock asked of the lock bank, with the intents committed at that instant, and
    what each bus hand-off returned (True: it unlocked on the commit)."""
    log: dict[str, list[Any]] = {"unlocks": [], "handoffs": []}
    locks = rig.cabinet.locks
    unlock = locks.unlock

    def spying(slot: int) -> None:
        log["unlocks"].append((slot, committed_intents(rig, slot)))
        unlock(slot)

    handoff = Opening._unlock_on_commit

    def spy_handoff(self: Opening, committed: Any, slot: int) -> bool:
        result = handoff(self, committed, slot)
        log["handoffs"].append(result)
        return result

    monkeypatch.setattr(locks, "unlock", spying)
    monkeypatch.setattr(Opening, "_unlock_on_commit", spy_handoff)
    return log


@pytest.mark.parametrize("wait_s", [5.0, 0.01], ids=["bus_waits_on_the_commit", "loop_unlocks"])
async def test_K2_the_lock_moves_only_once_its_intent_is_committed(
        rig: Rig, seen: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch,
        wait_s: float) -> None:
    """The intent's transaction is held open 0.5 s: the bus waits it out (5 s) or gives up
    after 0.01 s and leaves the unlock to the loop, whatever the machine's load."""
    monkeypatch.setattr(opening, "HANDOFF_WAIT_S", wait_s)
    writer = rig.cabinet.writer
    submit = writer.submit_durable

    def slow_commit(work: Any, *args: Any, **kwargs: Any) -> Any:
        def held(s: Any) -> Any:
            result = work(s)
            time.sleep(0.5)  # in the writer thread, before the commit
            return result
        return submit(held, *args, **kwargs)

    monkeypatch.setattr(writer, "submit_durable", slow_commit)
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    assert rig.hw.model.is_unlocked(slot)
    assert seen["unlocks"] == [(slot, 1)]  # once, with its intent already committed
    # the hand-off unlocked it itself (5 s wait), or gave up after 0.01 s and left it to the loop
    assert seen["handoffs"] == [wait_s > 0.5]


async def test_K2_an_intent_that_cannot_commit_opens_nothing_on_the_bus(
        rig: Rig, seen: dict[str, list[Any]]) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    with database_full(rig):
        await rig.cabinet.choose_draw(["U1203"], "repair")
    assert rig.cabinet.screen()["message"]["code"] == "storage_fault"
    assert not rig.hw.model.is_unlocked(slot)
    assert seen["unlocks"] == [] and seen["handoffs"] == [False]
    assert committed_intents(rig, slot) == 0


async def test_K2_two_slots_open_in_order_each_after_the_commit(
        rig: Rig, seen: dict[str, list[Any]]) -> None:
    """A draw of two keys: one transaction for both intents; the first slot opens on the
    bus's hand-off, the second from the loop, both after the commit."""
    uid, _ = rig.card_of(dept="ENG")
    first, _ = rig.key("U1203")
    second, _ = rig.key("U1204")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["U1203", "U1204"], "repair")
    assert rig.hw.model.is_unlocked(first) and rig.hw.model.is_unlocked(second)
    assert sorted(seen["unlocks"]) == [(first, 1), (second, 1)]
    assert seen["handoffs"] == [True]
