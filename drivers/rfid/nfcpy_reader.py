"""USB and serial NFC readers (PN532, PN533, ACR122U, RC-S380 ...) through nfcpy.

nfcpy owns the device and its discovery loop (``ContactlessFrontend.connect(rdwr=...)``),
which blocks, so it runs in a thread of its own and hands taps over a queue. Any nfcpy
device path works: ``usb``, ``usb:072f:2200``, ``tty:USB0:pn532``, and ``udp:host:port``
(nfcpy's own radio emulation, used by the simulator and the tests).

How taps are counted: nfcpy activates a card, calls ``on-connect`` (the debouncer sees the
UID), then checks presence about every 100 ms until the card stops answering; the
``terminate`` callback, which nfcpy calls on every turn of both loops, tells the debouncer
"still there" during presence checks and "not seen" after each empty discovery cycle.
So a card lifted for less than the hold-off and put back is still the same tap.

These readers report the UID only: ``credential`` is always ``None`` (nfcpy has no
MIFARE Classic authentication) and ``magic`` is always False.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.errors import ReaderError
from drivers.rfid.debounce import DEFAULT_HOLD_OFF_POLLS, DEFAULT_HOLD_OFF_S, Debouncer
from drivers.rfid.types import CardRead

log = logging.getLogger(__name__)

KNOWN_TARGETS = frozenset({"106A", "212A", "424A", "106B", "212B", "424B", "848B",
                           "212F", "424F"})
JOIN_TIMEOUT_S = 5.0
"""nfcpy checks ``terminate`` between discovery cycles; a UDP cycle can take 1 s per target."""


@dataclass(frozen=True, slots=True)
class NfcpyConfig:
    """Settings of one nfcpy reader; every value is checked against its bounds."""

    path: str = "usb"
    """nfcpy device path: usb[:vid:pid], tty:PORT:DRIVER, com:PORT:DRIVER, udp:HOST:PORT."""
    reader_id: str = "nfc"
    targets: tuple[str, ...] = ("106A", "212F")
    """Technologies to discover (badges are type A; FeliCa 212F is cheap to add)."""
    poll_interval_s: float = 0.1
    """Minimum time between the starts of two discovery cycles (0.02..2 s)."""
    hold_off_s: float = DEFAULT_HOLD_OFF_S
    hold_off_polls: int = DEFAULT_HOLD_OFF_POLLS
    max_read_age_s: float = 2.0
    """A tap nobody collected within this time is dropped, never delivered late (0.1..30 s)."""
    beep: bool = False
    """Let nfcpy flash/beep the reader (ACR122U) on each activation."""

    def __post_init__(self) -> None:
        def bounded(name: str, low: float, high: float) -> None:
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be within {low}..{high}, got {value}")

        if not self.path:
            raise ValueError("path must not be empty")
        if not self.reader_id:
            raise ValueError("reader_id must not be empty")
        if not self.targets or not set(self.targets) <= KNOWN_TARGETS:
            raise ValueError(f"targets must be a non-empty subset of {sorted(KNOWN_TARGETS)}, "
                             f"got {self.targets}")
        bounded("poll_interval_s", 0.02, 2.0)
        bounded("hold_off_s", 0.0, 10.0)
        bounded("hold_off_polls", 1, 100)
        bounded("max_read_age_s", 0.1, 30.0)


class NfcpyReader:
    """A ``drivers.rfid.CardReader`` over an nfcpy ContactlessFrontend.

    Opening fails with ``ReaderError`` when no device answers on ``config.path``. The
    discovery thread starts at once; ``wait_for_card`` raises ``ReaderError`` if it died
    (device unplugged), so the cabinet can report the reader as failed and reopen it.
    """

    def __init__(
        self,
        config: NfcpyConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import nfc  # heavy (libusb bindings): only for deployments that use this reader

        self.config = config or NfcpyConfig()
        self._clock = clock
        self._debouncer = Debouncer(hold_off_s=self.config.hold_off_s,
                                    hold_off_polls=self.config.hold_off_polls, clock=clock)
        try:
            self._clf: Any = nfc.ContactlessFrontend(self.config.path)
        except OSError as exc:
            raise ReaderError(f"no NFC reader on {self.config.path!r}: {exc}") from exc
        self._queue: queue.Queue[tuple[float, CardRead] | None] = queue.Queue()
        self._stop = threading.Event()
        self._failure: ReaderError | None = None
        self._session_uid: bytes | None = None
        self._next_cycle = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"nfcpy-{self.reader_id}",
                                        daemon=True)
        self._thread.start()

    @property
    def reader_id(self) -> str:
        return self.config.reader_id

    @property
    def holding(self) -> bool:
        return self._debouncer.held is not None

    # -- CardReader ------------------------------------------------------------------------
    def wait_for_card(self, timeout: float) -> CardRead | None:
        if self._closed:
            raise ReaderError(f"{self.reader_id}: reader is closed")
        deadline = self._clock() + max(0.0, timeout)
        while True:
            if self._failure is not None:
                raise self._failure
            remaining = deadline - self._clock()
            try:
                item = self._queue.get(timeout=max(0.0, remaining))
            except queue.Empty:
                return None
            if item is None:  # wake-up: closed or failed
                if self._failure is not None:
                    raise self._failure
                return None
            stamp, read = item
            if self._clock() - stamp <= self.config.max_read_age_s:
                return read
            log.info("%s: dropped a stale tap of %s", self.reader_id, read.uid_hex)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._queue.put(None)
        self._thread.join(JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("%s: nfcpy thread did not stop within %.0f s", self.reader_id,
                        JOIN_TIMEOUT_S)
        self._clf.close()

    # -- discovery thread ------------------------------------------------------------------
    def _run(self) -> None:
        rdwr = {
            "targets": list(self.config.targets),
            "iterations": 1,  # pacing and stop checks happen in _terminate
            "interval": self.config.poll_interval_s,
            "on-connect": self._on_connect,
            "on-release": self._on_release,
            "beep-on-connect": self.config.beep,
        }
        try:
            while not self._stop.is_set():
                result = self._clf.connect(rdwr=rdwr, terminate=self._terminate)
                if result is False and not self._stop.is_set():
                    raise ReaderError(f"{self.reader_id}: nfcpy lost the reader on "
                                      f"{self.config.path!r}")
        except ReaderError as exc:
            self._fail(exc)
        except Exception as exc:  # nfcpy raises assorted errors when a device goes away
            self._fail(ReaderError(f"{self.reader_id}: nfcpy failed: {exc!r}"))

    def _fail(self, error: ReaderError) -> None:
        log.error("%s", error)
        self._failure = error
        self._queue.put(None)

    def _terminate(self) -> bool:
        """nfcpy's stop check, called every presence check and every discovery cycle."""
        if self._stop.is_set():
            return True
        if self._session_uid is not None:
            self._debouncer.observe(self._session_uid)  # the last presence check passed
            return False
        self._debouncer.observe(None)  # the last discovery cycle found nothing
        wait = self._next_cycle - self._clock()
        if wait > 0 and self._stop.wait(wait):
            return True
        self._next_cycle = self._clock() + self.config.poll_interval_s
        return False

    def _on_connect(self, tag: Any) -> bool:
        uid = bytes(tag.identifier)
        self._session_uid = uid
        if self._debouncer.observe(uid):
            read = CardRead(uid=uid, reader_id=self.reader_id)
            log.debug("%s: tap %s (%s)", self.reader_id, read.uid_hex, tag)
            self._queue.put((self._clock(), read))
        return True  # nfcpy keeps checking presence until the card is gone

    def _on_release(self, tag: Any) -> bool:
        self._session_uid = None
        return False  # keep connect() looping
