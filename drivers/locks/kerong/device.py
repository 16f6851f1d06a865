"""Kerong KR-CU16 lock boards as a :class:`~drivers.locks.base.LockBank`.

What "locked" and "safe" mean on this hardware
----------------------------------------------
A Kerong lock is pulse-driven by the board itself: ``0x31`` energises one coil and the
*board* drops it again after its unlock time (``0x37``). There is no "hold open" and no
"relock now" command, so the host can never leave a coil latched on; the worst it can do
is ask for a long unlock time. This driver therefore defines the safe state as:

* no unlock is in flight and no command is queued in the driver or the port's output
  buffer (requests are synchronous under one lock; :meth:`KerongLockBank.lock_all`
  discards unsent output);
* every board's unlock time is the configured cap or less — it is sent (floored to
  10 ms units) in front of *every* unlock, so a board that lost power and came back with a
  factory default never gets to use it (boards do not answer 0x37, so a corrupted 0x37
  goes unseen and the board keeps its previous, also capped, time), and
  :meth:`~KerongLockBank.lock_all` sets it to the minimum (10 ms) so a coil drops at once
  on firmware that applies it to a running pulse, and any stray unlock is as short as the
  board allows;
* within ``max_pulse_ms`` of the last unlock every latch has closed, which
  :meth:`~KerongLockBank.confirm_locked` checks: a lock still reading open after its pulse
  is a :class:`~drivers.errors.LockFault` (jammed latch, welded coil driver).

``close()``, every exception path of a command that moves a latch, and process exit
(``atexit``) all go through ``lock_all``. A bus that does not answer is always a
:class:`~drivers.errors.LockBoardError`, never a success: even on boards that stay silent
after ``0x31`` the driver follows the unlock with a status read, so an unlock only returns
once a board has spoken.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Protocol

import serial

from drivers.errors import LockBoardError, LockFault
from drivers.locks.base import HARD_MAX_PULSE_MS, SlotState, cap_pulse
from drivers.locks.kerong.codec import (
    CHANNELS_PER_BOARD,
    CMD_STATUS,
    CMD_STATUS_REPLY,
    CMD_UNLOCK,
    CMD_UNLOCK_ALL,
    MAX_BOARDS,
    UNLOCK_TIME_UNIT_MS,
    BoardStatus,
    FrameParser,
    decode_status,
    encode_set_unlock_time,
    encode_status_all,
    encode_status_request,
    encode_unlock,
    encode_unlock_all,
)

log = logging.getLogger(__name__)

DEFAULT_BAUDRATE = 19200
POLL_S = 0.02
"""Longest single blocking read; the reply deadline is enforced around it."""
QUIET_S = 0.02
"""How long the line must stay silent before the next request when an exchange did not
end cleanly: a second answer is still possible (a board configured as silent that answers
0x31 after all), or noise, a bad checksum or half a frame came with the answer. About ten
frame times at 19200 baud; deliberately not 3.5 character times (1.8 ms, the Modbus RTU
gap), because a USB RS-485 adapter delivers bytes in bursts up to its latency timer
(16 ms by default on FTDI) late, so a shorter host-side gap would not prove the line quiet.
An exchange that did end cleanly (every answer the request can draw came, checksums good,
nothing else on the line) ends at once: there is nothing left to wait for."""

REPLYING_COMMANDS = frozenset({CMD_STATUS, CMD_UNLOCK, CMD_UNLOCK_ALL})
"""Requests a board may answer with a 0x35 status frame (0x31/0x33 only on firmware that
answers unlocks, so they count as "may")."""


class SerialPort(Protocol):
    """The part of a pyserial port the driver uses (any ``serial_for_url`` result fits)."""

    @property
    def timeout(self) -> float | None: ...
    @timeout.setter
    def timeout(self, value: float | None) -> None: ...
    @property
    def in_waiting(self) -> int: ...
    def read(self, size: int = 1, /) -> bytes: ...
    def write(self, data: bytes, /) -> int | None: ...
    def flush(self) -> None: ...
    def reset_input_buffer(self) -> None: ...
    def reset_output_buffer(self) -> None: ...
    def close(self) -> None: ...


def open_port(url: str, *, baudrate: int = DEFAULT_BAUDRATE, timeout: float = POLL_S) -> SerialPort:
    """Open the bus from a URL: ``/dev/ttyUSB0``, ``socket://host:port`` or ``loop://``.

    8N1 is what every Kerong board speaks; only the baud rate varies between installs.
    """
    try:
        port: SerialPort = serial.serial_for_url(
            url, baudrate=baudrate, bytesize=8, parity="N", stopbits=1,
            timeout=timeout, write_timeout=1.0,
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise LockBoardError(f"cannot open Kerong lock bus {url!r}: {exc}") from exc
    return port


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
    several worker threads. Commands are retried ``retries`` times with exponential
    backoff (``backoff_s`` doubling, at most ``backoff_max_s``), each attempt waiting at
    most ``reply_timeout_s``; so the worst case of any call is bounded and known.
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
    ) -> None:
        """Validate the configuration, then take over ``port`` (or open it from a URL).

        ``slot_map`` is ``{slot: (board 0-15, channel 1-16)}``; one channel per slot.
        ``max_pulse_ms`` (10–2000) caps every pulse through :func:`cap_pulse`.
        ``bit_set_means_locked`` and ``board_answers_unlock`` describe the firmware: which
        way round the lock bits are, and whether a board answers 0x31/0x33 with a status
        frame (if not, the driver asks for status itself). ``verify_release`` makes an
        unlock whose lock still reads locked a :class:`LockFault`. Out-of-range values are a
        ``ValueError`` at start-up, never a surprise on the bus. ``sleep`` is injectable so
        tests can move a simulated clock instead of waiting; ``register_atexit`` adds the
        exit hook that runs :meth:`close`.
        """
        _bounded("max_pulse_ms", max_pulse_ms, UNLOCK_TIME_UNIT_MS, HARD_MAX_PULSE_MS)
        _bounded("retries", retries, 0, 10)
        _bounded("backoff_s", backoff_s, 0.0, 2.0)
        _bounded("backoff_max_s", backoff_max_s, backoff_s, 5.0)
        _bounded("reply_timeout_s", reply_timeout_s, 0.01, 5.0)
        self._locations = self._check_map(slot_map)
        self._by_board: dict[int, dict[int, int]] = {}
        for slot, (board, channel) in sorted(self._locations.items()):
            self._by_board.setdefault(board, {})[channel] = slot
        self._max_pulse_ms = max_pulse_ms
        self._set_means_locked = bit_set_means_locked
        self._answers_unlock = board_answers_unlock
        self._allow_unlock_all = allow_unlock_all
        self._verify_release = verify_release
        self._retries = retries
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._reply_timeout_s = reply_timeout_s
        self._sleep = sleep
        self._bus = threading.RLock()
        self._closed = False
        self._unconfirmed: set[int] = set()
        self._port = open_port(port, baudrate=baudrate) if isinstance(port, str) else port
        # An injected port may block forever on read; the deadline loop needs short reads.
        self._port.timeout = min(POLL_S, reply_timeout_s)
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
        """Release ``slot`` for ``pulse_ms`` (capped) and return once a board confirmed it.

        The board's unlock time is set just before the unlock so the pulse is what was
        asked, not whatever the board last held. Raises :class:`LockBoardError` naming
        board, channel and slot if no valid reply came, and :class:`LockFault` if the lock
        still reads locked after the command (``verify_release``).
        """
        board, channel = self.location(slot)
        pulse = cap_pulse(pulse_ms, configured_max_ms=self._max_pulse_ms)
        frames = [encode_set_unlock_time(board, pulse), encode_unlock(board, channel)]
        if not self._answers_unlock:
            frames.append(encode_status_request(board))
        with self._bus:
            self._check_open()
            self._unconfirmed.add(slot)  # from the first byte on, the latch may be free
            st = self._guarded(board, frames, f"{self._name(slot)}: unlock")
        if self._verify_release and self._is_locked(st, channel):
            raise LockFault(
                slot, f"Kerong board {board} channel {channel} still reads locked after unlock"
            )

    def status(self) -> dict[int, SlotState]:
        """Poll every board (0x30 each, so a silent board is named) and map bits to slots.

        If any board fails, raises one :class:`LockBoardError` naming every failed board;
        :meth:`read_board` reads one board alone.
        """
        result: dict[int, SlotState] = {}
        failures: list[str] = []
        for board in self.boards:
            try:
                result.update(self.read_board(board))
            except LockBoardError as exc:
                failures.append(str(exc))
        if failures:
            raise LockBoardError("; ".join(failures))
        return dict(sorted(result.items()))

    def lock_all(self) -> None:
        """Bring the bus to the safe state described in the module docstring. Never raises.

        Waits for a request in progress (they are bounded), discards unsent output and
        unread input, and sets every board's unlock time to its minimum.
        """
        with self._bus:
            if self._closed:
                return
            for action in (self._port.reset_output_buffer, self._port.reset_input_buffer):
                try:
                    action()
                except Exception as exc:
                    log.warning("Kerong lock_all: %s failed: %s", action.__name__, exc)
            for board in self.boards:
                try:
                    self._port.write(encode_set_unlock_time(board, UNLOCK_TIME_UNIT_MS))
                except Exception as exc:  # one silent board must not stop the others
                    log.warning("Kerong lock_all: board %d: %s", board, exc)
            try:
                self._port.flush()
            except Exception as exc:
                log.warning("Kerong lock_all: flush failed: %s", exc)

    def close(self) -> None:
        """Lock everything, release the port, and drop the atexit hook. Idempotent."""
        with self._bus:
            if self._closed:
                return
            try:
                self.lock_all()
            finally:
                self._closed = True
                try:
                    self._port.close()
                except Exception as exc:
                    log.warning("Kerong close: %s", exc)
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

        The cabinet calls this once the pulse it asked for has elapsed (or uses
        :meth:`unlock_and_confirm`). A slot that reads locked leaves :attr:`unconfirmed`.
        On pop-open locker compartments the lock reads unlocked until a person shuts the
        door, so there the cabinet calls this after the door sensor says shut, or treats
        the fault as "door left open".
        """
        board, channel = self.location(slot)
        with self._bus:
            self._check_open()
            st = self._transact(
                board, [encode_status_request(board)], f"{self._name(slot)}: confirm locked"
            )
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
        """Unlock, wait for the pulse plus ``grace_ms``, then :meth:`confirm_locked`.

        Blocks for the whole pulse; the cabinet normally calls :meth:`unlock` and later
        :meth:`confirm_locked` instead, so a person can take the key meanwhile.
        """
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
            st = self._transact(
                board, [encode_status_request(board)],
                f"Kerong board {board} (slots {self._slot_list(board)}): status",
            )
        return {slot: self._slot_state(slot, st, ch) for ch, slot in self._by_board[board].items()}

    def scan(self) -> dict[int, BoardStatus]:
        """Broadcast 0x32 and collect every board that answers within the reply timeout.

        For commissioning: shows which addresses are alive, mapped or not. No retries;
        an empty result means nothing answered.
        """
        found: dict[int, BoardStatus] = {}
        with self._bus:
            self._check_open()
            try:
                self._port.reset_input_buffer()
                self._port.write(encode_status_all())
                self._port.flush()
                parser = FrameParser()
                deadline = time.monotonic() + self._reply_timeout_s
                while time.monotonic() < deadline:
                    frames, _ = parser.feed_all(self._port.read(max(1, self._port.in_waiting)))
                    for frame in frames:
                        if frame.cmd == CMD_STATUS_REPLY:
                            found[frame.board] = decode_status(frame)
            except (serial.SerialException, OSError) as exc:
                self.lock_all()
                raise LockBoardError(f"Kerong bus scan: transport error: {exc}") from exc
        return dict(sorted(found.items()))

    def unlock_all(self, board: int) -> None:
        """0x33: release every lock of ``board`` at once — refused unless configured.

        Opening a whole board empties the cabinet's protection in one frame, so it is off
        by default and refused before a single byte is written.
        """
        if not self._allow_unlock_all:
            raise LockBoardError(
                f"Kerong board {board}: unlock-all (0x33) refused: allow_unlock_all is off"
            )
        if board not in self._by_board:
            raise LockBoardError(f"Kerong board {board} carries no slot on this bus")
        frames = [encode_set_unlock_time(board, self._max_pulse_ms), encode_unlock_all(board)]
        if not self._answers_unlock:
            frames.append(encode_status_request(board))
        with self._bus:
            self._check_open()
            self._unconfirmed.update(self._by_board[board].values())
            self._guarded(board, frames, f"Kerong board {board}: unlock all")

    # -- internals -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise LockBoardError("Kerong lock bank is closed")

    def _name(self, slot: int) -> str:
        board, channel = self._locations[slot]
        return f"Kerong board {board} channel {channel} (slot {slot})"

    def _slot_list(self, board: int) -> str:
        return ",".join(str(s) for s in sorted(self._by_board[board].values()))

    def _is_locked(self, st: BoardStatus, channel: int) -> bool:
        return st.lock_bit(channel) == self._set_means_locked

    def _slot_state(self, slot: int, st: BoardStatus, channel: int) -> SlotState:
        locked = self._is_locked(st, channel)
        return SlotState(slot=slot, locked=locked, key_present=st.key_bit(channel))

    def _guarded(self, board: int, frames: list[bytes], what: str) -> BoardStatus:
        """A command that moves a latch: on any failure, bring the bus to the safe state."""
        try:
            return self._transact(board, frames, what)
        except BaseException:
            self.lock_all()
            raise

    def _transact(self, board: int, frames: list[bytes], what: str) -> BoardStatus:
        """Write ``frames`` and wait for ``board``'s status frame; retry with backoff.

        The caller holds the bus lock. Stale input is discarded first so a late answer to
        an earlier request can never be taken for this one.
        """
        attempts = self._retries + 1
        reason = "no attempt made"
        request = b"".join(frames)
        replies = sum(1 for frame in frames if frame[2] in REPLYING_COMMANDS)
        for attempt in range(attempts):
            if attempt:
                self._sleep(min(self._backoff_max_s, self._backoff_s * 2 ** (attempt - 1)))
            try:
                self._port.reset_input_buffer()
                # One write: the same bytes back to back as frame-by-frame writes, but one
                # syscall, and on a TCP bus (the simulator, serial servers) Nagle's algorithm
                # cannot hold the second frame back until the first is acknowledged.
                self._port.write(request)
                self._port.flush()
                st, reason = self._await_status(board, replies)
            except (serial.SerialException, OSError) as exc:
                reason = f"transport error: {exc}"
                continue
            if st is not None:
                return st
            log.info("%s: attempt %d/%d failed: %s", what, attempt + 1, attempts, reason)
        raise LockBoardError(f"{what}: {reason} (after {attempts} attempts)")

    def _await_status(self, board: int, replies: int = 1) -> tuple[BoardStatus | None, str]:
        """Read until ``board``'s 0x35 frame arrives and no other answer can follow.

        Frames from other boards and echoes of our own request (common on two-wire RS-485
        adapters) are skipped. ``replies`` is how many status frames the request can draw
        at most (a 0x30 alone: one; 0x31 then 0x30: two, if the board answers unlocks).
        Once that many matches came, with good checksums, no noise and no half frame held
        back, the exchange is over and the answer is returned at once: waiting longer
        could only hear a board nobody addressed. Otherwise, after the first match the
        driver keeps listening until no byte came for ``QUIET_S`` and keeps the *last*
        match: a board that answers unlock although configured as silent sends two status
        frames (unlock, then status), and the second must not be left in the line to be
        taken for the next request's answer; and after noise the line is given time to
        settle before the next request. The reason string says what was seen instead of
        an answer.
        """
        parser = FrameParser()
        received = 0
        bad = 0
        matches = 0
        found: BoardStatus | None = None
        deadline = time.monotonic() + self._reply_timeout_s
        hard_stop = deadline  # replaced at the first match; bounds a babbling line
        while time.monotonic() < deadline:
            chunk = self._port.read(max(1, self._port.in_waiting))
            if not chunk:
                continue
            received += len(chunk)
            frames, errors = parser.feed_all(chunk)
            bad += len(errors)
            for frame in frames:
                if frame.cmd == CMD_STATUS_REPLY and frame.board == board:
                    if found is None:
                        hard_stop = time.monotonic() + self._reply_timeout_s
                    found = decode_status(frame)
                    matches += 1
            if found is None:
                continue
            if matches >= replies and not bad and not parser.discarded and not parser.pending:
                break  # a complete, clean exchange: nothing more can come
            deadline = min(hard_stop, time.monotonic() + QUIET_S)  # wait for the line to go quiet
        if found is not None:
            return found, ""
        if bad:
            return None, f"{bad} reply frame(s) with a bad checksum"
        if received:
            return None, f"no valid status reply ({received} bytes of garbage or other frames)"
        return None, f"no reply within {self._reply_timeout_s:.2f} s"
