"""KerongLockBank against the board simulator over a real TCP socket (and a pty).

The cabinet model runs on a fake clock that the driver's injected ``sleep`` moves forward,
so "after the pulse" needs no real waiting; only serial reply timeouts are real (and short).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import serial
from serial.urlhandler import protocol_socket

from drivers.errors import LockBoardError, LockFault
from drivers.locks.base import LockBank, SlotState
from drivers.locks.kerong import KerongLockBank
from drivers.locks.kerong import link as kerong_link
from drivers.locks.kerong.codec import (
    CMD_SET_UNLOCK_TIME,
    CMD_STATUS,
    CMD_UNLOCK,
    decode_unlock_time_ms,
)
from simulators.cabinet import CabinetModel
from simulators.kerong_board import KerongBoardServer, KerongBoardSim

ROOT = Path(__file__).resolve().parents[2]
FAST: dict[str, Any] = {"reply_timeout_s": 0.2, "retries": 1, "backoff_s": 0.01,
                        "backoff_max_s": 0.05}


class FakeClock:
    """The model's clock; the driver's ``sleep`` advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Rig:
    clock: FakeClock
    model: CabinetModel
    sim: KerongBoardSim
    server: KerongBoardServer
    bank: KerongLockBank
    extra: list[KerongLockBank] = field(default_factory=list)

    def open_slots(self) -> list[int]:
        return [s for s in sorted(self.model.slots) if self.model.is_unlocked(s)]

    def after_pulse(self) -> list[int]:
        """Let every board's unlock time run out, then list latches still open."""
        self.clock.now += 3.0
        return self.open_slots()

    def bank_with(self, **opts: Any) -> KerongLockBank:
        bank = KerongLockBank(self.server.url, slot_map(len(self.sim.boards)),
                              sleep=self.clock.sleep, register_atexit=False, **FAST | opts)
        self.extra.append(bank)
        return bank


def slot_map(boards: int) -> dict[int, tuple[int, int]]:
    return {16 * b + c: (b, c) for b in range(boards) for c in range(1, 17)}


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait for something another thread does (bounded; not a timing assertion).

    A condition that raises ``LockBoardError`` counts as not yet true (a bus recovering).
    """
    deadline = time.monotonic() + 5
    while True:
        try:
            if condition():
                return
        except LockBoardError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def _no_reconnect_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyserial's socket:// close() sleeps 0.3 s "for quick reconnects"; tests skip it."""
    monkeypatch.setattr(protocol_socket, "time", SimpleNamespace(sleep=lambda _s: None))


@pytest.fixture
def make_rig() -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(boards: int = 2, listen: str = "socket://127.0.0.1:0",
             sim: dict[str, Any] | None = None, **bank_opts: Any) -> Rig:
        clock = FakeClock()
        model = CabinetModel(range(1, 16 * boards + 1), clock=clock)
        model.load({s: f"FOB-{s:03d}" for s in model.slots})
        board_sim = KerongBoardSim(model, boards=boards, **(sim or {}))
        server = KerongBoardServer(board_sim, listen).start()
        bank = KerongLockBank(server.url, slot_map(boards), sleep=clock.sleep,
                              register_atexit=False, **FAST | bank_opts)
        rig = Rig(clock, model, board_sim, server, bank)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        for bank in [rig.bank, *rig.extra]:
            bank.close()
        rig.server.stop()


def sent(rig: Rig, cmd: int) -> list[int]:
    """Addresses of the frames with ``cmd`` the simulated boards heard."""
    return [f.addr for f in list(rig.sim.received) if f.cmd == cmd]


# -- the happy path over TCP and pty ---------------------------------------------------------
def test_bank_satisfies_the_lockbank_protocol(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    assert isinstance(rig.bank, LockBank)
    assert rig.bank.slots == tuple(range(1, 33))
    assert rig.bank.boards == (0, 1)


@pytest.mark.parametrize("answers_unlock", [True, False], ids=["board-answers", "board-silent"])
@pytest.mark.parametrize("set_means_locked", [True, False], ids=["set=locked", "set=unlocked"])
def test_unlock_releases_the_model_slot(
    make_rig: Callable[..., Rig], answers_unlock: bool, set_means_locked: bool
) -> None:
    rig = make_rig(sim={"answers_unlock": answers_unlock,
                        "bit_set_means_locked": set_means_locked},
                   board_answers_unlock=answers_unlock, bit_set_means_locked=set_means_locked)
    rig.bank.unlock(19)
    assert rig.open_slots() == [19]
    assert sent(rig, CMD_UNLOCK) == [0x12]  # board 1, lock index 2 = channel 3
    assert rig.sim.unlock_time_ms(1) == 500  # default pulse, set just before the unlock
    assert rig.bank.unconfirmed == (19,)
    status = rig.bank.status()
    assert status[19] == SlotState(19, locked=False, key_present=True)
    assert all(s.locked for n, s in status.items() if n != 19)


def test_status_reflects_a_key_taken_from_the_model(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.bank.unlock(2)
    assert rig.model.take(2) == "FOB-002"
    assert rig.after_pulse() == []
    status = rig.bank.status()
    assert status[2] == SlotState(2, locked=True, key_present=False)
    assert [n for n, s in status.items() if not s.key_present] == [2]
    assert set(status) == set(range(1, 33))


def test_confirm_locked_after_the_pulse(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.bank.unlock(5, 300)
    rig.clock.now += 0.31
    assert rig.bank.confirm_locked(5) == SlotState(5, locked=True, key_present=True)
    assert rig.bank.unconfirmed == ()


def test_unlock_and_confirm_waits_pulse_plus_grace(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    state = rig.bank.unlock_and_confirm(7, 400, grace_ms=100)
    assert state.locked
    assert rig.clock.sleeps == [0.5]
    assert rig.bank.unconfirmed == ()


def test_unlock_over_a_pty(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(boards=1, listen="pty")
    assert rig.server.url.startswith("/dev/")
    rig.bank.unlock(16)
    assert rig.open_slots() == [16]
    rig.model.take(16)
    assert rig.after_pulse() == []
    assert rig.bank.status()[16] == SlotState(16, locked=True, key_present=False)


def test_answering_board_also_works_in_silent_mode(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(sim={"answers_unlock": True}, board_answers_unlock=False)
    for slot in (1, 2, 3):  # the extra answer must never be taken for the next request's
        rig.bank.unlock(slot)
        assert rig.bank.read_board(0)[slot].locked is False
    assert rig.open_slots() == [1, 2, 3]


def _timed(call: Callable[[], object]) -> float:
    start = time.monotonic()
    call()
    return time.monotonic() - start


@pytest.mark.parametrize(("sim_answers", "bank_answers"), [
    (True, True),  # 0x37 0x31 -> one answer
    (False, False),  # 0x37 0x31 0x30 -> one answer, and the 0x30 alone -> one answer
    (True, False),  # 0x37 0x31 0x30 -> both answers came: nothing more can follow
], ids=["answers-configured-answers", "silent-configured-silent", "answers-configured-silent"])
def test_a_complete_clean_exchange_ends_without_waiting_for_quiet(
    make_rig: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch,
    sim_answers: bool, bank_answers: bool,
) -> None:
    # a quiet wait this long would show in every call below
    monkeypatch.setattr(kerong_link, "QUIET_S", 1.0)
    rig = make_rig(sim={"answers_unlock": sim_answers}, board_answers_unlock=bank_answers,
                   reply_timeout_s=2.0)
    assert _timed(rig.bank.status) < 0.5  # two boards, one 0x30 each
    assert _timed(lambda: rig.bank.read_board(1)) < 0.5
    if bank_answers or sim_answers:
        assert _timed(lambda: rig.bank.unlock(3)) < 0.5
        assert rig.bank.read_board(0)[3].locked is False  # the right answer, not a stale one


def test_a_second_answer_still_possible_is_waited_for(
    make_rig: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # configured silent: after 0x31 0x30 one answer came, a second (to the 0x31) may follow
    monkeypatch.setattr(kerong_link, "QUIET_S", 0.3)
    rig = make_rig(sim={"answers_unlock": False}, board_answers_unlock=False,
                   reply_timeout_s=1.0)
    assert _timed(lambda: rig.bank.unlock(3)) >= 0.3
    assert rig.open_slots() == [3]


def test_noise_around_an_answer_lets_the_line_settle(
    make_rig: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kerong_link, "QUIET_S", 0.3)
    rig = make_rig(reply_timeout_s=1.0)
    rig.sim.set_faults(garbage_before=True)
    assert _timed(lambda: rig.bank.read_board(0)) >= 0.3
    rig.sim.clear_faults()
    assert _timed(lambda: rig.bank.read_board(0)) < 0.3


def test_silent_board_configured_as_answering_is_read_not_pulsed_again(
    make_rig: Callable[..., Rig],
) -> None:
    """No answer to 0x31: the retry reads the lock (0x30) and, finding it open, stops.
    Before issue 13 this re-pulsed the coil and still reported failure."""
    rig = make_rig(sim={"answers_unlock": False}, board_answers_unlock=True)
    rig.bank.unlock(1)
    assert rig.open_slots() == [1]
    assert sent(rig, CMD_UNLOCK) == [0x00]  # one pulse for one intent
    assert sent(rig, CMD_STATUS) == [0x00]  # the retry only read


def test_wrong_polarity_is_caught_at_the_first_unlock(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(sim={"bit_set_means_locked": False}, bit_set_means_locked=True)
    with pytest.raises(LockFault, match=r"slot 4: .*board 0 channel 4 still reads locked"):
        rig.bank.unlock(4)


def test_scan_finds_the_boards_that_answer(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(boards=3)
    rig.sim.set_faults(offline_boards={1})
    found = rig.bank.scan()
    assert sorted(found) == [0, 2]
    assert found[2].lock_bits == 0xFFFF and found[2].key_bits == 0xFFFF


def test_concurrent_callers_never_interleave_frames(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(sim={"answers_unlock": True}, board_answers_unlock=True,
                   reply_timeout_s=0.5, retries=0)
    errors: list[BaseException] = []

    def worker(slot: int) -> None:
        try:
            for _ in range(3):
                rig.bank.unlock(slot)
                rig.bank.status()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 8, 17, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert rig.open_slots() == [1, 8, 17, 30]


# -- pulse cap, unlock-all, configuration -----------------------------------------------------
@pytest.mark.parametrize(("max_ms", "asked", "board_ms"), [
    (300, 5000, 300), (300, None, 300), (1000, None, 500), (2000, 60_000, 2000), (1000, 250, 250),
])
def test_pulse_is_capped(
    make_rig: Callable[..., Rig], max_ms: int, asked: int | None, board_ms: int
) -> None:
    rig = make_rig(max_pulse_ms=max_ms)
    rig.bank.unlock(1, asked)
    assert rig.sim.unlock_time_ms(0) == board_ms
    assert rig.model.slots[1].unlocked_until == pytest.approx(rig.clock.now + board_ms / 1000)


def test_unlock_all_is_refused_unless_enabled(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    with pytest.raises(LockBoardError, match=r"board 0: unlock-all .* refused"):
        rig.bank.unlock_all(0)
    assert list(rig.sim.received) == []  # refused before a byte was written
    assert rig.open_slots() == []

    enabled = rig.bank_with(allow_unlock_all=True, max_pulse_ms=800)
    enabled.unlock_all(1)
    assert rig.open_slots() == list(range(17, 33))
    assert rig.sim.unlock_time_ms(1) == 800
    assert enabled.unconfirmed == tuple(range(17, 33))


@pytest.mark.parametrize(("mapping", "why"), [
    ({}, "empty"),
    ({1: (0, 1), 2: (0, 1)}, "slots 1 and 2 both on board 0 channel 1"),
    ({1: (0, 17)}, "slot 1: channel"),
    ({1: (16, 1)}, "slot 1: board"),
    ({0: (0, 1)}, "slot 0"),
])
def test_bad_slot_maps_are_refused(mapping: dict[int, tuple[int, int]], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        KerongLockBank("loop://", mapping, register_atexit=False)


@pytest.mark.parametrize(("opts", "why"), [
    ({"max_pulse_ms": 2001}, "max_pulse_ms"),
    ({"max_pulse_ms": 5}, "max_pulse_ms"),
    ({"retries": 11}, "retries"),
    ({"reply_timeout_s": 0}, "reply_timeout_s"),
    ({"backoff_s": 0.5, "backoff_max_s": 0.1}, "backoff_max_s"),
])
def test_out_of_bounds_options_are_refused(opts: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        KerongLockBank("loop://", {1: (0, 1)}, register_atexit=False, **opts)


def test_unknown_slot_is_an_error(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(boards=1)
    with pytest.raises(LockBoardError, match="slot 99 is not on this Kerong bus"):
        rig.bank.unlock(99)


def test_an_echo_on_loop_is_not_taken_for_a_reply() -> None:
    port = serial.serial_for_url("loop://", timeout=0.01)  # injected port object
    bank = KerongLockBank(port, {3: (0, 3)}, register_atexit=False, **FAST)
    with pytest.raises(LockBoardError, match=r"slot 3\): unlock: no valid reply"):
        bank.unlock(3)
    bank.close()
    assert not port.is_open


# -- injected faults ----------------------------------------------------------------------
FAULTS: list[tuple[str, dict[str, Any], str]] = [
    ("no-reply", {"no_reply": True}, "no reply within"),
    ("late-reply", {"delay_s": 0.6}, "no reply within"),
    ("bad-checksum", {"bad_checksum": True}, "bad checksum"),
    ("garbage-only", {"garbage_instead": True}, "garbage"),
]


@pytest.mark.parametrize(("faults", "message"), [(f, m) for _, f, m in FAULTS],
                         ids=[n for n, _, _ in FAULTS])
def test_fault_during_unlock_is_a_lock_board_error(
    make_rig: Callable[..., Rig], faults: dict[str, Any], message: str
) -> None:
    # one attempt, and a board that answers the unlock itself, so a late answer is one frame
    rig = make_rig(retries=0, board_answers_unlock=True)
    rig.sim.set_faults(**faults)
    expected = rf"board 1 channel 2 \(slot 18\): unlock: .*{message}"
    with pytest.raises(LockBoardError, match=expected):
        rig.bank.unlock(18)
    assert rig.bank.unconfirmed == (18,)  # the latch may have moved: the cabinet must check
    # the error path ran lock_all: every board's coil time is down to its minimum ...
    wait_for(lambda: rig.sim.unlock_time_ms(0) == rig.sim.unlock_time_ms(1) == 10, "lock_all")
    # ... and once the pulse has run out every latch is closed again
    assert rig.after_pulse() == []
    rig.sim.clear_faults()
    wait_for(lambda: rig.bank.confirm_locked(18).locked, "the bus to recover")
    assert rig.bank.unconfirmed == ()


@pytest.mark.parametrize(("faults", "message"), [(f, m) for _, f, m in FAULTS],
                         ids=[n for n, _, _ in FAULTS])
def test_fault_during_status_is_a_lock_board_error(
    make_rig: Callable[..., Rig], faults: dict[str, Any], message: str
) -> None:
    rig = make_rig()
    rig.sim.set_faults(**faults)
    with pytest.raises(LockBoardError, match=rf"board 0 \(slots 1,2,.*,16\): status: .*{message}"):
        rig.bank.status()
    assert rig.open_slots() == []


def test_no_reply_leaves_the_board_at_its_shortest_unlock_time(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(retries=2)
    rig.sim.set_faults(no_reply=True)
    with pytest.raises(LockBoardError, match=r"after 3 attempts"):
        rig.bank.unlock(3)
    # issue 13: the retries only read the lock; an unanswered pulse is never repeated blind
    assert sent(rig, CMD_UNLOCK) == [0x02]
    assert sent(rig, CMD_STATUS).count(0x00) == 3  # the pulse's own 0x30 and two re-reads
    assert rig.clock.sleeps == [0.01, 0.02]  # exponential backoff
    # the error path ran lock_all: every board's coil time is down to the minimum
    wait_for(lambda: rig.sim.unlock_time_ms(0) == rig.sim.unlock_time_ms(1) == 10, "lock_all")
    assert rig.after_pulse() == []


def test_backoff_is_bounded(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(retries=5, backoff_s=0.01, backoff_max_s=0.03, reply_timeout_s=0.02)
    rig.sim.set_faults(offline_boards={0})
    with pytest.raises(LockBoardError, match="after 6 attempts"):
        rig.bank.read_board(0)
    assert rig.clock.sleeps == [0.01, 0.02, 0.03, 0.03, 0.03]


def test_garbage_before_a_reply_is_survived(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.sim.set_faults(garbage_before=True)
    rig.bank.unlock(9)
    assert rig.open_slots() == [9]
    assert rig.bank.status()[9].locked is False


def test_a_late_reply_within_the_timeout_is_accepted(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(reply_timeout_s=1.0)
    rig.sim.set_faults(delay_s=0.02)
    rig.bank.unlock(9)
    assert rig.open_slots() == [9]


def test_offline_board_is_named_and_the_others_still_work(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.sim.set_faults(offline_boards={1})
    with pytest.raises(LockBoardError, match=r"board 1 channel 1 \(slot 17\): unlock: no reply"):
        rig.bank.unlock(17)
    with pytest.raises(LockBoardError, match=r"board 1 \(slots 17,18,.*,32\): status") as exc:
        rig.bank.status()
    assert "board 0" not in str(exc.value)
    assert rig.bank.read_board(0)[1] == SlotState(1, locked=True, key_present=True)
    rig.bank.unlock(1)
    assert rig.open_slots() == [1]
    assert rig.after_pulse() == []


def test_jammed_lock_is_a_lock_fault_naming_the_slot(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.sim.jam(0, 4)
    rig.bank.unlock(4, 300)
    rig.clock.now += 0.5
    with pytest.raises(LockFault, match="slot 4: Kerong board 0 channel 4 still unlocked") as exc:
        rig.bank.confirm_locked(4)
    assert exc.value.slot == 4
    assert rig.bank.unconfirmed == (4,)
    assert rig.bank.status()[4].locked is False
    assert rig.after_pulse() == [4]  # only the jammed latch is open


def test_pop_open_compartment_reads_open_until_shut(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(boards=1)
    rig.model.pop_open = True  # locker doors spring open on the pulse and stay open
    rig.bank.unlock(6)
    rig.clock.now += 3
    with pytest.raises(LockFault, match=r"slot 6: .* still unlocked .*door left open"):
        rig.bank.confirm_locked(6)
    rig.model.shut_slot(6)
    assert rig.bank.confirm_locked(6).locked
    assert rig.bank.unconfirmed == ()


def test_a_dropped_connection_is_a_lock_board_error(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.server.stop()
    with pytest.raises(LockBoardError, match=r"slot 1\): unlock: Kerong lock bus failed"):
        rig.bank.unlock(1)


# -- safe state on close and exit -----------------------------------------------------------
def test_close_leaves_the_bus_safe_and_refuses_more(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.bank.unlock(2, 800)
    assert rig.sim.unlock_time_ms(0) == 800
    rig.bank.close()
    # lock_all (10 ms on every board), then the configured pulse restored (issue 13): a
    # board left at 10 ms could no longer open a lock for its keypad or the next start
    wait_for(lambda: rig.sim.unlock_time_ms(0) == rig.sim.unlock_time_ms(1) == 500, "close")
    times = [decode_unlock_time_ms(f) for f in rig.sim.received if f.cmd == CMD_SET_UNLOCK_TIME]
    assert times[-4:] == [10, 10, 500, 500]
    assert rig.after_pulse() == []
    with pytest.raises(LockBoardError, match="closed"):
        rig.bank.unlock(2)
    rig.bank.close()  # idempotent
    rig.bank.lock_all()  # a no-op once closed, never raises


def test_lock_all_never_raises_on_a_dead_bus(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.server.stop()
    rig.bank.lock_all()
    rig.bank.close()


def test_process_exit_runs_lock_all(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(boards=1)
    script = textwrap.dedent(f"""
        from drivers.locks.kerong import KerongLockBank
        bank = KerongLockBank({rig.server.url!r}, {{1: (0, 1)}})
        bank.unlock(1, 900)
        # no close(): the atexit hook must leave the bus safe
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, env=env, timeout=30)
    assert sent(rig, CMD_UNLOCK) == [0x00]
    wait_for(lambda: rig.sim.unlock_time_ms(0) == 500, "the atexit close")
    times = [decode_unlock_time_ms(f) for f in rig.sim.received if f.cmd == CMD_SET_UNLOCK_TIME]
    assert times == [900, 10, 500]  # the unlock, lock_all, the configured pulse restored
    assert rig.after_pulse() == []
