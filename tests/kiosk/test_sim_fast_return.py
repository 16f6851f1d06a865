"""A key returned the instant its compartment springs open is a working unlock, not a fault.

The daemon's bench (``bench/bench_daemon.py``) puts a key back through ``/sim/insert`` as
soon as the slot answers, and that call also pushes the compartment door shut. The
simulated cabinet used to latch the door at once, so a return could be over inside the
~25 ms between the Kerong unlock pulse and the driver's read-back: the driver read the slot
locked, reported ``alarm.lock_fault`` ("still reads locked after unlock", K2) for a slot
that had opened, and the key then arrived as ``key_inserted_unexpectedly``. No person can
put a key in and push a sprung door back before it has swung open; the simulator now
holds a door open for that minimum (``kiosk.wiring.DOOR_SWING_S``). The clock here is
the model's, moved by hand, so nothing depends on how fast the machine is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.runtime import Runtime
from kiosk.wiring import DOOR_SWING_S, SimulatedHardware, build_simulated
from simulators.cabinet import CabinetModel
from tests.kiosk.rig import FRI_10AM


class _Clock:
    """The simulated cabinet's clock, moved only by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hw(tmp_path: Path) -> Iterator[SimulatedHardware]:
    runtime = Runtime.open(Settings(data_dir=tmp_path / "var", cabinet_id="cab-01"))
    load_demo(runtime, now=FRI_10AM)
    built = build_simulated(runtime, persist=False, door_swing_s=DOOR_SWING_S)  # as the daemon
    yield built
    built.close()
    runtime.close()


def test_a_key_put_back_the_moment_the_slot_opens_is_a_working_unlock(
    hw: SimulatedHardware,
) -> None:
    clock = _Clock()
    hw.model.clock = clock
    slot = next(n for n in sorted(hw.model.slots) if hw.model.fob_in(n))

    hw.locks.unlock(slot)  # the draw
    fob = hw.take(slot)  # key out, door pushed shut at once
    clock.now += DOOR_SWING_S
    assert hw.locks.status()[slot].locked  # shut after its swing: latched, key gone
    assert not hw.locks.status()[slot].key_present

    returned: list[str] = []

    def fastest_person(what: str, changed: int | None) -> None:
        """Puts the key back and pushes the door as soon as it springs open: while the
        driver's unlock is still between its pulse and its read-back."""
        if what == "slot" and changed == slot and not returned and hw.model.is_popped(slot):
            returned.append(fob)
            hw.insert(fob, slot)

    hw.model.subscribe(fastest_person)
    hw.locks.unlock(slot)  # the return: K2 verifies the release; it must not report a fault

    assert returned == [fob]
    state = hw.locks.status()[slot]
    assert state.key_present and not state.locked  # the door has not swung back yet
    clock.now += DOOR_SWING_S
    assert hw.locks.confirm_locked(slot).key_present  # latched with the key in it


def test_a_sprung_door_latches_no_sooner_than_its_swing() -> None:
    clock = _Clock()
    model = CabinetModel([1], pop_open=True, door_swing_s=0.3, clock=clock)
    model.unlock(1, 0.5)
    model.shut_slot(1)  # pushed at once: still swinging open
    assert model.is_unlocked(1) and not model.is_popped(1)
    clock.now += 0.3
    assert not model.is_unlocked(1)  # latched once it is back

    model.unlock(1, 0.5)
    clock.now += 5.0
    model.shut_slot(1)  # a door shut long after it opened latches at once
    assert not model.is_unlocked(1)
    clock.now += 0.1
    model.unlock(1, 0.5)
    assert model.is_popped(1)  # and springs open again on the next pulse
