"""Issue 13, item 3 at the cabinet: lock-bus faults as a person at the screen and the log
see them (K2). The Kerong driver runs over a real pty pair (socat) and over TCP, reusing
the field-fault fixtures of tests/drivers/test_kerong_field_faults.py, against the board
simulator of the rig's demo cabinet; the Modbus relay driver likewise (RTU on the pty,
Modbus TCP), against a relay board wired to the rig's first 32 slots.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from rig import Rig, close_rig, make_rig

from drivers.locks.duty import DutyLimit
from drivers.locks.kerong import KerongLockBank
from drivers.locks.modbus_relay import ModbusRelayBank, ModbusRelayConfig
from kiosk import session as flow
from kiosk.cabinet import Cabinet, calendar_from, options_from
from kiosk.wiring import kerong_slot_map
from simulators.kerong_board import KerongBoardServer
from simulators.modbus_board import RelayBoardSim, run_in_thread, serve_serial
from tests.drivers.test_kerong_field_faults import (  # noqa: F401 (an autouse fixture)
    FAST,
    SocatLink,
    _no_reconnect_pause,
)
from tests.ports import free_port


class Adapter:
    """The USB-RS485 adapter between the Pi and the rig's boards: a pty pair or a TCP
    serial server, which a test can pull out and plug back in."""

    def __init__(self, rig: Rig, kind: str, tmp_path: Path) -> None:
        self.sim = rig.hw.board.sim
        self.kind = kind
        self.socat: SocatLink | None = None
        if kind == "pty":
            self.socat = SocatLink(tmp_path)
            self.socat.plug()
            self.listen = str(self.socat.board_end)
            self.url = str(self.socat.driver_end)
        else:
            self.listen = f"socket://127.0.0.1:{free_port()}"
            self.url = self.listen
        self.server = KerongBoardServer(self.sim, self.listen).start()

    def remove(self) -> None:
        if self.socat is not None:
            self.socat.unplug()
        else:
            self.server.stop()

    def replug(self) -> None:
        if self.socat is not None:
            self.socat.plug()
        else:
            self.server = KerongBoardServer(self.sim, self.listen).start()

    def close(self) -> None:
        self.server.stop()
        if self.socat is not None:
            self.socat.unplug()


@pytest.fixture(params=["pty", "tcp"])
async def bus_rig(request: pytest.FixtureRequest,
                  tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """A rig whose cabinet drives its locks through an ``Adapter`` (pty or TCP)."""
    made: list[tuple[Rig, Adapter, KerongLockBank]] = []

    async def make(**bank_opts: Any) -> tuple[Rig, Adapter]:
        rig = await make_rig(tmp_path)
        await rig.cabinet.stop()
        adapter = Adapter(rig, request.param, tmp_path)
        slot_map = kerong_slot_map(sorted(rig.hw.model.slots))
        bank = KerongLockBank(adapter.url, slot_map, **FAST | bank_opts)
        rig.cabinet = Cabinet(rig.runtime, bank, calendar=calendar_from(rig.runtime.settings),
                              options=options_from(rig.runtime.settings), clock=rig.clock)
        await rig.cabinet.start()
        made.append((rig, adapter, bank))
        return rig, adapter

    yield make
    for rig, adapter, bank in made:
        await close_rig(rig)
        bank.close()
        adapter.close()


async def settle_until(rig: Rig, done: Callable[[], bool], what: str) -> None:
    """Scan (tick) until ``done``; bounded, not a timing assertion."""
    deadline = time.monotonic() + 15
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await rig.settle()
        await asyncio.sleep(0.05)


def alarms(rig: Rig, kind: str) -> list[Any]:
    return rig.events(f"alarm.{kind}")


async def test_K2_adapter_unplugged_mid_draw_fails_locked_and_the_bus_comes_back(
    bus_rig: Callable[..., Any],
) -> None:
    rig, adapter = await bus_rig()
    uid, person = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    adapter.remove()  # the person is choosing; the adapter is pulled out
    await rig.cabinet.choose_draw(["U1203"], "repair")

    # What the person sees: the draw ended with a fault, the compartment stayed shut.
    assert rig.cabinet.session.state == flow.State.IDLE
    assert rig.cabinet.message is not None and rig.cabinet.message.code == "lock_fault"
    assert not rig.hw.model.is_unlocked(slot)
    assert not rig.open_loans()
    # What the log says: a bus_fault alarm (K2) and the failed unlock, no lock_fault.
    assert len(alarms(rig, "bus_fault")) == 1 and not alarms(rig, "lock_fault")
    failed = rig.events("unlock.failed")
    assert len(failed) == 1 and failed[0].slot == slot and '"cause":"bus_fault"' in failed[0].payload
    # Scans while unplugged: the same outage, no second alarm; the status says so.
    await rig.settle(2)
    assert len(alarms(rig, "bus_fault")) == 1
    assert rig.cabinet.live_status()["lock_bus_ok"] is False
    assert not rig.events("lock.bus_restored")

    adapter.replug()  # no restart of anything
    await settle_until(rig, lambda: bool(rig.events("lock.bus_restored")), "lock.bus_restored")
    assert len(rig.events("lock.bus_restored")) == 1
    assert rig.cabinet.live_status()["lock_bus_ok"] is True

    # The next draw works with the same cabinet and driver.
    await rig.drawn(uid, "U1203")
    loans = rig.open_loans()
    assert len(loans) == 1 and loans[0].borrower_id == person.id
    assert len(alarms(rig, "bus_fault")) == 1


async def test_K2_a_coil_in_its_cool_down_asks_to_retry_and_raises_no_alarm(
    bus_rig: Callable[..., Any],
) -> None:
    rig, _adapter = await bus_rig(duty=DutyLimit(pulses_per_minute=1, cooldown_ms=60_000))
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    await rig.cabinet.cancel()  # changed their mind: the slot relocks, the key stays
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["U1203"], "repair")  # the same coil again at once

    msg = rig.cabinet.message
    assert msg is not None and msg.code == "cooling_down"
    assert msg.detail is not None and "秒后再试" in msg.detail[0] and "retry in" in msg.detail[1]
    assert not alarms(rig, "lock_fault") and not alarms(rig, "bus_fault")
    assert '"cause":"duty_cycle"' in rig.events("unlock.failed")[-1].payload


async def test_K2_one_dead_board_keeps_the_others_scanned_and_raises_no_false_removal(
    tmp_path: Path,
) -> None:
    rig = await make_rig(tmp_path)
    sim = rig.hw.board.sim
    sim.set_faults(offline_boards={1})  # slots 17-32 go silent
    await settle_until(rig, lambda: bool(alarms(rig, "bus_fault")), "the bus_fault alarm")
    status = rig.cabinet.live_status()
    assert status["lock_bus_ok"] is False and status["boards_down"] == [1]

    # A draw on the healthy board is seen through: the key is taken, the loan recorded.
    uid, person = rig.card_of(dept="ENG")
    key = next(k for k in ("U1203", "U606", "U701", "U301") if rig.key(k)[0] <= 16)
    await rig.drawn(uid, key)
    assert [loan.borrower_id for loan in rig.open_loans()] == [person.id]
    # The dead board's keys are not "removed" (their slots keep their last presence).
    await rig.settle(3)
    assert not alarms(rig, "key_removed_unauthorised")
    assert len(alarms(rig, "bus_fault")) == 1  # once for this set of silent boards

    sim.clear_faults()
    await settle_until(rig, lambda: bool(rig.events("lock.bus_restored")), "lock.bus_restored")
    assert rig.cabinet.live_status()["lock_bus_ok"] is True
    assert not alarms(rig, "key_removed_unauthorised")
    await close_rig(rig)


# -- the same at a Modbus relay cabinet (issue 13: the fault tests on a pty and on TCP) -------
MODBUS_SLOTS = 32  # one 32-channel relay board with key inputs: slots 1-32 of the rig


class ModbusAdapter:
    """The line to a Modbus relay board wired to the rig's slots 1-32: a pty pair (RTU) or
    Modbus TCP, which a test can pull out and plug back in. The board stays powered."""

    def __init__(self, rig: Rig, kind: str, tmp_path: Path) -> None:
        self.model = rig.hw.model
        config = ModbusRelayConfig(channels=MODBUS_SLOTS, key_input_base=0, max_pulse_ms=500,
                                   slots={n: n - 1 for n in range(1, MODBUS_SLOTS + 1)})
        self.config = config
        self.sim = RelayBoardSim(self.model, config)
        self.socat: SocatLink | None = None
        if kind == "pty":
            self.socat = SocatLink(tmp_path)
            self.socat.plug()
            self.running = serve_serial(self.model, board=self.sim,
                                        device=str(self.socat.board_end))
            self.url = str(self.socat.driver_end)
        else:
            self.running = run_in_thread(self.model, board=self.sim, port=free_port())
            self.url = self.running.url("tcp")

    def remove(self) -> None:
        if self.socat is not None:
            self.socat.unplug()
        else:
            self.running.stop(drop_relays=False)

    def replug(self) -> None:
        if self.socat is not None:
            self.socat.plug()
        else:
            self.running = run_in_thread(self.model, board=self.sim, port=self.running.port)

    def close(self) -> None:
        self.running.stop()
        if self.socat is not None:
            self.socat.unplug()


@pytest.fixture(params=["pty", "tcp"])
async def modbus_rig(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[tuple[Rig, ModbusAdapter]]:
    rig = await make_rig(tmp_path)
    await rig.cabinet.stop()
    adapter = ModbusAdapter(rig, request.param, tmp_path)
    bank = ModbusRelayBank.from_url(adapter.url, adapter.config, timeout_s=0.1)
    rig.cabinet = Cabinet(rig.runtime, bank, calendar=calendar_from(rig.runtime.settings),
                          options=options_from(rig.runtime.settings), clock=rig.clock)
    await rig.cabinet.start()
    yield rig, adapter
    await close_rig(rig)
    bank.close()
    adapter.close()


async def test_K2_modbus_adapter_unplugged_mid_draw_fails_locked_and_the_bus_comes_back(
    modbus_rig: tuple[Rig, ModbusAdapter],
) -> None:
    rig, adapter = modbus_rig
    uid, person = rig.card_of(dept="ENG")
    key = next(k for k in ("U1203", "U606", "U701", "U301") if rig.key(k)[0] <= MODBUS_SLOTS)
    slot, _ = rig.key(key)
    await rig.cabinet.tap(uid)
    adapter.remove()  # the person is choosing; the adapter is pulled out
    await rig.cabinet.choose_draw([key], "repair")

    # What the person sees: the draw ended with a fault, the compartment stayed shut.
    assert rig.cabinet.session.state == flow.State.IDLE
    assert rig.cabinet.message is not None and rig.cabinet.message.code == "lock_fault"
    assert not rig.hw.model.is_unlocked(slot) and adapter.sim.on_times_ms(slot - 1) == []
    assert not rig.open_loans()
    # What the log says: a bus_fault alarm (K2), not a lock_fault (no coil is in doubt).
    assert len(alarms(rig, "bus_fault")) == 1 and not alarms(rig, "lock_fault")
    failed = rig.events("unlock.failed")
    assert len(failed) == 1 and '"cause":"bus_fault"' in failed[0].payload
    await rig.settle(2)  # scans while unplugged: the same outage, no second alarm
    assert len(alarms(rig, "bus_fault")) == 1
    assert rig.cabinet.live_status()["lock_bus_ok"] is False

    adapter.replug()  # no restart of anything
    await settle_until(rig, lambda: bool(rig.events("lock.bus_restored")), "lock.bus_restored")
    assert rig.cabinet.live_status()["lock_bus_ok"] is True
    await rig.drawn(uid, key)  # the next draw works with the same cabinet and driver
    loans = rig.open_loans()
    assert len(loans) == 1 and loans[0].borrower_id == person.id
    assert len(adapter.sim.on_times_ms(slot - 1)) == 1  # one pulse for the one draw
    assert len(alarms(rig, "bus_fault")) == 1
