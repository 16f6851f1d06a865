"""Arming a Kerong board ahead of an unlock (issue 15): the 0x37 (coil time) goes out while
the cabinet makes the unlock's intent durable, so the unlock is one frame on the wire after
it. What must hold: arming opens nothing; every unlock still follows a 0x37 that set its
board to its pulse (K2: no coil on longer than configured); an arming is used once, and
anything that set the board's time since (``lock_all``, another unlock) or too long ago
means the unlock sends its own 0x37 again. Real frames to the board simulator over TCP."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from drivers.errors import PartialStatus
from drivers.locks.kerong import ARM_VALID_S
from drivers.locks.kerong.codec import CMD_SET_UNLOCK_TIME, CMD_UNLOCK
from tests.drivers.test_kerong_device import (  # noqa: F401  (fixtures)
    FakeClock,
    Rig,
    _no_reconnect_pause,
    make_rig,
    sent,
    wait_for,
)


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:  # noqa: F811  (the device tests' fixture)
    return make_rig()


def frames(rig: Rig) -> list[tuple[int, int]]:
    """(command, address) of the 0x37 and 0x31 frames the boards heard, in order."""
    return [(f.cmd, f.addr) for f in list(rig.sim.received)
            if f.cmd in (CMD_SET_UNLOCK_TIME, CMD_UNLOCK)]


def test_K2_arming_opens_nothing_and_the_unlock_after_it_is_one_frame(rig: Rig) -> None:
    rig.bank.lock_all()  # boards at their shortest coil time, as the cabinet starts them
    wait_for(lambda: rig.sim.unlock_time_ms(1) == 10, "lock_all to reach the board")
    rig.sim.received.clear()
    rig.bank.arm(19)
    wait_for(lambda: rig.sim.unlock_time_ms(1) == 500, "the arming to reach the board")
    assert frames(rig) == [(CMD_SET_UNLOCK_TIME, 0x10)]  # board 1's coil time, no 0x31
    assert rig.open_slots() == [] and rig.after_pulse() == []
    rig.sim.received.clear()
    rig.bank.unlock(19)
    assert frames(rig) == [(CMD_UNLOCK, 0x12)]  # only the unlock: its 0x37 went ahead
    assert rig.open_slots() == [19]
    assert rig.sim.pulses[-1] == (1, 3, 500)


def test_K2_an_arming_is_used_by_one_unlock_only(rig: Rig) -> None:
    rig.bank.arm(19)
    rig.bank.unlock(19)  # answered: the boards have heard everything before it
    rig.sim.received.clear()
    rig.bank.unlock(20)  # same board, no arming of its own: the full sequence again
    assert frames(rig) == [(CMD_SET_UNLOCK_TIME, 0x10), (CMD_UNLOCK, 0x13)]


def test_K2_lock_all_after_arming_means_the_unlock_sets_the_time_again(rig: Rig) -> None:
    rig.bank.arm(19)
    rig.bank.lock_all()  # the safe state: every board at 10 ms
    wait_for(lambda: rig.sim.unlock_time_ms(1) == 10, "lock_all to reach the board")
    rig.sim.received.clear()
    rig.bank.unlock(19)
    assert frames(rig) == [(CMD_SET_UNLOCK_TIME, 0x10), (CMD_UNLOCK, 0x12)]
    assert rig.sim.pulses[-1] == (1, 3, 500)  # the configured pulse, not lock_all's 10 ms


def test_K2_an_arming_for_another_pulse_is_not_used(rig: Rig) -> None:
    rig.bank.arm(19, pulse_ms=300)
    wait_for(lambda: rig.sim.unlock_time_ms(1) == 300, "the arming to reach the board")
    rig.sim.received.clear()
    rig.bank.unlock(19)  # the default 500 ms pulse
    assert frames(rig) == [(CMD_SET_UNLOCK_TIME, 0x10), (CMD_UNLOCK, 0x12)]
    assert rig.sim.pulses[-1] == (1, 3, 500)


def test_K2_an_arming_older_than_its_validity_is_sent_again(rig: Rig) -> None:
    clock = FakeClock()
    bank = rig.bank_with(clock=clock)
    bank.arm(19)
    wait_for(lambda: len(frames(rig)) == 1, "the arming to reach the board")
    clock.now += ARM_VALID_S + 0.5  # e.g. the intent waited for a busy database
    rig.sim.received.clear()
    bank.unlock(19)
    assert frames(rig) == [(CMD_SET_UNLOCK_TIME, 0x10), (CMD_UNLOCK, 0x12)]
    assert sent(rig, CMD_UNLOCK) == [0x12]


# ----------------------------------------------- arming when the key is picked on the screen
def test_K2_an_arming_for_a_visit_lasts_as_long_as_asked_and_no_longer(rig: Rig) -> None:
    """The screen arms a picked key's board for the whole choice of a reason (valid_s); an
    unlock that long after still skips its 0x37, one later than that sends it again."""
    clock = FakeClock()
    bank = rig.bank_with(clock=clock)
    assert bank.arm(19, valid_s=60.0) is True
    wait_for(lambda: len(frames(rig)) == 1, "the arming to reach the board")
    clock.now += 45.0  # the person reads the reasons, types one
    rig.sim.received.clear()
    bank.unlock(19)
    assert frames(rig) == [(CMD_UNLOCK, 0x12)]
    rig.sim.received.clear()
    bank.arm(19, valid_s=60.0)
    wait_for(lambda: len(frames(rig)) == 1, "the second arming to reach the board")
    clock.now += 61.0
    rig.sim.received.clear()
    bank.unlock(19)
    assert frames(rig) == [(CMD_SET_UNLOCK_TIME, 0x10), (CMD_UNLOCK, 0x12)]


def test_K2_a_board_still_armed_is_not_sent_its_time_twice(rig: Rig) -> None:
    """The cabinet arms again as it commits the intent; a board the pick armed hears nothing
    more, so the choice is followed by one frame on the wire."""
    assert rig.bank.arm(19, valid_s=60.0) is True
    assert rig.bank.arm(20) is False  # same board (slots 17–32), same pulse
    assert rig.bank.armed_boards() == (1,)
    wait_for(lambda: len(frames(rig)) == 1, "the arming to reach the board")
    assert frames(rig) == [(CMD_SET_UNLOCK_TIME, 0x10)]


def test_K2_disarm_forgets_every_arming_and_sends_nothing(rig: Rig) -> None:
    rig.bank.arm(19, valid_s=60.0)
    wait_for(lambda: len(frames(rig)) == 1, "the arming to reach the board")
    rig.sim.received.clear()
    rig.bank.disarm()  # the visit ended
    assert rig.bank.armed_boards() == ()
    assert frames(rig) == []
    rig.bank.unlock(19)
    assert frames(rig) == [(CMD_SET_UNLOCK_TIME, 0x10), (CMD_UNLOCK, 0x12)]


def test_K2_a_board_that_missed_a_sweep_is_armed_again_before_it_opens(rig: Rig) -> None:
    """A board that stopped answering for a moment may have reset to its default coil time:
    the sweep that found it silent disarms it, so the unlock sets the time again."""
    rig.bank.arm(19, valid_s=60.0)
    wait_for(lambda: rig.sim.unlock_time_ms(1) == 500, "the arming to reach the board")
    rig.sim.set_faults(offline_boards={1})
    with pytest.raises(PartialStatus):
        rig.bank.status()
    assert rig.bank.armed_boards() == ()
    rig.sim.set_faults(offline_boards=set())
    rig.sim.received.clear()
    rig.bank.unlock(19)
    assert frames(rig) == [(CMD_SET_UNLOCK_TIME, 0x10), (CMD_UNLOCK, 0x12)]
