"""simulators.gpio_cabinet: the CabinetModel seen through GpioLockBank and the door drivers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory

from drivers.errors import LockFault
from drivers.io import DoorLock, DoorSensor
from drivers.locks.gpio_bank import GpioBankConfig, GpioLockBank, GpioSlotPins
from simulators.cabinet import CabinetModel
from simulators.gpio_cabinet import GpioCabinet

CONFIG = GpioBankConfig(
    slots={
        1: GpioSlotPins(lock=5, key=6, feedback=13),
        2: GpioSlotPins(lock=19, key=26),
        3: GpioSlotPins(lock=20),
    }
)
REED, STRIKE = 17, 27


@pytest.fixture
def model() -> CabinetModel:
    m = CabinetModel(slot_numbers=[1, 2, 3])
    m.load({1: "FOB-A"})
    return m


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


def during_pulse(action: Callable[[], object]) -> Callable[[float], None]:
    """An injected sleep that does ``action`` on the first wait (the pulse) only."""
    done: list[bool] = []

    def sleep(_s: float) -> None:
        if not done:
            done.append(True)
            action()

    return sleep


def test_status_follows_the_model(model: CabinetModel, factory: MockFactory) -> None:
    GpioCabinet(model, factory, CONFIG)
    bank = GpioLockBank(CONFIG, pin_factory=factory, sleep=during_pulse(lambda: model.take(1)))
    before = bank.status()
    assert (before[1].locked, before[1].key_present) == (True, True)
    assert before[2].key_present is False and before[3].key_present is None
    bank.unlock(1, 300)
    after = bank.status()
    assert (after[1].locked, after[1].key_present) == (True, False)
    bank.close()


def test_coil_pin_moves_the_latch(model: CabinetModel, factory: MockFactory) -> None:
    GpioCabinet(model, factory, CONFIG)
    seen: list[bool] = []
    bank = GpioLockBank(
        CONFIG, pin_factory=factory, sleep=during_pulse(lambda: seen.append(model.is_unlocked(2)))
    )
    assert model.is_unlocked(2) is False
    bank.unlock(2)
    assert seen == [True]
    assert model.is_unlocked(2) is False
    bank.close()


def test_returning_a_key_shows_up(model: CabinetModel, factory: MockFactory) -> None:
    GpioCabinet(model, factory, CONFIG)
    bank = GpioLockBank(
        CONFIG, pin_factory=factory, sleep=during_pulse(lambda: model.insert("FOB-Z", 2))
    )
    bank.unlock(2)
    assert bank.status()[2].key_present is True
    assert model.fob_in(2) == "FOB-Z"
    bank.close()


def test_active_low_bank_keeps_the_model_locked_at_start(
    model: CabinetModel, factory: MockFactory
) -> None:
    config = GpioBankConfig(slots=CONFIG.slots, lock_active_high=False)
    GpioCabinet(model, factory, config)
    seen: list[bool] = []
    bank = GpioLockBank(
        config, pin_factory=factory, sleep=during_pulse(lambda: seen.append(model.is_unlocked(3)))
    )
    assert model.is_unlocked(3) is False
    bank.unlock(3)
    assert seen == [True]
    assert model.is_unlocked(3) is False
    bank.close()


def test_a_jammed_latch_is_a_lock_fault(model: CabinetModel, factory: MockFactory) -> None:
    GpioCabinet(model, factory, CONFIG)
    bank = GpioLockBank(CONFIG, pin_factory=factory, sleep=lambda _s: None)
    model.set_jammed(1)
    assert bank.status()[1].locked is False
    with pytest.raises(LockFault):
        bank.unlock(1)
    assert factory.pin(5).state is False
    model.set_jammed(1, False)
    assert bank.status()[1].locked is True
    bank.close()


def test_power_cut_drops_the_latch(model: CabinetModel, factory: MockFactory) -> None:
    GpioCabinet(model, factory, CONFIG)
    bank = GpioLockBank(CONFIG, pin_factory=factory, sleep=during_pulse(model.power_cut))
    bank.unlock(1)
    assert bank.status()[1].locked is True
    bank.close()


def test_door_reed_and_strike(model: CabinetModel, factory: MockFactory) -> None:
    GpioCabinet(model, factory, door_pin=REED, door_lock_pin=STRIKE)
    sensor = DoorSensor(REED, pin_factory=factory, bounce_s=None)
    events: list[str] = []
    sensor.on_open = lambda: events.append("open")
    sensor.on_close = lambda: events.append("close")
    assert sensor.is_open is False
    model.open_door()
    assert sensor.is_open is True
    model.close_door()
    assert events == ["open", "close"]
    seen: list[bool] = []
    lock = DoorLock(STRIKE, pin_factory=factory, sleep=lambda _s: seen.append(model.door_locked))
    lock.unlock(200)
    assert seen == [False]
    assert model.door_locked is True
    lock.close()
    sensor.close()


def test_inputs_built_after_binding_still_show_the_model(
    model: CabinetModel, factory: MockFactory
) -> None:
    GpioCabinet(model, factory, CONFIG)
    key = DigitalInputDevice(6, pull_up=True, pin_factory=factory)  # pull-up drives it high
    assert key.is_active is True  # ...and the simulator puts the key's level back
    key.close()


def test_bind_before_the_drivers(model: CabinetModel, factory: MockFactory) -> None:
    bank = GpioLockBank(CONFIG, pin_factory=factory)
    with pytest.raises(ValueError, match="before the drivers"):
        GpioCabinet(model, factory, CONFIG)
    bank.close()


def test_bank_slots_must_exist_in_the_model(factory: MockFactory) -> None:
    with pytest.raises(ValueError, match="slot 3"):
        GpioCabinet(CabinetModel(slot_numbers=[1, 2]), factory, CONFIG)


def test_close_stops_mirroring(model: CabinetModel, factory: MockFactory) -> None:
    sim = GpioCabinet(model, factory, CONFIG)
    bank = GpioLockBank(CONFIG, pin_factory=factory, sleep=lambda _s: None)
    sim.close()
    bank.unlock(3)
    assert model.is_unlocked(3) is False
    model.take(1, force=True)
    assert bank.status()[1].key_present is True  # the pin kept its last level
    bank.close()
