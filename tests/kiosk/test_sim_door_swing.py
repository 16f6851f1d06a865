"""The simulated person's door swing (``KIOSK_SIM_DOOR_SWING_S``): a bench may play a quicker
person, never one faster than the driver's read-back after an unlock (kiosk/wiring.py); and
the simulated bus's speed (``KIOSK_SIM_BAUD``), one of the rates a Kerong board offers."""

from __future__ import annotations

import pytest

from kiosk.demo import load_demo
from kiosk.errors import ConfigError
from kiosk.runtime import Runtime
from kiosk.wiring import (
    DOOR_SWING_ENV,
    DOOR_SWING_S,
    MIN_DOOR_SWING_S,
    SIM_BAUD_ENV,
    build_simulated,
    door_swing_s,
    sim_baud,
)


def test_the_daemon_s_simulated_person_keeps_the_shipped_swing_unless_told() -> None:
    assert door_swing_s({}) == DOOR_SWING_S
    assert door_swing_s({DOOR_SWING_ENV: ""}) == DOOR_SWING_S
    assert door_swing_s({DOOR_SWING_ENV: "0.25"}) == 0.25
    assert door_swing_s({DOOR_SWING_ENV: str(MIN_DOOR_SWING_S)}) == MIN_DOOR_SWING_S


@pytest.mark.parametrize("raw", ["0", "0.01", "0.05", "-1", "11", "fast"])
def test_a_swing_too_quick_for_the_read_back_or_not_a_number_is_refused(raw: str) -> None:
    """0.05 s is refused too: on a loaded machine the read-back after an unlock came later."""
    with pytest.raises(ConfigError, match=DOOR_SWING_ENV):
        door_swing_s({DOOR_SWING_ENV: raw})


def test_the_simulated_bus_runs_at_19200_unless_told_a_rate_a_board_offers() -> None:
    assert sim_baud({}) == 19200
    assert sim_baud({SIM_BAUD_ENV: "115200"}) == 115200
    for raw in ("0", "20000", "fast", "-9600"):
        with pytest.raises(ConfigError, match=SIM_BAUD_ENV):
            sim_baud({SIM_BAUD_ENV: raw})


def test_a_faster_simulated_bus_still_carries_an_unlock_and_a_scan(runtime: Runtime) -> None:
    """The boards and the driver agree on the rate: a scan reads every slot and an unlock
    opens the compartment at 115200 baud as at 19200."""
    load_demo(runtime)
    hw = build_simulated(runtime, persist=False, baud=115200)
    try:
        status = hw.locks.status()
        assert len(status) == len(hw.model.slots)
        slot = min(hw.model.slots)
        hw.locks.unlock(slot)
        assert hw.model.is_popped(slot)
    finally:
        hw.close()
