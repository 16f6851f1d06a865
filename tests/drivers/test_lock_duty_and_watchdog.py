"""Issue 13, item 4: coil on-time caps that survive lost frames, a duty-cycle limit on every
lock driver, and outputs left at their locked level on close.

What a person would notice: a coil that stays hot (and a slot left open) after a lost
frame, or after three quick presses of 重试. The coil's on-time is measured where a meter
would measure it: in the simulated board (Modbus), the simulated bus (Kerong), the pin
(GPIO). Waits are bounded polls, never timing assertions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from gpiozero.pins.mock import MockFactory
from pymodbus.client import ModbusTcpClient

from drivers.errors import DriverError, DutyCycleExceeded, LockBoardError
from drivers.locks.duty import DutyCycle, DutyLimit
from drivers.locks.gpio_bank import GpioBankConfig, GpioLockBank, GpioSlotPins
from drivers.locks.kerong import KerongLockBank
from drivers.locks.modbus_relay import ModbusRelayBank, ModbusRelayConfig
from simulators.cabinet import CabinetModel
from simulators.kerong_board import KerongBoardServer, KerongBoardSim
from simulators.modbus_board import (
    RelayBoardSim,
    RunningBoard,
    run_in_thread,
)

CAP_MS = 800
CHANNELS = 8


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- the limiter itself ---------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cooldown_and_pulses_per_minute() -> None:
    clock = Clock()
    duty = DutyCycle(DutyLimit(pulses_per_minute=3, cooldown_ms=2000), clock=clock)
    duty.admit(1, 500)
    with pytest.raises(DutyCycleExceeded, match="cooling down") as refused:
        duty.admit(1, 500)
    assert refused.value.retry_after_s == pytest.approx(2.5)
    duty.admit(2, 500)  # another coil is not affected
    for _ in range(2):
        clock.now += 2.5
        duty.admit(1, 500)
    clock.now += 2.5
    with pytest.raises(DutyCycleExceeded, match="3 pulses in the last minute"):
        duty.admit(1, 500)
    clock.now += 60
    duty.admit(1, 500)
    with pytest.raises(ValueError):
        DutyLimit(pulses_per_minute=0)


# -- Modbus ---------------------------------------------------------------------------------
@pytest.fixture
def model() -> CabinetModel:
    m = CabinetModel(slot_numbers=range(1, CHANNELS + 1))
    m.load({1: "FOB-A", 2: "FOB-B"})
    return m


@pytest.fixture
def relay(model: CabinetModel) -> Iterator[tuple[RelayBoardSim, RunningBoard]]:
    sim = RelayBoardSim(model, ModbusRelayConfig(channels=CHANNELS))
    running = run_in_thread(model, board=sim)
    yield sim, running
    running.stop()


# The lost-frame, coil-cap, dead-board and unplugged-adapter tests of the Modbus driver run
# over a pty pair and over TCP in tests/drivers/test_modbus_field_faults.py.


def test_the_simulated_board_refuses_coils_it_does_not_have(
    relay: tuple[RelayBoardSim, RunningBoard],
) -> None:
    _sim, running = relay
    client = ModbusTcpClient(running.host, port=running.port, timeout=1)
    try:
        assert client.connect()
        reply = client.read_coils(0, count=CHANNELS + 1)
        assert reply.isError() and reply.exception_code == 2  # ILLEGAL DATA ADDRESS
        reply = client.write_coil(CHANNELS, True)
        assert reply.isError() and reply.exception_code == 2
    finally:
        client.close()
    # A driver configured for 16 channels on this 8-channel board is told so at once.
    wrong = ModbusRelayBank.from_url(running.url(), ModbusRelayConfig(channels=16), timeout_s=0.2)
    with pytest.raises(LockBoardError, match="Modbus exception code 2"):
        wrong.status()
    wrong.close()


# -- three back-to-back unlocks against the duty-cycle limit, on every driver -------------------
LIMIT = DutyLimit(pulses_per_minute=6, cooldown_ms=5000)


# Modbus: test_three_quick_unlocks_pulse_the_coil_once in test_modbus_field_faults.py (pty, TCP).


def test_three_quick_unlocks_on_kerong_pulse_the_coil_once() -> None:
    model = CabinetModel(range(1, 17), pop_open=True)
    sim = KerongBoardSim(model, boards=1)
    with KerongBoardServer(sim) as server:
        bank = KerongLockBank(server.url, {n: (0, n) for n in range(1, 17)}, duty=LIMIT,
                              max_pulse_ms=CAP_MS, register_atexit=False, reply_timeout_s=0.2)
        bank.unlock(1)
        for _ in range(2):
            with pytest.raises(DutyCycleExceeded):
                bank.unlock(1)
        assert [ms for b, c, ms in sim.pulses if (b, c) == (0, 1)] == [500]
        bank.close()


def test_three_quick_unlocks_on_gpio_pulse_the_coil_once() -> None:
    factory = MockFactory()
    bank = GpioLockBank(GpioBankConfig(slots={1: GpioSlotPins(lock=17)}, max_pulse_ms=CAP_MS),
                        pin_factory=factory, sleep=lambda _s: None, duty=LIMIT)
    pin = factory.pin(17)
    bank.unlock(1, 500)
    for _ in range(2):
        with pytest.raises(DriverError, match="cooling down"):
            bank.unlock(1, 500)
    rises = [s for prev, s in zip(pin.states, pin.states[1:], strict=False)
             if s.state and not prev.state]
    assert len(rises) == 1  # before issue 13: three pulses, 2.4 s of coil time
    bank.close()


@pytest.mark.parametrize(("active_high", "pull"), [(True, "down"), (False, "up")])
def test_gpio_close_leaves_each_output_pulled_to_locked(active_high: bool, pull: str) -> None:
    factory = MockFactory()
    bank = GpioLockBank(
        GpioBankConfig(slots={1: GpioSlotPins(lock=17), 2: GpioSlotPins(lock=27)},
                       lock_active_high=active_high),
        pin_factory=factory,
    )
    bank.close()
    for number in (17, 27):
        pin = factory.pin(number)
        assert pin.function == "input" and pin.pull == pull
        assert pin.state is (not active_high)  # the level that means "coil off"
