"""Kerong KR-CU16 lock boards as a :class:`~drivers.locks.base.LockBank`, hardened for the field.

What "locked" and "safe" mean on this hardware
----------------------------------------------
A Kerong lock is pulse-driven by the board itself: ``0x31`` energises one coil and the
*board* drops it again after its unlock time (``0x37``). There is no "hold open" and no
"relock now" command, so the host can never leave a coil latched on; the worst it can do
is ask for a long unlock time. The safe state is therefore:

* no unlock in flight and nothing queued (requests are synchronous under one lock;
  :meth:`KerongLockBank.lock_all` discards unsent output);
* every board's unlock time at the configured cap or less: it is sent in front of *every*
  unlock, and :meth:`~KerongLockBank.lock_all` sets it to the minimum (10 ms) while the
  driver runs; :meth:`~KerongLockBank.close` restores the configured pulse, so a board left
  behind (keypad, service tool, the next start) opens its locks normally. "In front" may be
  early: :meth:`~KerongLockBank.arm` sends an unlock's 0x37 ahead (the cabinet does it while
  the unlock's intent is being made durable, so the unlock itself is one frame on the wire
  after it, issue 15); the unlock skips its own 0x37 only if its board was armed with the
  same time, less than ``ARM_VALID_S`` ago, and nothing has set the board's time since
  (``lock_all``, commissioning, another unlock, a bus fault all disarm). 0x37 opens nothing;
  only the 0x31 does;
* within ``max_pulse_ms`` of the last unlock every latch has closed, which
  :meth:`~KerongLockBank.confirm_locked` checks.

Field faults (issue 13)
-----------------------
* Every transport failure is a :class:`~drivers.errors.BusFault` (a ``LockBoardError``);
  the port is reopened with backoff on later calls and ``bus_ok`` / ``on_bus_change``
  report when it works again (:mod:`.link`).
* Unlock retries are idempotent: once a pulse may have gone out, a retry first *reads* the
  lock (listening for a late answer before it sends anything) and pulses again only if it
  reads locked. A lock is never pulsed twice for one intent while it reads unlocked.
* Half duplex: one frame at a time, each waiting for its reply window or the turnaround.
* A board that misses ``quarantine_after`` sweeps in a row is quarantined: later sweeps skip
  it (so they stay fast for the others) and re-probe it every ``reprobe_s``. Its slots are
  reported through :class:`~drivers.errors.PartialStatus`.
* ``0x32`` answered either as one aggregate ``0x36`` frame or one ``0x35`` per board; which
  one is detected by :meth:`~KerongLockBank.commission`, which also sets and reads back
  every board's coil time.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping

from drivers.errors import BusFault, LockBoardError, LockFault, PartialStatus
from drivers.locks.base import HARD_MAX_PULSE_MS, SlotState, cap_pulse
from drivers.locks.duty import DutyCycle, DutyLimit
from drivers.locks.kerong import link as link_module
from drivers.locks.kerong.codec import (
    CHANNELS_PER_BOARD,
    CMD_STATUS_REPLY,
    CMD_UNLOCK_TIME_REPLY,
    MAX_BOARDS,
    UNLOCK_TIME_UNIT_MS,
    BoardStatus,
    Frame,
    decode_status,
    decode_unlock_time_ms,
    encode_read_unlock_time,
    encode_set_unlock_time,
    encode_status_request,
    encode_unlock,
    encode_unlock_all,
)
from drivers.locks.kerong.link import (
    DEFAULT_BAUDRATE,
    POLL_S,
    BusListener,
    Link,
    SerialPort,
    open_port,
)
from drivers.locks.kerong.sweep import CommissionReport, StatusVariant, Sweeper

log = logging.getLogger(__name__)

__all__ = [
    "ARM_VALID_S", "DEFAULT_BAUDRATE", "POLL_S", "CommissionReport", "KerongLockBank",
    "SerialPort", "StatusVariant", "open_port",
]

ARM_VALID_S = 1.0
"""How long a board armed by :meth:`KerongLockBank.arm` counts as set for the unlock that
follows, unless the caller says otherwise: an intent made durable in milliseconds uses it;
one that waited for a busy database sends its 0x37 again (a board reset in between would
have forgotten it)."""

ARM_VALID_MAX_S = 300.0
"""The longest an arming may count (a person choosing a reason, entering a PIN, waiting for
a co-signer): beyond it the unlock sends its 0x37 again whatever the caller asked."""



def _bounded(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def _close_at_exit(ref: weakref.ReferenceType[KerongLockBank]) -> None:
    """atexit hook: a bank still open at interpreter exit is locked and closed."""
    bank = ref()
    if bank is not None:
        try:
            bank.close()
        except Exception:  # exit must go on whatever the bus does
            log.exception("closing Kerong lock bank at exit failed")


class KerongLockBank:
    """One RS-485 bus of up to 16 Kerong boards, addressed by cabinet slot number.

    Every request/response runs under one internal lock, so the cabinet may call from
    several worker threads. Reads are retried ``retries`` times with exponential backoff
    (``backoff_s`` doubling, at most ``backoff_max_s``), each attempt waiting at most
    ``reply_timeout_s``; so the worst case of any call is bounded and known.
    """

    def __init__(
        self,
        port: SerialPort | str,
        slot_map: Mapping[int, tuple[int, int]],
        *,
        max_pulse_ms: int = 1000,
        bit_set_means_locked: bool = True,
        board_answers_unlock: bool = False,
        allow_unlock_all: bool = False,
        verify_release: bool = True,
        retries: int = 2,
        backoff_s: float = 0.05,
        backoff_max_s: float = 0.5,
        reply_timeout_s: float = 0.25,
        baudrate: int = DEFAULT_BAUDRATE,
        sleep: Callable[[float], None] = time.sleep,
        register_atexit: bool = True,
        turnaround_s: float = 0.004,
        reopen_backoff_s: float = 0.1,
        reopen_backoff_max_s: float = 5.0,
        quarantine_after: int = 2,
        reprobe_s: float = 5.0,
        status_variant: StatusVariant = "off",
        pulse_ms: int | None = None,
        duty: DutyLimit | None = None,
        opener: Callable[[], SerialPort] | None = None,
        on_bus_change: BusListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Validate the configuration, then take over ``port`` (or open it from a URL).

        ``slot_map`` is ``{slot: (board 0-15, channel 1-16)}``. ``max_pulse_ms`` (10–2000)
        caps every pulse; ``pulse_ms`` (default: 500 ms within the cap) is the coil time set
        at commissioning and restored on close. ``bit_set_means_locked`` and
        ``board_answers_unlock`` describe the firmware. ``turnaround_s`` is the gap after a
        frame no board answers. ``quarantine_after``/``reprobe_s`` govern dead boards,
        ``reopen_backoff_s``/``reopen_backoff_max_s`` a dead port. ``duty`` limits how often
        one coil may pulse. ``opener`` reopens an injected port (a URL reopens itself).
        ``sleep`` (backoff only) and ``clock`` are injectable for tests.
        """
        _bounded("max_pulse_ms", max_pulse_ms, UNLOCK_TIME_UNIT_MS, HARD_MAX_PULSE_MS)
        _bounded("retries", retries, 0, 10)
        _bounded("backoff_s", backoff_s, 0.0, 2.0)
        _bounded("backoff_max_s", backoff_max_s, backoff_s, 5.0)
        _bounded("reply_timeout_s", reply_timeout_s, 0.01, 5.0)
        _bounded("turnaround_s", turnaround_s, 0.0, 0.1)
        _bounded("reopen_backoff_s", reopen_backoff_s, 0.01, 10.0)
        _bounded("reopen_backoff_max_s", reopen_backoff_max_s, reopen_backoff_s, 60.0)
        _bounded("quarantine_after", quarantine_after, 1, 100)
        _bounded("reprobe_s", reprobe_s, 0.1, 600.0)
        if status_variant not in ("off", "per-board", "aggregate"):
            raise ValueError(f"status_variant must be off, per-board or aggregate, got {status_variant!r}")
        self._locations = self._check_map(slot_map)
        self._by_board: dict[int, dict[int, int]] = {}
        for slot, (board, channel) in sorted(self._locations.items()):
            self._by_board.setdefault(board, {})[channel] = slot
        self._max_pulse_ms = max_pulse_ms
        self._pulse_ms = cap_pulse(pulse_ms, configured_max_ms=max_pulse_ms)
        self._set_means_locked = bit_set_means_locked
        self._answers_unlock = board_answers_unlock
        self._allow_unlock_all = allow_unlock_all
        self._verify_release = verify_release
        self._retries = retries
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._reply_timeout_s = reply_timeout_s
        self._sleep = sleep
        self._clock = clock
        self._duty = DutyCycle(duty, clock=clock) if duty is not None else None
        self._bus = threading.RLock()
        self._closed = False
        self._unconfirmed: set[int] = set()
        self._armed: dict[int, tuple[int, float]] = {}  # board → (coil ms, until), see arm()
        self._link = Link(
            port, opener=opener, baudrate=baudrate, reply_timeout_s=reply_timeout_s,
            turnaround_s=turnaround_s, reopen_backoff_s=reopen_backoff_s,
            reopen_backoff_max_s=reopen_backoff_max_s, clock=clock, on_bus_change=on_bus_change,
        )
        self._sweeper = Sweeper(
            self._link, tuple(self._by_board), read_status=self._read_status,
            name=self._board_name, clock=clock, quarantine_after=quarantine_after,
            reprobe_s=reprobe_s, variant=status_variant,
        )
        self._atexit_hook: Callable[[], None] | None = None
        if register_atexit:
            self._atexit_hook = functools.partial(_close_at_exit, weakref.ref(self))
            atexit.register(self._atexit_hook)

    @staticmethod
    def _check_map(slot_map: Mapping[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
        """Refuse a map that would make one command move the wrong latch."""
        if not slot_map:
            raise ValueError("slot map is empty")
        seen: dict[tuple[int, int], int] = {}
        for slot, (board, channel) in slot_map.items():
            if slot < 1:
                raise ValueError(f"slot {slot}: slot numbers start at 1")
            if not 0 <= board < MAX_BOARDS:
                raise ValueError(f"slot {slot}: board must be 0..{MAX_BOARDS - 1}, got {board}")
            if not 1 <= channel <= CHANNELS_PER_BOARD:
                raise ValueError(f"slot {slot}: channel must be 1..16, got {channel}")
            if (board, channel) in seen:
                raise ValueError(
                    f"slots {seen[(board, channel)]} and {slot} both on board {board} "
                    f"channel {channel}"
                )
            seen[(board, channel)] = slot
        return dict(slot_map)

    # -- bus health ------------------------------------------------------------------------------
    @property
    def bus_ok(self) -> bool:
        """False from a transport failure until a board answers again (poll this, or pass
        ``on_bus_change``)."""
        return self._link.bus_ok

    @property
    def bus_fault(self) -> str | None:
        """Why the bus is down, or ``None``."""
        return self._link.fault

    @property
    def quarantined(self) -> tuple[int, ...]:
        """Boards skipped by status sweeps until a re-probe finds them answering."""
        with self._bus:
            return self._sweeper.quarantined

    @property
    def status_variant(self) -> StatusVariant:
        """How status sweeps ask (set by :meth:`commission`, or forced by the config)."""
        return self._sweeper.variant

    @status_variant.setter
    def status_variant(self, variant: StatusVariant) -> None:
        self._sweeper.variant = variant

    @property
    def on_bus_change(self) -> BusListener | None:
        return self._link.on_bus_change

    @on_bus_change.setter
    def on_bus_change(self, listener: BusListener | None) -> None:
        self._link.on_bus_change = listener

    # -- the LockBank interface ------------------------------------------------------------
    @property
    def slots(self) -> tuple[int, ...]:
        """The cabinet slot numbers this bus drives, ascending."""
        return tuple(sorted(self._locations))

    @property
    def boards(self) -> tuple[int, ...]:
        """The board addresses that carry at least one mapped slot."""
        return tuple(sorted(self._by_board))

    @property
    def unconfirmed(self) -> tuple[int, ...]:
        """Slots sent an unlock (even one that failed) and not yet confirmed locked since."""
        with self._bus:
            return tuple(sorted(self._unconfirmed))

    def location(self, slot: int) -> tuple[int, int]:
        """(board, channel) of ``slot``."""
        try:
            return self._locations[slot]
        except KeyError:
            raise LockBoardError(f"slot {slot} is not on this Kerong bus") from None

    def unlock(self, slot: int, pulse_ms: int | None = None) -> None:
        """Release ``slot`` for ``pulse_ms`` (capped) once, and return once a board confirmed it.

        Raises :class:`~drivers.errors.DutyCycleExceeded` (before any byte) if the coil
        pulsed too recently, :class:`LockBoardError` naming board, channel and slot if no
        valid reply came, :class:`BusFault` if the transport failed, and :class:`LockFault`
        if the lock still reads locked after the command (``verify_release``).
        """
        board, channel = self.location(slot)
        pulse = cap_pulse(pulse_ms, configured_max_ms=self._max_pulse_ms)
        what = f"{self._name(slot)}: unlock"
        with self._bus:
            self._check_open()
            try:
                st = self._unlock_once(slot, board, channel, pulse, what)
            except BaseException:
                self.lock_all()
                raise
        if self._verify_release and self._is_locked(st, channel):
            raise LockFault(
                slot, f"Kerong board {board} channel {channel} still reads locked after unlock"
            )

    def arm(self, slot: int, pulse_ms: int | None = None, *,
            valid_s: float = ARM_VALID_S) -> bool:
        """Send the 0x37 (coil time) of ``slot``'s next unlock now; nothing opens.

        Why: at 19200 baud the 0x37 is 3.6 ms on the wire plus the turnaround before the
        0x31 may follow. Sent ahead (when a person picks the key on the screen, or at the
        latest while the unlock's intent is being committed), it is off the path from a
        person's choice to the lock opening. The next :meth:`unlock` on this board with the
        same pulse, within ``valid_s`` (at most ``ARM_VALID_MAX_S``), sends only its 0x31
        (and reads the status as ever); anything that sets the board's time in between
        disarms it, and so does the board missing a status sweep (it may have reset and
        forgotten the time). A board still armed with the same pulse is not sent it again
        (its arming lasts the longer of the two); returns whether a frame went out.
        Raises like :meth:`unlock` on a dead bus (the unlock then tries again in full).
        """
        board, _channel = self.location(slot)
        pulse = cap_pulse(pulse_ms, configured_max_ms=self._max_pulse_ms)
        until = self._clock() + max(0.0, min(valid_s, ARM_VALID_MAX_S))
        with self._bus:
            self._check_open()
            armed = self._armed.pop(board, None)
            if armed is not None and armed[0] == pulse and self._clock() <= armed[1]:
                self._armed[board] = (pulse, max(until, armed[1]))
                return False
            try:
                self._link.send(encode_set_unlock_time(board, pulse))
            except BusFault as exc:
                raise BusFault(f"{self._name(slot)}: arm: {exc}") from exc
            self._armed[board] = (pulse, until)
            return True

    def disarm(self) -> None:
        """Forget every arming: the next unlock of each board sends its 0x37 again. No byte
        goes out (a board keeps the time of its last 0x37 in any case, as after an unlock);
        the cabinet calls it when a visit ends, so an arming never outlives the person it was
        sent for."""
        with self._bus:
            self._armed.clear()

    def armed_boards(self) -> tuple[int, ...]:
        """The boards whose next unlock will skip its 0x37 (read by tests and the tap bench)."""
        with self._bus:
            now = self._clock()
            return tuple(sorted(b for b, (_, until) in self._armed.items() if now <= until))

    def status(self) -> dict[int, SlotState]:
        """Every mapped slot's lock and key bits.

        Healthy boards are asked with one 0x32 (if commissioning found a variant) or one
        0x30 each; quarantined boards are skipped except for their periodic re-probe. If
        some boards failed, raises :class:`PartialStatus` carrying the others' slots; if all
        failed, a plain :class:`LockBoardError`; a transport failure is a :class:`BusFault`.
        """
        with self._bus:
            self._check_open()
            try:
                got, failures = self._sweeper.sweep()
            except BusFault:
                self._armed.clear()
                raise
            for board in failures:  # silent a moment: it may have reset and lost its time
                self._armed.pop(board, None)
        result: dict[int, SlotState] = {}
        for board, st in got.items():
            for ch, slot in self._by_board[board].items():
                result[slot] = self._slot_state(slot, st, ch)
        result = dict(sorted(result.items()))
        if failures:
            message = "; ".join(failures[b] for b in sorted(failures))
            if result:
                raise PartialStatus(message, status=result, failed=failures)
            raise LockBoardError(message)
        return result

    def lock_all(self) -> None:
        """Bring the bus to the safe state described in the module docstring. Never raises.

        Waits for a request in progress (they are bounded), discards unsent output and
        unread input, and sets every board's unlock time to its minimum.
        """
        with self._bus:
            self._armed.clear()
            if self._closed:
                return
            self._link.discard_output()
            for board in self.boards:
                self._link.write_best_effort(encode_set_unlock_time(board, UNLOCK_TIME_UNIT_MS))

    def close(self) -> None:
        """Lock everything, restore the configured coil time, release the port. Idempotent."""
        with self._bus:
            if self._closed:
                return
            try:
                self.lock_all()
                for board in self.boards:
                    self._link.write_best_effort(encode_set_unlock_time(board, self._pulse_ms))
            finally:
                self._closed = True
                self._link.close()
                if self._atexit_hook is not None:
                    atexit.unregister(self._atexit_hook)
                    self._atexit_hook = None

    def __enter__(self) -> KerongLockBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- beyond the interface ----------------------------------------------------------------
    def confirm_locked(self, slot: int) -> SlotState:
        """Read ``slot`` back after its pulse: raise :class:`LockFault` if it is still open.

        On pop-open locker compartments the lock reads unlocked until a person shuts the
        door, so there the cabinet calls this after the door sensor says shut, or treats
        the fault as "door left open".
        """
        board, channel = self.location(slot)
        with self._bus:
            self._check_open()
            st = self._read_status(board, f"{self._name(slot)}: confirm locked")
            state = self._slot_state(slot, st, channel)
            if not state.locked:
                raise LockFault(
                    slot,
                    f"Kerong board {board} channel {channel} still unlocked after its pulse "
                    "(compartment door left open, jammed latch or stuck coil)",
                )
            self._unconfirmed.discard(slot)
        return state

    def unlock_and_confirm(
        self, slot: int, pulse_ms: int | None = None, *, grace_ms: int = 250
    ) -> SlotState:
        """Unlock, wait for the pulse plus ``grace_ms``, then :meth:`confirm_locked`."""
        pulse = cap_pulse(pulse_ms, configured_max_ms=self._max_pulse_ms)
        self.unlock(slot, pulse)
        self._sleep((pulse + max(0, grace_ms)) / 1000)
        return self.confirm_locked(slot)

    def read_board(self, board: int) -> dict[int, SlotState]:
        """Status of the mapped slots of one board (one 0x30 request, retried)."""
        if board not in self._by_board:
            raise LockBoardError(f"Kerong board {board} carries no slot on this bus")
        with self._bus:
            self._check_open()
            st = self._read_status(board, f"{self._board_name(board)}: status")
        return {slot: self._slot_state(slot, st, ch) for ch, slot in self._by_board[board].items()}

    def scan(self) -> dict[int, BoardStatus]:
        """Broadcast 0x32 and collect every board that answers (either reply variant).

        For commissioning: shows which addresses are alive, mapped or not. No retries.
        """
        with self._bus:
            self._check_open()
            found, _variant = self._sweeper.broadcast(set(range(MAX_BOARDS)))
        return dict(sorted(found.items()))

    def commission(self) -> CommissionReport:
        """Start-up check: which boards answer, which 0x32 variant they speak, coil times.

        Sets :attr:`status_variant` from what answered 0x32, then sets every answering
        mapped board's coil time to the configured pulse and reads it back (0x38/0x39). A
        board that reads back a different time is a :class:`LockBoardError`: it would
        open its locks for a time nobody configured. A board that does not answer the
        read-back is reported (``coil_ms[board] is None``), not refused.
        """
        with self._bus:
            self._check_open()
            self._armed.clear()  # every board's coil time is set below
            found, variant = self._sweeper.broadcast(set(range(MAX_BOARDS)))
            self.status_variant = variant
            for board in self.boards:
                if board in found:
                    continue
                try:  # firmware without 0x32: ask each board alone
                    found[board] = self._read_status(board, f"{self._board_name(board)}: probe")
                except BusFault:
                    raise
                except LockBoardError as exc:
                    log.warning("commissioning: %s", exc)
            coil: dict[int, int | None] = {}
            for board in self.boards:
                if board in found:
                    coil[board] = self._set_and_read_coil_time(board, self._pulse_ms)
        mapped = set(self.boards)
        report = CommissionReport(
            variant=variant,
            answering=tuple(sorted(found)),
            missing=tuple(sorted(mapped - set(found))),
            unmapped=tuple(sorted(set(found) - mapped)),
            coil_ms=coil,
        )
        log.info("Kerong commissioning: %s", report)
        return report

    def unlock_all(self, board: int) -> None:
        """0x33: release every lock of ``board`` at once — refused unless configured."""
        if not self._allow_unlock_all:
            raise LockBoardError(
                f"Kerong board {board}: unlock-all (0x33) refused: allow_unlock_all is off"
            )
        if board not in self._by_board:
            raise LockBoardError(f"Kerong board {board} carries no slot on this bus")
        what = f"Kerong board {board}: unlock all"
        with self._bus:
            self._check_open()
            self._unconfirmed.update(self._by_board[board].values())
            try:
                st, _reason = self._pulse_frames(
                    board, encode_unlock_all(board), self._max_pulse_ms
                )
                if st is None:
                    self._read_status(board, what)
            except BaseException:
                self.lock_all()
                raise

    # -- internals: unlock -----------------------------------------------------------------------
    def _unlock_once(
        self, slot: int, board: int, channel: int, pulse: int, what: str
    ) -> BoardStatus:
        """Pulse once; on a lost answer read before pulsing again (see module docstring)."""
        attempts = self._retries + 1
        pulsed = False
        reason = "no attempt made"
        for attempt in range(attempts):
            if attempt:
                self._sleep(min(self._backoff_max_s, self._backoff_s * 2 ** (attempt - 1)))
            if pulsed:
                st, reason = self._reread(board)
                if st is None:
                    log.info("%s: attempt %d/%d: %s", what, attempt + 1, attempts, reason)
                    continue
                if not self._is_locked(st, channel):
                    return st  # the first pulse worked; its answer was only late or lost
                log.warning("%s: reads locked after a pulse whose answer was lost; pulsing again",
                            what)
            if self._duty is not None:
                self._duty.admit(slot, pulse)
            self._unconfirmed.add(slot)  # from the first byte on, the latch may be free
            try:
                st, reason = self._pulse_frames(board, encode_unlock(board, channel), pulse)
            except BusFault as exc:
                raise BusFault(f"{what}: {exc}") from exc
            pulsed = True
            if st is not None:
                return st
            log.info("%s: attempt %d/%d: %s", what, attempt + 1, attempts, reason)
        raise LockBoardError(f"{what}: {reason} (after {attempts} attempts)")

    def _pulse_frames(
        self, board: int, unlock_frame: bytes, pulse: int
    ) -> tuple[BoardStatus | None, str]:
        """0x37 (coil time, unless :meth:`arm` sent it just before), then the unlock frame,
        then the status answer.

        A board that answers unlocks gets its reply window after 0x31. A board configured
        silent gets a short listening window (``QUIET_S``) before the 0x30 goes out, so a
        misconfigured board's answer can neither collide with the 0x30 nor be taken for its
        answer; if an answer does come in that window, it *is* the status after the unlock.
        """
        link = self._link
        armed = self._armed.pop(board, None)  # each unlock uses an arming once at most
        if armed is None or armed[0] != pulse or self._clock() > armed[1]:
            link.send(encode_set_unlock_time(board, pulse))
        link.send(unlock_frame)
        if self._answers_unlock:
            frames, reason = link.collect(self._status_of(board))
            return self._last_status(frames), reason
        frames, _ = link.collect(self._status_of(board), window_s=link_module.QUIET_S)
        if frames:
            return self._last_status(frames), ""
        link.send(encode_status_request(board))
        # A board configured silent may still answer the 0x31, late: then two answers come
        # and the second must not be left in the line for the next request to take.
        frames, reason = link.collect(self._status_of(board), count=2)
        return self._last_status(frames), reason

    def _reread(self, board: int) -> tuple[BoardStatus | None, str]:
        """Status only, for a retry after a pulse: first listen (a late answer to the pulse
        is still on its way and must not collide with a new frame), then ask."""
        link = self._link
        frames, _ = link.collect(self._status_of(board), window_s=link_module.QUIET_S)
        if frames:
            return self._last_status(frames), ""
        link.send(encode_status_request(board), flush_input=False)
        frames, reason = link.collect(self._status_of(board), count=2)  # a late one may follow
        return self._last_status(frames), reason

    # -- internals: status -----------------------------------------------------------------------
    def _read_status(self, board: int, what: str, *, attempts: int | None = None) -> BoardStatus:
        """0x30 to one board with bounded retries and backoff."""
        total = self._retries + 1 if attempts is None else attempts
        reason = "no attempt made"
        for attempt in range(total):
            if attempt:
                self._sleep(min(self._backoff_max_s, self._backoff_s * 2 ** (attempt - 1)))
            try:
                self._link.send(encode_status_request(board))
                frames, reason = self._link.collect(self._status_of(board))
            except BusFault as exc:
                raise BusFault(f"{what}: {exc}") from exc
            st = self._last_status(frames)
            if st is not None:
                return st
            log.info("%s: attempt %d/%d failed: %s", what, attempt + 1, total, reason)
        raise LockBoardError(f"{what}: {reason} (after {total} attempts)")

    def _set_and_read_coil_time(self, board: int, time_ms: int) -> int | None:
        link = self._link
        link.send(encode_set_unlock_time(board, time_ms))
        link.send(encode_read_unlock_time(board))
        frames, reason = link.collect(
            lambda f: f.cmd == CMD_UNLOCK_TIME_REPLY and f.board == board
        )
        if not frames:
            log.warning("Kerong board %d: coil time not readable (%s); it is set before "
                        "every unlock instead", board, reason)
            return None
        got = decode_unlock_time_ms(frames[-1])
        expected = max(1, time_ms // UNLOCK_TIME_UNIT_MS) * UNLOCK_TIME_UNIT_MS
        if got != expected:
            raise LockBoardError(
                f"Kerong board {board}: coil time reads back {got} ms after setting {expected} ms"
            )
        return got

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _status_of(board: int) -> Callable[[Frame], bool]:
        return lambda f: f.cmd == CMD_STATUS_REPLY and f.board == board

    @staticmethod
    def _last_status(frames: list[Frame]) -> BoardStatus | None:
        """The newest matching answer: after an unlock the last one is the freshest state."""
        return decode_status(frames[-1]) if frames else None

    def _check_open(self) -> None:
        if self._closed:
            raise LockBoardError("Kerong lock bank is closed")

    def _name(self, slot: int) -> str:
        board, channel = self._locations[slot]
        return f"Kerong board {board} channel {channel} (slot {slot})"

    def _board_name(self, board: int) -> str:
        slots = ",".join(str(s) for s in sorted(self._by_board[board].values()))
        return f"Kerong board {board} (slots {slots})"

    def _is_locked(self, st: BoardStatus, channel: int) -> bool:
        return st.lock_bit(channel) == self._set_means_locked

    def _slot_state(self, slot: int, st: BoardStatus, channel: int) -> SlotState:
        locked = self._is_locked(st, channel)
        return SlotState(slot=slot, locked=locked, key_present=st.key_bit(channel))
