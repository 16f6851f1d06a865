"""GpioLockBank on gpiozero's MockFactory: pins, polarity, pulse cap, feedback, safe states."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

import pytest
from gpiozero import OutputDevice
from gpiozero.pins.mock import MockFactory

from drivers.errors import LockBoardError, LockFault
from drivers.io import safety
from drivers.io.pins import InputWiring
from drivers.locks.base import HARD_MAX_PULSE_MS, LockBank
from drivers.locks.gpio_bank import GpioBankConfig, GpioLockBank, GpioSlotPins

LOCK1, LOCK2, KEY1, KEY2, FB1 = 5, 6, 13, 19, 26


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


def config(**overrides: object) -> GpioBankConfig:
    slots = {
        1: GpioSlotPins(lock=LOCK1, key=KEY1, feedback=FB1),
        2: GpioSlotPins(lock=LOCK2, key=KEY2),
    }
    return GpioBankConfig(slots=slots, **overrides)  # type: ignore[arg-type]


class Recorder:
    """An injected sleep: records each wait and runs an optional hook mid-pulse."""

    def __init__(self, hook: Callable[[float], None] | None = None) -> None:
        self.waits: list[float] = []
        self.hook = hook

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.hook is not None:
            self.hook(seconds)


def test_is_a_lock_bank(factory: MockFactory) -> None:
    bank = GpioLockBank(config(), pin_factory=factory)
    assert isinstance(bank, LockBank)
    assert bank.slots == (1, 2)
    bank.close()


def test_unlock_pulses_only_that_slots_pin(factory: MockFactory) -> None:
    seen: list[bool] = []
    sleep = Recorder(lambda _s: seen.append(factory.pin(LOCK1).state))
    bank = GpioLockBank(config(), pin_factory=factory, sleep=sleep)
    factory.pin(FB1).drive_low()  # feedback active (pull-up) = latch home
    bank.unlock(1, 300)
    assert seen == [True]  # energised during the wait
    factory.pin(LOCK1).assert_states([False, True, False])
    assert [s.state for s in factory.pin(LOCK1).states] == [False, True, False]
    assert [s.state for s in factory.pin(LOCK2).states] == [False]
    assert sleep.waits[0] == pytest.approx(0.3)
    bank.close()


def test_active_low_bank_inverts_the_pin(factory: MockFactory) -> None:
    bank = GpioLockBank(config(lock_active_high=False), pin_factory=factory, sleep=Recorder())
    assert factory.pin(LOCK2).state is True  # idle high = coil off on an active-low stage
    bank.unlock(2, 100)
    assert [s.state for s in factory.pin(LOCK2).states] == [False, True, False, True]
    assert bank.status()[2].locked is True
    bank.close()


@pytest.mark.parametrize(
    ("configured", "requested", "expected_s"),
    [(300, 5000, 0.3), (HARD_MAX_PULSE_MS, 60_000, HARD_MAX_PULSE_MS / 1000), (800, None, 0.5)],
)
def test_pulse_is_capped(
    factory: MockFactory, configured: int, requested: int | None, expected_s: float
) -> None:
    sleep = Recorder()
    bank = GpioLockBank(config(max_pulse_ms=configured), pin_factory=factory, sleep=sleep)
    factory.pin(FB1).drive_low()
    bank.unlock(2, requested)
    assert sleep.waits == [pytest.approx(expected_s)]
    bank.close()


def test_configured_cap_above_the_coil_rating_is_refused() -> None:
    with pytest.raises(ValueError, match="max_pulse_ms"):
        config(max_pulse_ms=HARD_MAX_PULSE_MS + 1)


def test_bad_requests_never_touch_a_pin(factory: MockFactory) -> None:
    bank = GpioLockBank(config(), pin_factory=factory, sleep=Recorder())
    with pytest.raises(ValueError, match="positive"):
        bank.unlock(1, 0)
    with pytest.raises(ValueError, match="slot 9"):
        bank.unlock(9)
    assert [s.state for s in factory.pin(LOCK1).states] == [False]
    bank.close()


def test_feedback_that_stays_open_is_a_lock_fault(factory: MockFactory) -> None:
    sleep = Recorder()
    bank = GpioLockBank(config(feedback_settle_ms=100), pin_factory=factory, sleep=sleep)
    factory.pin(FB1).drive_high()  # pull-up, switch open: bolt not home
    with pytest.raises(LockFault) as info:
        bank.unlock(1, 200)
    assert info.value.slot == 1
    assert factory.pin(LOCK1).state is False  # coil is off all the same
    assert sleep.waits[1:] == [pytest.approx(0.01)] * 10  # polled for the settle time
    assert bank.status()[1].locked is False
    bank.close()


def test_feedback_that_settles_late_is_fine(factory: MockFactory) -> None:
    pin = factory.pin(FB1)

    def hook(_s: float) -> None:
        if len(sleep.waits) == 4:  # the pulse and three polls later, the bolt drops home
            pin.drive_low()

    sleep = Recorder(hook)
    bank = GpioLockBank(config(), pin_factory=factory, sleep=sleep)
    pin.drive_high()
    bank.unlock(1, 100)
    assert bank.status()[1].locked is True
    bank.close()


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exception_mid_pulse_drives_every_output_locked(
    factory: MockFactory, error: BaseException
) -> None:
    def hook(_s: float) -> None:
        assert factory.pin(LOCK1).state is True
        raise error

    bank = GpioLockBank(config(), pin_factory=factory, sleep=Recorder(hook))
    factory.pin(FB1).drive_low()
    with pytest.raises(type(error)):
        bank.unlock(1, 500)
    assert factory.pin(LOCK1).state is False
    assert factory.pin(LOCK2).state is False
    assert all(state.locked for state in bank.status().values())
    bank.close()


def test_close_mid_pulse_locks_and_releases_everything(factory: MockFactory) -> None:
    bank: GpioLockBank

    def hook(_s: float) -> None:
        bank.close()  # e.g. shutdown from another thread

    bank = GpioLockBank(config(), pin_factory=factory, sleep=Recorder(hook))
    with pytest.raises(LockBoardError, match="closed"):
        bank.unlock(2, 500)
    assert [s.state for s in factory.pin(LOCK2).states] == [False, True, False]
    with pytest.raises(LockBoardError):
        bank.status()
    with pytest.raises(LockBoardError):
        bank.unlock(1)
    bank.close()  # idempotent
    again = OutputDevice(LOCK2, pin_factory=factory)  # the pin was released
    again.close()


def test_status_reads_key_switches(factory: MockFactory) -> None:
    bank = GpioLockBank(config(), pin_factory=factory)
    factory.pin(FB1).drive_low()
    factory.pin(KEY1).drive_low()  # microswitch closed to GND: key present
    factory.pin(KEY2).drive_high()
    status = bank.status()
    assert (status[1].locked, status[1].key_present) == (True, True)
    assert (status[2].locked, status[2].key_present) == (True, False)
    bank.close()


def test_slots_without_sensors_report_none(factory: MockFactory) -> None:
    bank = GpioLockBank(GpioBankConfig(slots={4: GpioSlotPins(lock=LOCK1)}), pin_factory=factory)
    assert bank.status()[4].key_present is None
    bank.close()


def test_key_wiring_with_external_pull_down(factory: MockFactory) -> None:
    wiring = InputWiring(pull_up=None, active_state=True)
    bank = GpioLockBank(config(key_wiring=wiring), pin_factory=factory)
    factory.pin(KEY1).drive_high()
    factory.pin(KEY2).drive_low()
    assert bank.status()[1].key_present is True
    assert bank.status()[2].key_present is False
    bank.close()


def test_exit_hook_locks_open_banks_and_forgets_closed_ones(factory: MockFactory) -> None:
    bank: GpioLockBank

    def hook(_s: float) -> None:
        assert bank in safety.registered()
        safety.lock_everything()  # what atexit would run now
        assert factory.pin(LOCK1).state is False

    bank = GpioLockBank(config(), pin_factory=factory, sleep=Recorder(hook))
    factory.pin(FB1).drive_low()
    bank.unlock(1, 500)
    bank.close()
    assert bank not in safety.registered()


def test_exit_registry_does_not_keep_banks_alive(factory: MockFactory) -> None:
    bank = GpioLockBank(config(), pin_factory=factory)
    ref = weakref.ref(bank)
    assert bank in safety.registered()
    del bank
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize(
    "slots",
    [
        {1: GpioSlotPins(lock=5), 2: GpioSlotPins(lock="GPIO5")},
        {1: GpioSlotPins(lock=5, key="BCM5")},
        {0: GpioSlotPins(lock=5)},
        {},
    ],
)
def test_bad_wiring_is_a_start_up_error(slots: dict[int, GpioSlotPins]) -> None:
    with pytest.raises(ValueError):
        GpioBankConfig(slots=slots)


def test_a_pin_failure_at_build_releases_what_was_claimed(factory: MockFactory) -> None:
    taken = OutputDevice(LOCK2, pin_factory=factory)
    with pytest.raises(Exception, match="GPIO6"):
        GpioLockBank(config(), pin_factory=factory)
    taken.close()
    GpioLockBank(config(), pin_factory=factory).close()  # LOCK1 etc. were released
