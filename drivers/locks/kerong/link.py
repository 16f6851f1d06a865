"""The Kerong bus as a half-duplex link: one port, reopened after failures, one frame at a time.

Why a layer of its own: on a real RS-485 line every failure of the transport looks
different (``termios.error`` from ``tcflush`` on an unplugged USB adapter, ``OSError: EIO``
from ``read``, ``SerialException`` from pyserial, ``BrokenPipeError`` from a TCP serial
server that restarted) and none of them may escape as anything but
:class:`~drivers.errors.BusFault`. After a failure the port is closed and reopened with a
doubling backoff on the next use, until it works again; a successful answer from any board
then reports the bus restored (:attr:`Link.bus_ok`, and ``on_bus_change``).

Half duplex: only one device may drive the pair at a time. The link writes one frame, then
waits for the answer (reply window) or, for frames no board answers, for the frame to
leave the wire plus ``turnaround_s`` (the time a board needs to switch its transceiver
back to receive), before the next frame may go out. Sending frames back to back would let
a board's answer collide with the next request.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import termios
import threading
import time
from collections.abc import Callable
from typing import Protocol

import serial

from drivers.errors import BusFault, LockBoardError
from drivers.locks.kerong.codec import Frame, FrameParser

log = logging.getLogger(__name__)

TRANSPORT_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError, termios.error)
"""Everything a failing serial transport raises. ``termios.error`` is *not* an OSError."""

DEFAULT_BAUDRATE = 19200
POLL_S = 0.02
"""Longest single blocking read; reply deadlines are enforced around it."""
QUIET_S = 0.02
"""How long the line must stay silent before a request after an exchange that did not
end cleanly (noise, a bad checksum, an answer nobody asked for). About ten frame times
at 19200 baud; not 3.5 character times, because a USB adapter delivers bytes in bursts up
to its latency timer late."""


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

    8N1 is what every Kerong board speaks; only the baud rate varies between installs. On
    a ``socket://`` bus Nagle's algorithm is switched off: it would hold a frame back until
    the previous one was acknowledged, which on a half-duplex line means "too late".
    """
    try:
        port: SerialPort = serial.serial_for_url(
            url, baudrate=baudrate, bytesize=8, parity="N", stopbits=1,
            timeout=timeout, write_timeout=1.0,
        )
    except (*TRANSPORT_ERRORS, ValueError) as exc:  # type: ignore[misc]
        raise BusFault(f"cannot open Kerong lock bus {url!r}: {exc}") from exc
    sock = getattr(port, "_socket", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return port


BusListener = Callable[[bool, str], None]
"""``on_bus_change(ok, message)``: called once per transition, from the calling thread."""


class Link:
    """One serial port shared by all boards; every method is called under the owner's lock."""

    def __init__(
        self,
        port: SerialPort | str,
        *,
        opener: Callable[[], SerialPort] | None = None,
        baudrate: int = DEFAULT_BAUDRATE,
        reply_timeout_s: float = 0.25,
        turnaround_s: float = 0.004,
        reopen_backoff_s: float = 0.1,
        reopen_backoff_max_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_bus_change: BusListener | None = None,
    ) -> None:
        if isinstance(port, str):
            url = port
            self._opener: Callable[[], SerialPort] | None = opener or (
                lambda: open_port(url, baudrate=baudrate)
            )
            self.name = url
            self._port: SerialPort | None = self._opener()
        else:
            self._opener = opener
            self.name = type(port).__name__
            self._port = port
        self.baudrate = baudrate
        self.reply_timeout_s = reply_timeout_s
        self.turnaround_s = turnaround_s
        self._reopen_backoff_s = reopen_backoff_s
        self._reopen_backoff_max_s = reopen_backoff_max_s
        self._reopen_delay = reopen_backoff_s
        self._next_reopen = 0.0
        self._clock = clock
        self._quiet_until = 0.0
        self.fault: str | None = None
        """Why the bus is down (``None``: it works)."""
        self.faults_total = 0
        self.restores_total = 0
        self.on_bus_change = on_bus_change
        self._listeners_lock = threading.Lock()
        self._set_poll_timeout()

    # -- state -----------------------------------------------------------------------------------
    @property
    def bus_ok(self) -> bool:
        return self.fault is None

    def _set_poll_timeout(self) -> None:
        if self._port is not None:
            try:
                self._port.timeout = min(POLL_S, self.reply_timeout_s)
            except TRANSPORT_ERRORS as exc:
                self._failed(exc, "set timeout")

    def wire_time(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the wire at 8N1 (10 bits a byte)."""
        return nbytes * 10 / self.baudrate

    def port(self) -> SerialPort:
        """The open port, reopening it first if it failed and its backoff has run out."""
        if self._port is not None:
            return self._port
        now = self._clock()
        if self._opener is None:
            raise BusFault(f"Kerong lock bus down ({self.fault}); an injected port cannot be reopened")
        if now < self._next_reopen:
            raise BusFault(
                f"Kerong lock bus down ({self.fault}); reopening in "
                f"{self._next_reopen - now:.1f} s"
            )
        try:
            self._port = self._opener()
        except (BusFault, *TRANSPORT_ERRORS) as exc:  # type: ignore[misc]
            self._next_reopen = now + self._reopen_delay
            self._reopen_delay = min(self._reopen_delay * 2, self._reopen_backoff_max_s)
            raise BusFault(f"Kerong lock bus down: reopen failed: {exc}") from exc
        log.warning("Kerong lock bus %s reopened", self.name)
        self._set_poll_timeout()
        if self._port is None:  # setting the timeout failed already
            raise BusFault(f"Kerong lock bus down ({self.fault})")
        return self._port

    def _failed(self, exc: BaseException, what: str) -> BusFault:
        """Close the broken port, schedule the reopen, report the transition once."""
        message = f"{what}: {type(exc).__name__}: {exc}"
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(*TRANSPORT_ERRORS):
                port.close()
        now = self._clock()
        if self.fault is None:
            self.faults_total += 1
            self._reopen_delay = self._reopen_backoff_s
            self._next_reopen = now  # the first reopen is tried at the next request
            log.error("Kerong lock bus %s failed: %s", self.name, message)
            self.fault = message
            self._notify(False, message)
        else:
            self.fault = message
        return BusFault(f"Kerong lock bus failed: {message}")

    def answered(self) -> None:
        """A board spoke: the bus works (reported once after an outage)."""
        if self.fault is not None:
            self.fault = None
            self._reopen_delay = self._reopen_backoff_s
            self.restores_total += 1
            log.warning("Kerong lock bus %s restored", self.name)
            self._notify(True, "restored")

    def _notify(self, ok: bool, message: str) -> None:
        listener = self.on_bus_change
        if listener is None:
            return
        try:
            listener(ok, message)
        except Exception:  # a listener must never break the bus
            log.exception("Kerong on_bus_change listener failed")

    # -- frames ----------------------------------------------------------------------------------
    def _wait_turnaround(self) -> None:
        delay = self._quiet_until - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def send(self, frame: bytes, *, flush_input: bool = True) -> None:
        """Write one frame once the line is free; no answer expected.

        The line counts as busy until the frame has left the wire plus the turnaround.
        """
        port = self.port()
        self._wait_turnaround()
        try:
            if flush_input:
                port.reset_input_buffer()
            port.write(frame)
            port.flush()
        except TRANSPORT_ERRORS as exc:
            raise self._failed(exc, "write") from exc
        self._quiet_until = time.monotonic() + self.wire_time(len(frame)) + self.turnaround_s

    def read_some(self) -> bytes:
        """One bounded read (at most ``POLL_S``)."""
        port = self.port()
        try:
            return bytes(port.read(max(1, port.in_waiting)))
        except TRANSPORT_ERRORS as exc:
            raise self._failed(exc, "read") from exc

    def collect(
        self,
        want: Callable[[Frame], bool],
        *,
        count: int = 1,
        window_s: float | None = None,
    ) -> tuple[list[Frame], str]:
        """Read until ``count`` wanted frames came, then until the line is quiet.

        Returns the wanted frames (possibly fewer: the window ran out) and a reason string
        describing what was seen instead. A clean, complete exchange returns at once; an
        unclean one (noise, bad checksums) waits for ``QUIET_S`` of silence so the next
        request starts on a quiet line. After any exchange the next frame waits at least
        ``turnaround_s``.
        """
        window = self.reply_timeout_s if window_s is None else window_s
        parser = FrameParser()
        got: list[Frame] = []
        received = bad = 0
        deadline = time.monotonic() + window
        hard_stop = deadline
        while time.monotonic() < deadline:
            chunk = self.read_some()
            if not chunk:
                continue
            received += len(chunk)
            frames, errors = parser.feed_all(chunk)
            bad += len(errors)
            for frame in frames:
                if want(frame):
                    if not got:
                        hard_stop = time.monotonic() + window
                    got.append(frame)
            if not got:
                continue
            if len(got) >= count and not bad and not parser.discarded and not parser.pending:
                break
            deadline = min(hard_stop, time.monotonic() + QUIET_S)
        self._quiet_until = time.monotonic() + self.turnaround_s
        if got:
            self.answered()
            return got, ""
        if bad:
            return got, f"{bad} reply frame(s) with a bad checksum"
        if received:
            return got, f"no valid reply ({received} bytes of garbage or other frames)"
        return got, f"no reply within {window:.2f} s"

    def drain(self, quiet_s: float = QUIET_S) -> int:
        """Listen until nothing came for ``quiet_s``; return the bytes heard (discarded).

        Used after a frame that a correctly configured board does not answer but a
        misconfigured one might (0x31 on "silent" firmware): its answer must not collide
        with our next frame nor be taken for that frame's answer.
        """
        heard = 0
        deadline = time.monotonic() + quiet_s
        hard_stop = time.monotonic() + self.reply_timeout_s
        while time.monotonic() < deadline:
            chunk = self.read_some()
            if chunk:
                heard += len(chunk)
                deadline = min(hard_stop, time.monotonic() + quiet_s)
        self._quiet_until = time.monotonic() + self.turnaround_s
        return heard

    def discard_output(self) -> None:
        """Drop unsent bytes and unread input (the safe state: nothing queued). Never raises."""
        port = self._port
        if port is None:
            return
        for action in (port.reset_output_buffer, port.reset_input_buffer):
            try:
                action()
            except TRANSPORT_ERRORS as exc:
                self._failed(exc, action.__name__)
                return

    def write_best_effort(self, frame: bytes) -> bool:
        """Write without raising (lock_all/close paths); False if the bus is down."""
        try:
            self.send(frame, flush_input=False)
        except LockBoardError as exc:
            log.warning("Kerong: %s not sent: %s", frame.hex(" "), exc)
            return False
        return True

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except TRANSPORT_ERRORS as exc:
                log.warning("Kerong close: %s", exc)
