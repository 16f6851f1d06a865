"""The simulated person's door swing (``KIOSK_SIM_DOOR_SWING_S``): a bench may play a quicker
person, never one faster than the driver's read-back after an unlock (kiosk/wiring.py)."""

from __future__ import annotations

import pytest

from kiosk.errors import ConfigError
from kiosk.wiring import DOOR_SWING_ENV, DOOR_SWING_S, MIN_DOOR_SWING_S, door_swing_s


def test_the_daemon_s_simulated_person_keeps_the_shipped_swing_unless_told() -> None:
    assert door_swing_s({}) == DOOR_SWING_S
    assert door_swing_s({DOOR_SWING_ENV: ""}) == DOOR_SWING_S
    assert door_swing_s({DOOR_SWING_ENV: "0.1"}) == 0.1


@pytest.mark.parametrize("raw", ["0", "0.01", "-1", "11", "fast"])
def test_a_swing_too_quick_for_the_read_back_or_not_a_number_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match=DOOR_SWING_ENV):
        door_swing_s({DOOR_SWING_ENV: raw})
    assert MIN_DOOR_SWING_S > 0.025  # longer than the unlock-to-read-back time (~25 ms)
