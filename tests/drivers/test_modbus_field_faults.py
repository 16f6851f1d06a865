"""Issue 13, items 3-4 on Modbus: the relay driver against field faults, through a real pty
pair (socat, RTU frames as real bytes on a tty) and over Modbus TCP.

What a person at the cabinet and the log would see: no coil energised beyond its cap when
frames are lost, no coil pulsed twice for one intent, a board that dies after "on" switched
off when it answers again, an unplugged adapter a clear ``BusFault`` (the cabinet's
``bus_fault`` alarm, K2) with the port reopened when it is back, without a restart. The
coil's on-time is measured where a meter would: in the simulated board. Waits are bounded
polls, never timing assertions.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import BusFault, DriverError, DutyCycleExceeded, LockBoardError, LockFault
from drivers.locks.duty import DutyLimit
from drivers.locks.modbus_relay import ModbusRelayBank, ModbusRelayConfig
from simulators.cabinet import CabinetModel
from simulators.modbus_board import (
    WRITE_COIL,
    WRITE_REGISTER,
    RelayBoardSim,
    RunningBoard,
    run_in_thread,
    serve_serial,
)
from tests.drivers.test_kerong_field_faults import SocatLink
from tests.ports import free_port

CAP_MS = 800
CHANNELS = 8

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    """Poll until ``condition`` holds (a DriverError counts as not yet); bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition():
                return
        except DriverError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Line:
    """One relay board, the line to it (a pty pair or Modbus TCP) and the bus-change log."""

    kind: str
    model: CabinetModel
    sim: RelayBoardSim
    running: RunningBoard
    url: str
    socat: SocatLink | None = None
    changes: list[tuple[bool, str]] = field(default_factory=list)
    banks: list[ModbusRelayBank] = field(default_factory=list)

    def bank(self, sleep: Callable[[float], None] = time.sleep, timeout_s: float = 0.1,
             duty: DutyLimit | None = None, **cfg: Any) -> ModbusRelayBank:
        config = ModbusRelayConfig(**{"channels": CHANNELS, "max_pulse_ms": CAP_MS,
                                      "off_margin_ms": 200, "retries": 1, "backoff_ms": 10} | cfg)
        bank = ModbusRelayBank.from_url(self.url, config, timeout_s=timeout_s, sleep=sleep,
                                        duty=duty, on_bus_change=self._changed)
        self.banks.append(bank)
        return bank

    def _changed(self, ok: bool, message: str) -> None:
        self.changes.append((ok, message))

    def remove_adapter(self) -> None:
        """The USB-RS485 adapter pulled out (pty) or the Modbus TCP gateway gone. The
        board stays powered: its relays hold what they hold."""
        if self.socat is not None:
            self.socat.unplug()  # the board's end stays attached and re-attaches by itself
        else:
            self.running.stop(drop_relays=False)

    def replug_adapter(self) -> None:
        if self.socat is not None:
            self.socat.plug()
        else:
            self.running = run_in_thread(self.model, board=self.sim, port=self.running.port)

    def close(self) -> None:
        for bank in self.banks:
            bank.close()
        self.running.stop()
        if self.socat is not None:
            self.socat.unplug()


@pytest.fixture(params=["pty", "tcp"])
def line(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Line]:
    model = CabinetModel(slot_numbers=range(1, CHANNELS + 1))
    model.load({1: "FOB-A", 2: "FOB-B"})
    sim = RelayBoardSim(model, ModbusRelayConfig(channels=CHANNELS))
    if request.param == "pty":
        socat = SocatLink(tmp_path)
        socat.plug()
        running = serve_serial(model, board=sim, device=str(socat.board_end))
        made = Line("pty", model, sim, running, str(socat.driver_end), socat=socat)
    else:
        running = run_in_thread(model, board=sim, port=free_port())
        made = Line("tcp", model, sim, running, running.url("tcp"))
    yield made
    made.close()


def test_a_lost_off_frame_still_ends_the_pulse_within_the_cap(line: Line) -> None:
    sim = line.sim

    def lose_offs(seconds: float) -> None:
        # The "on" reached the board; the first "off" is lost on the line, and the answer
        # to the second is lost too (the board obeyed it).
        sim.lose.extend([(WRITE_COIL, "request"), (WRITE_COIL, "reply")])
        time.sleep(seconds)

    # A 250 ms transport timeout; the off margin covers one lost frame.
    bank = line.bank(sleep=lose_offs, timeout_s=0.25, off_margin_ms=400)
    bank.unlock(1, 700)
    on_times = sim.on_times_ms(0)
    assert len(on_times) == 1  # one pulse
    # Before issue 13: 700 ms + a lost frame's timeout + backoff, well past the cap.
    assert 400 <= on_times[0] <= CAP_MS
    assert sim.coils == [False] * CHANNELS


def test_a_lost_answer_to_on_switches_off_at_once_and_is_a_fault(line: Line) -> None:
    bank = line.bank()
    line.sim.lose = [(WRITE_COIL, "reply")]  # the board switched on; the master never heard
    with pytest.raises(LockBoardError, match="coil on for slot 2 not confirmed") as fault:
        bank.unlock(2, 500)
    assert not isinstance(fault.value, BusFault)  # the line works: a board fault, not the bus
    assert len(line.sim.on_times_ms(1)) == 1
    assert max(line.sim.on_times_ms(1)) <= CAP_MS
    assert line.sim.coils == [False] * CHANNELS


def test_a_lost_flash_answer_is_read_back_not_repeated(line: Line) -> None:
    bank = line.bank(pulse_mode="flash", settle_ms=600)
    line.sim.lose = [(WRITE_REGISTER, "reply")]
    bank.unlock(3, 400)  # the board is timing it: success, one flash
    assert len(line.sim.on_times_ms(2)) == 1
    wait_for(lambda: not line.sim.coils[2], "the board to end its own pulse")
    assert max(line.sim.on_times_ms(2)) <= CAP_MS


def test_a_board_that_dies_after_on_is_a_fault_and_switched_off_when_it_returns(
    line: Line,
) -> None:
    bank = line.bank()
    line.sim.hang_after_on = True
    with pytest.raises(LockFault, match="stopped answering after switching channel 3 on"):
        bank.unlock(4, 500)
    assert bank.coils_in_doubt == (3,)
    assert line.sim.coils[3] is True  # the hung board still holds its relay
    line.sim.hung = False  # its controller comes back (watchdog reset, power blip)
    wait_for(lambda: bank.coils_in_doubt == (), "the watchdog's 'off' to be taken")
    assert line.sim.coils == [False] * CHANNELS
    assert len(line.sim.on_times_ms(3)) == 1  # never pulsed again for the same intent


def test_adapter_unplugged_is_a_bus_fault_and_the_port_reopens_when_it_is_back(
    line: Line,
) -> None:
    bank = line.bank()
    bank.unlock(1, 300)  # a first draw works
    line.remove_adapter()
    with pytest.raises(BusFault, match="unit 1") as fault:  # K2: the cabinet's bus_fault
        bank.unlock(2, 300)
    assert isinstance(fault.value, LockBoardError)  # every cabinet handler already takes it
    assert not line.sim.coils[1] and line.sim.on_times_ms(1) == []  # nothing switched on
    assert not bank.bus_ok and [ok for ok, _ in line.changes] == [False]
    with pytest.raises(BusFault):  # a status read: a fault, not an empty cabinet
        bank.status()
    line.replug_adapter()  # no restart of the driver
    wait_for(lambda: len(bank.status()) == CHANNELS, "the bus to come back")
    assert bank.bus_ok and [ok for ok, _ in line.changes] == [False, True]  # once each way
    bank.unlock(3, 300)  # the same driver object draws again
    assert [len(line.sim.on_times_ms(ch)) for ch in (0, 1, 2)] == [1, 0, 1]
    assert all(ms <= CAP_MS for ch in range(CHANNELS) for ms in line.sim.on_times_ms(ch))
    assert line.sim.coils == [False] * CHANNELS


def test_adapter_unplugged_after_on_the_coil_is_switched_off_when_it_is_back(
    line: Line,
) -> None:
    def unplug_mid_pulse(seconds: float) -> None:
        line.remove_adapter()  # "on" went out; "off" will find no adapter
        time.sleep(seconds)

    bank = line.bank(sleep=unplug_mid_pulse)
    with pytest.raises(LockFault, match="may be energised"):
        bank.unlock(5, 300)
    assert bank.coils_in_doubt == (4,) and not bank.bus_ok
    assert line.sim.coils[4] is True  # the board, still powered, holds its relay
    line.replug_adapter()
    wait_for(lambda: bank.coils_in_doubt == (), "the watchdog's 'off' through the new port")
    assert line.sim.coils == [False] * CHANNELS
    assert len(line.sim.on_times_ms(4)) == 1


def test_three_quick_unlocks_pulse_the_coil_once(line: Line) -> None:
    bank = line.bank(duty=DutyLimit(pulses_per_minute=6, cooldown_ms=5000))
    bank.unlock(1, 500)
    for _ in range(2):
        with pytest.raises(DutyCycleExceeded):  # a DriverError: the cabinet says "retry in"
            bank.unlock(1, 500)
    assert len(line.sim.on_times_ms(0)) == 1 and max(line.sim.on_times_ms(0)) <= CAP_MS


def test_a_driver_wired_for_more_coils_than_the_board_has_is_told_at_once(line: Line) -> None:
    # 16 channels configured, an 8-channel board: exception 02 (ILLEGAL DATA ADDRESS), no
    # retry, and not a bus fault: the line is fine, the configuration is wrong.
    wrong = ModbusRelayBank.from_url(line.url, ModbusRelayConfig(channels=16), timeout_s=0.2)
    line.banks.append(wrong)
    with pytest.raises(LockBoardError, match="Modbus exception code 2") as refused:
        wrong.status()
    assert not isinstance(refused.value, BusFault) and wrong.bus_ok
    assert wrong.attempts == 1
