"""Slot locks on a generic 8/16/32-channel Modbus RTU relay module (the common RS-485 boards).

Three layers, as everywhere in ``drivers``:

* transport: a pymodbus *sync* client. :meth:`ModbusRelayBank.from_url` builds one from the
  config URL (a serial port or pyserial URL for RTU, ``tcp://`` for Modbus TCP, ``rtu+tcp://``
  for RTU frames through a TCP gateway); any pymodbus sync client may be injected instead.
* codec: :func:`encode_flash` / :func:`decode_flash`, the boards' timed "flash on" command.
* device: :class:`ModbusRelayBank`, the :class:`~drivers.locks.base.LockBank`.

Pulse modes. ``"write-on-then-off"`` works on every board: coil on (FC05), wait, coil off.
``"flash"`` asks the board to time the pulse itself: one FC06 write to register
``flash_register_base + channel`` with ``(flash_command << 8) | units`` where a unit is
``flash_unit_ms``. With flash, a Pi that dies mid-pulse cannot leave a coil on. Boards
differ (command byte, register numbering, 100 ms or 1 s units): bench-test before use. In
both modes the coil is read back after the pulse; a coil still on after ``settle_ms`` is
forced off and reported as :class:`LockFault`, so a wrong unit cannot hold a coil on.

Failures. Every bus request is retried a bounded number of times with doubling backoff;
a board that stops answering is :class:`LockBoardError`, never a silent success. A failing
*transport* (a USB-RS485 adapter unplugged: the port cannot be opened, ``OSError`` /
``termios.error`` / ``SerialException`` under pymodbus; a Modbus TCP gateway gone) is
:class:`BusFault`, which the cabinet raises as its ``bus_fault`` alarm; the port is
reopened on the next request, so the bus comes back without a restart (:attr:`bus_ok`,
``on_bus_change``). A request that could not even be sent (no port) is known not to have
switched anything on. Any exception inside ``unlock``, ``close()`` and process exit drive
every coil to locked.
"""

from __future__ import annotations

import functools
import inspect
import logging
import termios
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import serial
from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.client.base import ModbusBaseSyncClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU

from drivers.errors import BusFault, LockBoardError, LockFault
from drivers.io import safety
from drivers.io.pulse import Sleep
from drivers.locks.base import SlotState, cap_pulse
from drivers.locks.duty import DutyCycle, DutyLimit
from drivers.locks.modbus_config import (
    PULSE_MODES,
    ModbusRelayConfig,
    PulseMode,
    decode_flash,
    encode_flash,
)

__all__ = ["PULSE_MODES", "ModbusRelayBank", "ModbusRelayConfig", "PulseMode", "decode_flash",
           "encode_flash", "unit_keyword"]

log = logging.getLogger(__name__)

READ_COILS = 0x01
READ_INPUTS = 0x02
WRITE_COIL = 0x05
WRITE_REGISTER = 0x06
WRITE_COILS = 0x0F
"""Modbus function codes the driver sends, each checked against its reply."""
POLL_MS = 50
"""Read-back interval while waiting for a coil to drop."""
NOT_RETRIED = frozenset({1, 2, 3})
"""Exception codes (illegal function/address/value) that no retry can fix."""
OFF_GRACE_MS = 100
"""After ``max_pulse_ms`` the "off" watchdog gives up waiting and raises; it keeps
re-sending "off" in the background every ``WATCHDOG_S`` until the board takes it."""
WATCHDOG_S = 0.1
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    ConnectionException, serial.SerialException, OSError, termios.error,
)
"""A failing transport, not a silent board. ``termios.error`` is *not* an OSError, and
pymodbus lets a raw one through from pyserial on an adapter that vanished mid-call."""
BusListener = Callable[[bool, str], None]
"""``on_bus_change(ok, message)``: called once per transition, from the calling thread."""


def unit_keyword(client: object) -> str:
    """The unit-address keyword of this pymodbus: ``device_id`` (3.10+), ``slave`` or ``unit``."""
    params = inspect.signature(client.read_coils).parameters  # type: ignore[attr-defined]
    for name in ("device_id", "slave", "unit"):
        if name in params:
            return name
    raise TypeError(f"cannot tell how {type(client).__name__} addresses a unit")


class _Refused(LockBoardError):
    """The board answered with a Modbus exception no retry can fix."""


class _NotSent(BusFault):
    """The port could not be opened: the request never left, nothing was switched."""


def _same_kind(cause: LockBoardError) -> type[LockBoardError]:
    """Re-wrapping keeps a transport failure a :class:`BusFault` (the cabinet's bus alarm)."""
    return BusFault if isinstance(cause, BusFault) else LockBoardError


# -- device --------------------------------------------------------------------------------
class ModbusRelayBank:
    """:class:`~drivers.locks.base.LockBank` on one Modbus relay board (one unit address)."""

    def __init__(
        self,
        client: ModbusBaseSyncClient,
        config: ModbusRelayConfig | None = None,
        *,
        sleep: Sleep = time.sleep,
        duty: DutyLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_bus_change: BusListener | None = None,
    ) -> None:
        """``duty`` limits how often one coil may pulse; ``clock`` times the "off" watchdog;
        ``on_bus_change(ok, message)`` hears when the transport fails and when it is back."""
        self.config = config or ModbusRelayConfig()
        self._client = client
        self._sleep = sleep
        self._clock = clock
        self._duty = DutyCycle(duty, clock=clock) if duty is not None else None
        self._watchdog: threading.Thread | None = None
        self._stuck: set[int] = set()
        # dict[str, Any]: the keyword name depends on the installed pymodbus (see unit_keyword).
        self._unit: dict[str, Any] = {unit_keyword(client): self.config.unit}
        self._bus = threading.RLock()  # one request on the wire at a time
        self._pulse = threading.Lock()  # one coil pulsed at a time: the PSU sees one inrush
        self._closed = False
        self.on_bus_change = on_bus_change
        self.bus_fault: str | None = None
        """Why the transport is down (``None``: it works)."""
        self.attempts = 0
        """Requests sent so far, retries included (diagnostics)."""
        safety.lock_on_exit(self)

    @classmethod
    def from_url(
        cls,
        url: str,
        config: ModbusRelayConfig | None = None,
        *,
        baud: int = 9600,
        parity: str = "N",
        timeout_s: float = 0.5,
        sleep: Sleep = time.sleep,
        duty: DutyLimit | None = None,
        on_bus_change: BusListener | None = None,
    ) -> ModbusRelayBank:
        """Open the transport named by ``url`` (pymodbus's own retries off: ours are bounded).

        ``tcp://host:port`` Modbus TCP; ``rtu+tcp://host:port`` RTU frames over TCP; anything
        else is a serial port or pyserial URL (``/dev/ttyUSB0``, ``socket://``, ``loop://``)
        spoken as RTU at ``baud`` 8-``parity``-1.
        """
        if not 0.01 <= timeout_s <= 10:
            raise ValueError(f"timeout_s must be 0.01..10, got {timeout_s}")
        client: ModbusBaseSyncClient
        parts = urlsplit(url)
        if parts.scheme in ("tcp", "rtu+tcp"):
            if parts.hostname is None or parts.port is None:
                raise ValueError(f"{url!r}: expected {parts.scheme}://host:port")
            framer = FramerType.SOCKET if parts.scheme == "tcp" else FramerType.RTU
            client = ModbusTcpClient(
                parts.hostname, port=parts.port, framer=framer, timeout=timeout_s, retries=0
            )
        else:
            client = ModbusSerialClient(
                url,
                framer=FramerType.RTU,
                baudrate=baud,
                bytesize=8,
                parity=parity,
                stopbits=1,
                timeout=timeout_s,
                retries=0,
            )
        return cls(client, config, sleep=sleep, duty=duty, on_bus_change=on_bus_change)

    # -- LockBank ---------------------------------------------------------------------------
    @property
    def bus_ok(self) -> bool:
        """Whether the transport worked at the last request (a silent board is not a bus
        fault: the port is fine, the board is not)."""
        return self.bus_fault is None

    @property
    def slots(self) -> tuple[int, ...]:
        return tuple(sorted(self.config.slot_map))

    def unlock(self, slot: int, pulse_ms: int | None = None) -> None:
        """Pulse ``slot``'s relay (blocking) and confirm its coil dropped.

        ``ValueError`` for a slot not on this board; ``DutyCycleExceeded`` (before any
        pulse) for a coil pulsed too often; ``LockBoardError`` if the board does not
        answer; ``LockFault`` if the coil still reads energised after ``settle_ms``, or if
        the board stopped answering after "on" (then a watchdog keeps sending "off").

        ``BusFault`` (a ``LockBoardError``) if the transport is gone: the coils are read
        before the pulse, so a pulled adapter is found before anything is switched on.

        A pulse is never sent twice for one call: a timed ("flash") write whose answer was
        lost is not repeated (the board may be timing it right now); the coil is read back
        instead. In write-on-then-off mode an "on" whose answer was lost is followed by
        "off" at once, and the pulse is shortened by ``off_margin_ms`` so a lost "off"
        still ends within the cap.
        """
        cfg = self.config
        if slot not in cfg.slot_map:
            raise ValueError(f"slot {slot} is not on relay board unit {cfg.unit}")
        channel = cfg.slot_map[slot]
        ms = cap_pulse(pulse_ms, configured_max_ms=cfg.max_pulse_ms)
        with self._pulse:
            if self._closed:
                raise LockBoardError(f"relay board unit {cfg.unit} is closed")
            try:
                # The line first: an adapter pulled since the last request fails here, as a
                # BusFault with nothing switched on. Without this the "on" itself met the
                # dead port, and a coil that may or may not be on had to be chased until
                # the cap ran out and reported as a lock fault (issue 13).
                self._read_coils()
                if self._duty is not None:
                    self._duty.admit(slot, ms)
                if cfg.pulse_mode == "flash":
                    self._flash_pulse(slot, channel, ms)
                else:
                    self._timed_by_host(slot, channel, min(ms, cfg.max_pulse_ms - cfg.off_margin_ms))
                if cfg.verify_readback and not self._coil_dropped(channel):
                    raise LockFault(slot, f"relay channel {channel} still on after its pulse")
            except BaseException:
                self.lock_all()
                raise

    def _flash_pulse(self, slot: int, channel: int, ms: int) -> None:
        cfg = self.config
        value = encode_flash(ms, command=cfg.flash_command, unit_ms=cfg.flash_unit_ms)
        address = cfg.flash_register_base + channel
        started = self._clock()
        try:
            self._call("flash", lambda: self._client.write_register(address, value, **self._unit),
                       attempts=1, answers=self._answer(WRITE_REGISTER))
        except (_Refused, _NotSent):
            raise
        except LockBoardError as lost:
            # The write may have arrived and only its answer got lost: read, never re-send.
            try:
                coils = self._read_coils()
            except LockBoardError as silent:
                raise _same_kind(silent)(
                    f"relay board unit {cfg.unit}: flash of channel {channel} not confirmed "
                    f"and the board does not answer: {lost}"
                ) from lost
            if coils[channel] != cfg.coil_on_unlocks:
                raise LockBoardError(
                    f"relay board unit {cfg.unit}: flash of channel {channel} not confirmed "
                    f"(coil reads off; not repeated): {lost}"
                ) from lost
            log.warning("unit %s: flash answer lost, coil reads on: the board is timing it",
                        cfg.unit)
        self._sleep(max(0.0, ms / 1000 - (self._clock() - started)))

    def _timed_by_host(self, slot: int, channel: int, ms: int) -> None:
        """Coil on, wait, coil off, with the "off" guarded by a watchdog up to the cap."""
        cfg = self.config
        on_at = self._clock()
        lost_on: LockBoardError | None = None
        try:
            self._call("coil on", lambda: self._write_one(channel, unlocked=True), attempts=1,
                       answers=self._answer(WRITE_COIL))
        except (_Refused, _NotSent):
            raise  # nothing was switched on: nothing to switch off
        except LockBoardError as exc:
            lost_on = exc  # it may be on: switch it off at once, then report
        if lost_on is None:
            try:
                self._sleep(max(0.0, ms / 1000 - (self._clock() - on_at)))
            finally:
                self._off_within_cap(slot, channel, on_at)
        else:
            self._off_within_cap(slot, channel, on_at)
            raise _same_kind(lost_on)(
                f"relay board unit {cfg.unit}: coil on for slot {slot} not confirmed: {lost_on}"
            )

    def _off_within_cap(self, slot: int, channel: int, on_at: float) -> None:
        """Send "off" until the board takes it, at most until the cap (+ a grace) is spent.

        No backoff here: every lost "off" is coil time. If the cap passes, a background
        watchdog keeps sending "off" and the caller gets a ``LockFault``.
        """
        cfg = self.config
        deadline = on_at + (cfg.max_pulse_ms + OFF_GRACE_MS) / 1000
        last = "no attempt"
        while True:
            try:
                self._call("coil off", lambda: self._write_one(channel, unlocked=False),
                           attempts=1, answers=self._answer(WRITE_COIL))
                return
            except LockBoardError as exc:
                last = str(exc)
            if self._clock() >= deadline:
                break
            time.sleep(0.01)  # pace a refused connection; a lost frame already took a timeout
        try:  # an "off" whose answer was lost may have been obeyed: look before alarming
            reply = self._call("read coils", lambda: self._client.read_coils(
                cfg.coil_base, count=cfg.channels, **self._unit), attempts=1,
                answers=self._answer(READ_COILS, bits=True))
            if list(reply.bits)[channel] != cfg.coil_on_unlocks:
                log.warning("unit %s channel %s: 'off' answers lost, coil reads off",
                            cfg.unit, channel)
                return
        except LockBoardError as exc:
            last = str(exc)
        self._start_watchdog(channel)
        raise LockFault(
            slot,
            f"relay board unit {cfg.unit} stopped answering after switching channel "
            f"{channel} on: the coil may be energised; 'off' is re-sent every "
            f"{WATCHDOG_S * 1000:.0f} ms until it answers ({last})",
        )

    def _start_watchdog(self, channel: int) -> None:
        with self._bus:
            self._stuck.add(channel)
            if self._watchdog is not None and self._watchdog.is_alive():
                return
            self._watchdog = threading.Thread(
                target=self._watch, name=f"modbus-off-watchdog-{self.config.unit}", daemon=True
            )
            self._watchdog.start()

    def _watch(self) -> None:
        while not self._closed:
            with self._bus:
                stuck = sorted(self._stuck)
            if not stuck:
                return
            for channel in stuck:
                try:
                    self._call("watchdog off",
                               functools.partial(self._write_one, channel, unlocked=False),
                               attempts=1, answers=self._answer(WRITE_COIL))
                except LockBoardError:
                    continue
                log.warning("unit %s channel %s: 'off' taken at last", self.config.unit, channel)
                with self._bus:
                    self._stuck.discard(channel)
            time.sleep(WATCHDOG_S)

    @property
    def coils_in_doubt(self) -> tuple[int, ...]:
        """Channels switched on whose "off" the board has not yet acknowledged."""
        with self._bus:
            return tuple(sorted(self._stuck))

    def status(self) -> dict[int, SlotState]:
        """Coil state of every mapped channel, plus key inputs where the board has them."""
        cfg = self.config
        if self._closed:
            raise LockBoardError(f"relay board unit {cfg.unit} is closed")
        coils = self._read_coils()
        keys: list[bool] | None = None
        if cfg.key_input_base is not None:
            base = cfg.key_input_base
            reply = self._call(
                "read inputs",
                lambda: self._client.read_discrete_inputs(base, count=cfg.channels, **self._unit),
                answers=self._answer(READ_INPUTS, bits=True),
            )
            keys = list(reply.bits)
        result: dict[int, SlotState] = {}
        for slot, channel in sorted(cfg.slot_map.items()):
            locked = coils[channel] != cfg.coil_on_unlocks
            present = None if keys is None else keys[channel] == cfg.key_present_when
            result[slot] = SlotState(slot=slot, locked=locked, key_present=present)
        return result

    def lock_all(self) -> None:
        """Write every channel to locked in one FC15 request; per channel if FC15 is refused.

        Never raises: a silent board is logged (it has dropped its relays if unpowered, and
        the caller already has the ``LockBoardError`` from the request that failed).
        """
        if self._closed:
            return
        cfg = self.config
        locked = [not cfg.coil_on_unlocks] * cfg.channels
        try:
            self._call(
                "lock all",
                lambda: self._client.write_coils(cfg.coil_base, locked, **self._unit),
                answers=self._answer(WRITE_COILS),
            )
            return
        except _Refused:
            log.info("unit %s refuses FC15; locking channel by channel", cfg.unit)
        except LockBoardError:
            log.exception("could not lock relay board unit %s", cfg.unit)
            return
        for channel in sorted(cfg.slot_map.values()):
            try:
                self._write_coil(channel, unlocked=False)
            except LockBoardError:
                log.exception("could not lock channel %s of unit %s", channel, cfg.unit)

    def close(self) -> None:
        """Lock every coil and close the transport. Idempotent."""
        if self._closed:
            return
        with self._pulse:
            self.lock_all()
            self._closed = True
        safety.release(self)
        with self._bus:
            self._client.close()

    # -- bus --------------------------------------------------------------------------------
    def _write_coil(self, channel: int, *, unlocked: bool) -> None:
        self._call("write coil", lambda: self._write_one(channel, unlocked=unlocked),
                   answers=self._answer(WRITE_COIL))

    def _write_one(self, channel: int, *, unlocked: bool) -> ModbusPDU:
        address = self.config.coil_base + channel
        value = unlocked == self.config.coil_on_unlocks
        return self._client.write_coil(address, value, **self._unit)

    def _read_coils(self) -> list[bool]:
        cfg = self.config
        reply = self._call(
            "read coils",
            lambda: self._client.read_coils(cfg.coil_base, count=cfg.channels, **self._unit),
            answers=self._answer(READ_COILS, bits=True),
        )
        return list(reply.bits)

    def _answer(self, function_code: int, *, bits: bool = False) -> Callable[[Any], bool]:
        """Whether a reply answers a request of ``function_code``: the same function (an
        exception reply carries it with the high bit set) and, for a bit read, at least
        ``channels`` bits. A late answer to an earlier request (a slow or noisy line) does
        not: taken as this one's, a write's echo would be read as the coils (and indexing
        it crashed the cabinet's scan), or an exception meant for an earlier write would
        refuse this request for good."""
        channels = self.config.channels

        def answers(reply: Any) -> bool:
            code = getattr(reply, "function_code", None)
            if not isinstance(code, int) or code & 0x7F != function_code:
                return False
            if reply.isError() or not bits:
                return True
            got = getattr(reply, "bits", None)
            return got is not None and len(got) >= channels

        return answers

    def _coil_dropped(self, channel: int) -> bool:
        """Read the coil back until it reads locked or ``settle_ms`` is spent."""
        cfg = self.config
        for _ in range(cfg.settle_ms // POLL_MS):
            if self._read_coils()[channel] != cfg.coil_on_unlocks:
                return True
            self._sleep(POLL_MS / 1000)
        return self._read_coils()[channel] != cfg.coil_on_unlocks

    def _call(
        self, what: str, request: Callable[[], ModbusPDU], *, attempts: int | None = None,
        answers: Callable[[Any], bool] | None = None,
    ) -> Any:
        """Send one request with bounded retries; return the reply or raise LockBoardError.

        ``attempts=1`` for requests that must not be repeated blindly (a pulse) or whose
        repetition the caller paces itself (the "off" watchdog). The port is (re)opened
        before each attempt: after an adapter came back this is what reopens it. If the
        last attempt failed in the transport the error is :class:`BusFault` (``_NotSent``
        when the port could not even be opened), else the board was silent or refused.
        ``answers`` tells a reply that answers this request from stray bytes on the line
        (asked again, like a lost reply).
        """
        cfg = self.config
        attempts = cfg.retries + 1 if attempts is None else attempts
        last = "no attempt"
        fault: type[LockBoardError] = LockBoardError
        sent = False
        for attempt in range(attempts):
            if attempt:
                self._sleep(cfg.backoff_ms * 2 ** (attempt - 1) / 1000)
            with self._bus:
                self.attempts += 1
                if not self._open():
                    last, fault = f"cannot open the port: {self._client}", _NotSent
                    self._transport_failed(last)
                    continue
                sent = True
                try:
                    reply = request()
                except TRANSPORT_ERRORS as exc:
                    last, fault = f"{type(exc).__name__}: {exc}", BusFault
                    self._client.close()
                    self._transport_failed(last)
                    continue
                except ModbusException as exc:
                    last, fault = str(exc) or type(exc).__name__, LockBoardError
                    # Drop the link so a late reply cannot be taken for the next request's.
                    self._client.close()
                    continue
                stray = answers is not None and not answers(reply)
                if stray:
                    last, fault = (f"the reply (function {getattr(reply, 'function_code', '?')})"
                                   " was not an answer to it", LockBoardError)
                    self._client.close()  # drop what else is on the line with it
            self._transport_works()
            if stray:
                continue
            if not reply.isError():
                return reply
            code = getattr(reply, "exception_code", None)
            last, fault = f"Modbus exception code {code}", LockBoardError
            if code in NOT_RETRIED:
                raise _Refused(f"relay board unit {cfg.unit}: {what} refused: {last}")
        if fault is _NotSent and sent:
            fault = BusFault  # an earlier attempt went out: it may have been obeyed
        raise fault(
            f"relay board unit {cfg.unit}: {what} failed after {attempts} attempts: {last}"
        )

    def _open(self) -> bool:
        """Open the transport if it is closed; ``False`` if it cannot be opened now."""
        try:
            return bool(self._client.connect())
        except TRANSPORT_ERRORS:
            return False

    def _transport_failed(self, message: str) -> None:
        if self.bus_fault is None:
            log.error("relay board unit %s: lock bus failed: %s", self.config.unit, message)
            self.bus_fault = message
            self._notify(False, message)
        else:
            self.bus_fault = message

    def _transport_works(self) -> None:
        if self.bus_fault is not None:
            self.bus_fault = None
            log.warning("relay board unit %s: lock bus restored", self.config.unit)
            self._notify(True, "restored")

    def _notify(self, ok: bool, message: str) -> None:
        if self.on_bus_change is None:
            return
        try:
            self.on_bus_change(ok, message)
        except Exception:  # a listener must never break the bus
            log.exception("Modbus on_bus_change listener failed")

    def __repr__(self) -> str:
        return f"<ModbusRelayBank unit={self.config.unit} slots={self.slots}>"
