"""The physical cabinet model: latches, pop-open compartments, power, the antenna."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from simulators.cabinet import CabinetModel, PhysicalError


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_latch_frees_a_key_only_while_its_coil_is_energised() -> None:
    clock = Clock()
    m = CabinetModel([1, 2], clock=clock)
    m.load({1: "FOB1"})
    with pytest.raises(PhysicalError, match="locked"):
        m.take(1)
    m.unlock(1, 0.5)
    clock.t = 0.6
    with pytest.raises(PhysicalError, match="locked"):
        m.take(1)
    m.unlock(1, 0.5)
    assert m.take(1) == "FOB1" and not m.key_present(1)


def test_pop_open_compartment_stays_open_until_shut() -> None:
    clock = Clock()
    m = CabinetModel([1], clock=clock, pop_open=True)
    m.load({1: "FOB1"})
    m.unlock(1, 0.5)
    clock.t = 60.0
    m.relock(1)  # the coil dropping does not close a popped door
    assert m.is_unlocked(1) and m.is_popped(1)
    assert m.take(1) == "FOB1"
    m.shut_slot(1)
    assert not m.is_unlocked(1)
    with pytest.raises(PhysicalError, match="locked"):
        m.insert("FOB1", 1)


def test_power_cut_drops_coils_and_nothing_unlocks_until_power_returns() -> None:
    m = CabinetModel([1])
    m.unlock(1, 10)
    m.power_cut()
    assert not m.is_unlocked(1)
    m.unlock(1, 10)
    assert not m.is_unlocked(1)
    m.power_restore()
    m.unlock(1, 10)
    assert m.is_unlocked(1)


def test_a_fob_hangs_in_one_slot_only_and_forced_removal_is_possible() -> None:
    m = CabinetModel([1, 2])
    m.load({1: "FOB1"})
    m.unlock(2, 10)
    with pytest.raises(PhysicalError, match="already in slot 1"):
        m.insert("FOB1", 2)
    assert m.take(1, force=True) == "FOB1"  # tamper: pulled through a locked latch
    seen: list[tuple[str, int | None]] = []
    m.subscribe(lambda what, slot: seen.append((what, slot)))
    m.open_door()
    m.place_tag(object())
    assert seen == [("door", None), ("antenna", None)]


def test_taking_a_tag_away_leaves_a_later_one_on_the_antenna() -> None:
    m = CabinetModel([1])
    badge, fob = object(), object()
    m.place_tag(badge)
    m.place_tag(fob)  # the next person's fob, put down before the badge's hold ran out
    m.remove_tag(badge)
    assert m.antenna is fob
    m.remove_tag(fob)
    assert m.antenna is None
    m.place_tag(badge)
    m.remove_tag()  # no tag named: whatever is there goes
    assert m.antenna is None


def test_saves_from_many_threads_leave_the_file_at_the_cabinets_latest_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """The simulated cabinet keeps its keys across a daemon restart (``persist_to``); its bus
    threads change it at once. The file must end as the cabinet ends, with no save lost to
    another's rename (one temp name was shared: a warning each time, and an older snapshot
    renamed last left a restarted simulator with keys where they no longer were)."""
    model = CabinetModel(slot_numbers=range(1, 41))
    path = tmp_path / "sim-cabinet.json"
    model.persist_to(path)
    start = threading.Barrier(8)

    def jam_and_free(slots: range) -> None:
        start.wait()
        for _ in range(30):
            for slot in slots:
                model.set_jammed(slot, True)
                model.set_jammed(slot, False)
            model.set_jammed(slots[0], True)

    threads = [threading.Thread(target=jam_and_free, args=(range(1 + 5 * i, 6 + 5 * i),))
               for i in range(8)]
    with caplog.at_level(logging.WARNING, logger="simulators.cabinet"):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [r.getMessage() for r in caplog.records] == []
    assert json.loads(path.read_text(encoding="utf-8")) == model.snapshot()
    restarted = CabinetModel(slot_numbers=range(1, 41))
    restarted.persist_to(path)
    assert [n for n, s in restarted.slots.items() if s.jammed] == [1 + 5 * i for i in range(8)]
