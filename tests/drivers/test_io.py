"""Door sensor, door lock, slot LEDs and buzzer on gpiozero's MockFactory."""

from __future__ import annotations

import sys

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.errors import DriverError
from drivers.io import (
    BeepPattern,
    CabinetBuzzer,
    DoorLock,
    DoorSensor,
    InputWiring,
    PulsedOutput,
    SlotLeds,
    make_pin_factory,
    safety,
)
from drivers.locks.base import HARD_MAX_PULSE_MS

REED, STRIKE, BUZZER = 17, 27, 22


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


def levels(factory: MockFactory, pin: int) -> list[bool]:
    return [bool(s.state) for s in factory.pin(pin).states]


# -- door sensor ---------------------------------------------------------------------------
def test_door_sensor_reports_and_calls_back(factory: MockFactory) -> None:
    sensor = DoorSensor(REED, pin_factory=factory, bounce_s=None)
    events: list[str] = []
    sensor.on_open = lambda: events.append("open")
    sensor.on_close = lambda: events.append("close")
    reed = factory.pin(REED)
    assert sensor.is_open is True  # pull-up, reed open: no magnet, door open
    reed.drive_low()  # magnet at the reed: switch closed to GND
    assert sensor.is_open is False
    reed.drive_high()
    assert sensor.is_open is True
    reed.drive_low()
    assert events == ["close", "open", "close"]
    sensor.close()


def test_door_sensor_inverted_switch(factory: MockFactory) -> None:
    sensor = DoorSensor(
        REED,
        pin_factory=factory,
        wiring=InputWiring(pull_up=False),
        closed_when_active=False,
        bounce_s=None,
    )
    events: list[str] = []
    sensor.on_open = lambda: events.append("open")
    factory.pin(REED).drive_high()  # switch to 3V3 that closes when the door opens
    assert sensor.is_open is True
    assert events == ["open"]
    sensor.close()


def test_a_failing_door_callback_does_not_silence_the_sensor(factory: MockFactory) -> None:
    sensor = DoorSensor(REED, pin_factory=factory, bounce_s=None)
    events: list[str] = []

    def broken() -> None:
        raise RuntimeError("handler bug")

    sensor.on_open = broken
    sensor.on_close = lambda: events.append("close")
    factory.pin(REED).drive_high()
    factory.pin(REED).drive_low()
    assert events == ["close"]
    sensor.close()


def test_input_wiring_refuses_what_gpiozero_refuses() -> None:
    with pytest.raises(ValueError):
        InputWiring(pull_up=None)
    with pytest.raises(ValueError):
        InputWiring(pull_up=True, active_state=False)
    assert InputWiring().active_level is False
    assert InputWiring(pull_up=False).active_level is True
    assert InputWiring(pull_up=None, active_state=False).active_level is False


# -- door lock -----------------------------------------------------------------------------
def test_door_lock_pulses_capped_and_comes_back_off(factory: MockFactory) -> None:
    waits: list[float] = []
    lock = DoorLock(STRIKE, pin_factory=factory, max_pulse_ms=700, sleep=waits.append)
    assert lock.unlock(5000) == 700
    assert waits == [pytest.approx(0.7)]
    assert levels(factory, STRIKE) == [False, True, False]
    lock.close()


def test_active_low_door_lock(factory: MockFactory) -> None:
    lock = DoorLock(STRIKE, pin_factory=factory, active_high=False, sleep=lambda _s: None)
    lock.unlock(200)
    assert levels(factory, STRIKE) == [False, True, False, True]
    lock.close()


def test_door_lock_de_energises_on_exception_and_exit(factory: MockFactory) -> None:
    def sleep(_s: float) -> None:
        assert lock.energised
        safety.lock_everything()  # atexit firing mid-pulse
        assert not lock.energised
        raise KeyboardInterrupt

    lock = DoorLock(STRIKE, pin_factory=factory, sleep=sleep)
    with pytest.raises(KeyboardInterrupt):
        lock.unlock()
    assert not lock.energised
    lock.close()
    assert lock not in safety.registered()
    lock.close()


def test_pulsed_output_refuses_a_cap_above_the_coil_rating(factory: MockFactory) -> None:
    with pytest.raises(ValueError):
        PulsedOutput(STRIKE, pin_factory=factory, max_pulse_ms=HARD_MAX_PULSE_MS + 1)
    with pytest.raises(ValueError):
        PulsedOutput(STRIKE, pin_factory=factory, max_pulse_ms=0)


# -- LEDs ----------------------------------------------------------------------------------
def test_slot_leds(factory: MockFactory) -> None:
    leds = SlotLeds({1: 20, 2: 21}, pin_factory=factory)
    assert leds.slots == (1, 2)
    leds.set(2, True)
    assert leds.is_lit(2) and not leds.is_lit(1)
    assert factory.pin(21).state is True
    leds.set(7, True)  # no LED on slot 7: nothing happens
    assert leds.is_lit(7) is False
    leds.blink(1)
    leds.all_off()
    assert factory.pin(20).state is False and factory.pin(21).state is False
    leds.close()


def test_active_low_leds_and_a_cabinet_without_leds(factory: MockFactory) -> None:
    leds = SlotLeds({3: 20}, pin_factory=factory, active_high=False)
    assert factory.pin(20).state is True  # dark
    leds.set(3, True)
    assert factory.pin(20).state is False
    leds.close()
    none = SlotLeds({}, pin_factory=factory)
    none.set(1, True)
    none.blink(1)
    none.all_off()
    assert none.slots == ()
    none.close()


# -- buzzer --------------------------------------------------------------------------------
def test_buzzer_plays_a_pattern(factory: MockFactory) -> None:
    buzzer = CabinetBuzzer(BUZZER, pin_factory=factory)
    buzzer.beep(BeepPattern(0.001, 0.001, 3), background=False)
    assert levels(factory, BUZZER) == [False, True, False, True, False, True, False]
    buzzer.close()


def test_buzzer_named_patterns_alarm_and_silence(factory: MockFactory) -> None:
    buzzer = CabinetBuzzer(BUZZER, pin_factory=factory)
    with pytest.raises(KeyError):
        buzzer.beep("fanfare")
    buzzer.alarm(on_s=10, off_s=10)
    buzzer.silence()
    assert not buzzer.sounding
    assert factory.pin(BUZZER).state is False
    buzzer.close()


def test_beep_pattern_validation() -> None:
    with pytest.raises(ValueError):
        BeepPattern(0, 0.1, 1)
    with pytest.raises(ValueError):
        BeepPattern(0.1, 0.1, 0)


# -- pin factory ---------------------------------------------------------------------------
def test_simulated_mode_gets_mock_pins() -> None:
    assert isinstance(make_pin_factory("simulated"), MockFactory)
    with pytest.raises(ValueError):
        make_pin_factory("maybe")


def test_real_mode_without_lgpio_is_a_driver_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lgpio", None)  # as on any machine that is not a Pi
    monkeypatch.delitem(sys.modules, "gpiozero.pins.lgpio", raising=False)
    with pytest.raises(DriverError, match="lgpio"):
        make_pin_factory("real")
