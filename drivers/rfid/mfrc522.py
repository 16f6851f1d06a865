"""NXP MFRC522 reader on SPI: ISO/IEC 14443-A activation and MIFARE Classic credential read.

Three layers, as everywhere under ``drivers``:

* transport: anything with spidev's ``xfer2(list[int]) -> list[int]`` (a real
  ``spidev.SpiDev`` from :func:`open_spidev`, or ``simulators.mfrc522_chip``);
* chip: :class:`Mfrc522` turns registers and chip commands (Transceive, CalcCRC,
  MFAuthent) into method calls with deadlines, waiting on the IRQ pin when it is wired;
* device: :class:`Mfrc522Reader` polls for cards at a bounded rate and turns one tap into
  one :class:`CardRead` (UID, optional credential block, Gen1a flag).

Each poll sends WUPA rather than REQA because the reader halts every card it has read:
WUPA still wakes a halted card, so a badge left on the antenna stays visible to the
debouncer and is not reported again until it has been taken away.

A collision (two cards in the field) or a garbled frame reports nothing for that poll:
the cabinet serves one person at a time, so the driver never guesses between two cards.
A wrong sector key is not an error: the read carries ``credential=None`` and the cabinet's
policy decides what a card without a valid credential may do.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from drivers.errors import ReaderError
from drivers.rfid.debounce import DEFAULT_HOLD_OFF_POLLS, DEFAULT_HOLD_OFF_S, Debouncer
from drivers.rfid.iso14443a import (
    GEN1A_UNLOCK_1,
    GEN1A_UNLOCK_2,
    HLTA,
    MIFARE_ACK,
    MIFARE_BLOCK_SIZE,
    MIFARE_KEY_SIZE,
    SAK_CASCADE_BIT,
    SHORT_FRAME_BITS,
    WUPA,
    anticollision_command,
    crypto1_uid,
    is_sector_trailer,
    mifare_auth_command,
    mifare_read_command,
    parse_anticollision,
    select_command,
    uid_part,
)
from drivers.rfid.mfrc522_regs import (
    BUFFER_OVFL,
    CHIP_VERSIONS,
    COLL_ERR,
    COM_IRQ_ALL,
    CRC_IRQ,
    ERR_IRQ,
    FLUSH_BUFFER,
    FORCE_100_ASK,
    IDLE_IRQ,
    IRQ_INV,
    IRQ_PUSH_PULL,
    MF_CRYPTO1_ON,
    PARITY_ERR,
    POWER_DOWN,
    PROTOCOL_ERR,
    RX_IRQ,
    RX_LAST_BITS_MASK,
    START_SEND,
    T_AUTO,
    TIMER_IRQ,
    TX1_RF_EN,
    TX2_RF_EN,
    Cmd,
    Reg,
    read_address,
    write_address,
)
from drivers.rfid.types import CardRead

log = logging.getLogger(__name__)

# Timer: TAuto, prescaler 0x0A9 -> 13.56 MHz / (2*169+1) = 40 kHz (25 us per tick);
# reload 1000 ticks -> a card that has not answered within 25 ms is not there.
TIMER_PRESCALER = 0x0A9
TIMER_RELOAD = 1000
SOFT_RESET_TIMEOUT_S = 0.15
HARD_RESET_SETTLE_S = 0.05
"""Wait after NRSTPD rises before talking to the chip (oscillator start-up, with margin)."""
MAX_CREDENTIAL_ATTEMPTS = 3
"""Polls spent retrying a credential READ that timed out before reporting the tap anyway."""


class SpiTransport(Protocol):
    """The part of ``spidev.SpiDev`` the driver uses."""

    def xfer2(self, data: list[int]) -> list[int]:
        """Full-duplex transfer with chip select held; returns as many bytes as sent."""
        ...

    def close(self) -> None:
        """Release the bus."""
        ...


def open_spidev(bus: int = 0, device: int = 0, max_speed_hz: int = 1_000_000) -> SpiTransport:
    """Open ``/dev/spidev<bus>.<device>`` in SPI mode 0.

    ``spidev`` exists only on the Pi (extra ``pi``), so it is imported here and nowhere at
    module level: the daemon, the simulator and the tests import this module without it.
    """
    if not 10_000 <= max_speed_hz <= 10_000_000:
        raise ValueError(f"max_speed_hz must be within 10 kHz..10 MHz, got {max_speed_hz}")
    try:
        import spidev
    except ImportError as exc:
        raise ReaderError("spidev is not installed (install keycabinet[pi] on the Pi)") from exc
    spi = spidev.SpiDev()
    try:
        spi.open(bus, device)
        spi.max_speed_hz = max_speed_hz
        spi.mode = 0
    except OSError as exc:
        raise ReaderError(f"cannot open /dev/spidev{bus}.{device}: {exc}") from exc
    return spi


@dataclass(frozen=True, slots=True)
class Mfrc522Config:
    """Settings of one MFRC522 reader; every value is checked against its bounds."""

    reader_id: str = "mfrc522"
    poll_interval_s: float = 0.015
    """Time between card-detect attempts (0.01..2 s): bounds SPI traffic and CPU. 15 ms so a
    fob is seen within 15 ms of reaching the antenna: fob → unlock byte is aimed at 30 ms
    p99 (issue 15), and at 50 ms the wait for the next poll alone was 25 ms on average."""
    hold_off_s: float = DEFAULT_HOLD_OFF_S
    """A held card counts as removed after this long absent (0..10 s) ..."""
    hold_off_polls: int = DEFAULT_HOLD_OFF_POLLS
    """... and after this many consecutive polls without it (1..100)."""
    command_timeout_s: float = 0.1
    """Software deadline of one chip command (0.03..1 s); the chip's own timer is 25 ms."""
    irq_poll_s: float = 0.001
    """Sleep between ComIrqReg reads when no IRQ pin is wired (0.0002..0.01 s)."""
    credential_block: int | None = None
    """MIFARE Classic block holding the credential (1..63, not a sector trailer)."""
    key: bytes = field(default=b"\xff" * MIFARE_KEY_SIZE, repr=False)
    """Sector key for ``credential_block`` (6 bytes); kept out of repr so logs never show it."""
    key_type: Literal["A", "B"] = "A"
    detect_magic: bool = True
    """Probe each new card for the Gen1a backdoor and report ``magic``."""
    accepted_versions: tuple[int, ...] = tuple(CHIP_VERSIONS)
    """VersionReg values accepted at open (0x91, 0x92; add clones such as 0x88 knowingly)."""
    rx_gain: int | None = None
    """RFCfgReg RxGain (0..7, 18..48 dB); ``None`` keeps the chip default (33 dB)."""

    def __post_init__(self) -> None:
        def bounded(name: str, low: float, high: float) -> None:
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be within {low}..{high}, got {value}")

        if not self.reader_id:
            raise ValueError("reader_id must not be empty")
        bounded("poll_interval_s", 0.01, 2.0)
        bounded("hold_off_s", 0.0, 10.0)
        bounded("hold_off_polls", 1, 100)
        bounded("command_timeout_s", 0.03, 1.0)
        bounded("irq_poll_s", 0.0002, 0.01)
        if self.credential_block is not None and (
                not 1 <= self.credential_block <= 63 or is_sector_trailer(self.credential_block)):
            raise ValueError(f"credential_block must be a data block 1..63 (not a sector "
                             f"trailer), got {self.credential_block}")
        if len(self.key) != MIFARE_KEY_SIZE:
            raise ValueError(f"key must have {MIFARE_KEY_SIZE} bytes, got {len(self.key)}")
        if self.key_type not in ("A", "B"):
            raise ValueError(f"key_type must be 'A' or 'B', got {self.key_type!r}")
        if not self.accepted_versions or not all(
                0 <= v <= 0xFF for v in self.accepted_versions):
            raise ValueError("accepted_versions must list byte values")
        if self.rx_gain is not None:
            bounded("rx_gain", 0, 7)


@dataclass(frozen=True, slots=True)
class RxFrame:
    """What the chip received: bytes plus valid bits in the last byte (0 = all 8)."""

    data: bytes
    last_bits: int = 0


class CardError(Exception):
    """A frame exchange with a card failed (collision, parity, garbled answer).

    Normal on a contactless link (a card pulled away mid-frame, two cards at once); the
    reader treats it as "nothing read this poll" and never lets it reach the cabinet.
    """

    def __init__(self, message: str, *, collision: bool = False) -> None:
        super().__init__(message)
        self.collision = collision


class Mfrc522:
    """The chip: register access and chip commands, each bounded by a deadline.

    ``irq`` is a gpiozero input device on the chip's IRQ pin (active low); when present,
    command completion is awaited on the pin instead of polling ComIrqReg.
    """

    def __init__(
        self,
        spi: SpiTransport,
        *,
        irq: Any = None,
        command_timeout_s: float = 0.1,
        irq_poll_s: float = 0.001,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._spi = spi
        self._irq = irq
        self._command_timeout_s = command_timeout_s
        self._irq_poll_s = irq_poll_s
        self._clock = clock
        self._sleep = sleep

    # -- registers -------------------------------------------------------------------------
    def _xfer(self, data: list[int]) -> list[int]:
        try:
            answer = self._spi.xfer2(data)
        except OSError as exc:
            raise ReaderError(f"SPI transfer failed: {exc}") from exc
        if len(answer) != len(data):
            raise ReaderError(f"SPI returned {len(answer)} bytes for {len(data)}")
        return answer

    def read(self, reg: int) -> int:
        return self._xfer([read_address(reg), 0])[1]

    def read_many(self, *regs: int) -> list[int]:
        """Read several registers in one SPI transaction."""
        return self._xfer([read_address(r) for r in regs] + [0])[1:]

    def write(self, reg: int, value: int) -> None:
        self._xfer([write_address(reg), value & 0xFF])

    def set_bits(self, reg: int, mask: int) -> None:
        self.write(reg, self.read(reg) | mask)

    def clear_bits(self, reg: int, mask: int) -> None:
        self.write(reg, self.read(reg) & ~mask)

    def write_fifo(self, data: bytes) -> None:
        if data:
            self._xfer([write_address(Reg.FIFOData), *data])

    def read_fifo(self, count: int) -> bytes:
        if count <= 0:
            return b""
        return bytes(self._xfer([read_address(Reg.FIFOData)] * count + [0])[1:])

    # -- set-up ----------------------------------------------------------------------------
    def version(self) -> int:
        return self.read(Reg.Version)

    def initialise(self, *, accepted_versions: tuple[int, ...], rx_gain: int | None = None) -> int:
        """Check the chip, soft-reset it and configure timer, modulation, CRC and antenna.

        Returns VersionReg. Raises ``ReaderError`` when the chip is absent or not accepted,
        because polling a wrong or missing chip would only ever report "no card".
        """
        version = self.version()
        if version not in accepted_versions:
            hint = (" (no chip answering: check SPI wiring and power)"
                    if version in (0x00, 0xFF) else "")
            raise ReaderError(f"unexpected MFRC522 VersionReg 0x{version:02X}{hint}; "
                              f"accepted: {', '.join(f'0x{v:02X}' for v in accepted_versions)}")
        self.write(Reg.Command, Cmd.SoftReset)
        deadline = self._clock() + SOFT_RESET_TIMEOUT_S
        while self.read(Reg.Command) & POWER_DOWN:  # oscillator still starting
            if self._clock() >= deadline:
                raise ReaderError("MFRC522 did not come out of soft reset")
            self._sleep(0.005)
        self.write(Reg.TMode, T_AUTO | (TIMER_PRESCALER >> 8))
        self.write(Reg.TPrescaler, TIMER_PRESCALER & 0xFF)
        self.write(Reg.TReloadH, TIMER_RELOAD >> 8)
        self.write(Reg.TReloadL, TIMER_RELOAD & 0xFF)
        self.write(Reg.TxASK, FORCE_100_ASK)  # type A needs 100 % ASK
        self.write(Reg.Mode, 0x3D)  # CRC preset 0x6363 (CRC_A), TxWaitRF, MFIN active high
        if rx_gain is not None:
            self.write(Reg.RFCfg, (rx_gain & 0x07) << 4)
        if self._irq is not None:
            # IRQ pin active low, CMOS output, raised by the events the driver waits for
            self.write(Reg.ComIEn, IRQ_INV | RX_IRQ | IDLE_IRQ | ERR_IRQ | TIMER_IRQ)
            self.write(Reg.DivIEn, IRQ_PUSH_PULL | CRC_IRQ)
        self.antenna_on()
        return version

    def antenna_on(self) -> None:
        value = self.read(Reg.TxControl)
        if value & (TX1_RF_EN | TX2_RF_EN) != (TX1_RF_EN | TX2_RF_EN):
            self.write(Reg.TxControl, value | TX1_RF_EN | TX2_RF_EN)

    def antenna_off(self) -> None:
        self.clear_bits(Reg.TxControl, TX1_RF_EN | TX2_RF_EN)

    # -- waiting ---------------------------------------------------------------------------
    def _wait(self, reg: int, bits: int, what: str) -> int:
        """Wait until ``reg`` has one of ``bits``; return its value.

        A chip that does not finish by the deadline is broken or unpowered (its own timer
        ends every exchange within 25 ms), so that is a ``ReaderError``, not "no card".
        """
        deadline = self._clock() + self._command_timeout_s
        while True:
            if self._irq is not None:
                remaining = max(0.0, deadline - self._clock())
                if not self._irq.wait_for_active(timeout=remaining):
                    raise ReaderError(f"MFRC522 IRQ line stayed inactive during {what} "
                                      "(check the IRQ wire)")
            value = self.read(reg)
            if value & bits:
                return value
            if self._clock() >= deadline:
                raise ReaderError(f"MFRC522 did not complete {what} "
                                  f"within {self._command_timeout_s * 1000:.0f} ms")
            self._sleep(self._irq_poll_s)

    def _prepare(self) -> None:
        self.write(Reg.Command, Cmd.Idle)
        self.write(Reg.ComIrq, COM_IRQ_ALL)  # Set1=0: clear every request bit
        self.write(Reg.FIFOLevel, FLUSH_BUFFER)

    # -- commands --------------------------------------------------------------------------
    def calc_crc(self, data: bytes) -> bytes:
        """CRC_A of ``data`` computed by the chip's coprocessor (LSB first)."""
        self.write(Reg.Command, Cmd.Idle)
        self.write(Reg.DivIrq, CRC_IRQ)  # Set2=0: clear CRCIRq
        self.write(Reg.FIFOLevel, FLUSH_BUFFER)
        self.write_fifo(data)
        self.write(Reg.Command, Cmd.CalcCRC)
        self._wait(Reg.DivIrq, CRC_IRQ, "CalcCRC")
        low, high = self.read_many(Reg.CRCResultL, Reg.CRCResultH)
        self.write(Reg.Command, Cmd.Idle)
        self.write(Reg.DivIrq, CRC_IRQ)  # leave no request pending on the IRQ pin
        return bytes((low, high))

    def with_crc(self, data: bytes) -> bytes:
        return bytes(data) + self.calc_crc(data)

    def transceive(self, data: bytes, *, tx_last_bits: int = 0) -> RxFrame | None:
        """Send a frame and return the card's answer, or ``None`` if no card answered.

        Raises :class:`CardError` on a collision or a damaged answer.
        """
        self._prepare()
        self.write_fifo(data)
        self.write(Reg.BitFraming, tx_last_bits & 0x07)
        self.write(Reg.Command, Cmd.Transceive)
        self.write(Reg.BitFraming, START_SEND | (tx_last_bits & 0x07))
        irq = self._wait(Reg.ComIrq, RX_IRQ | TIMER_IRQ | ERR_IRQ, "Transceive")
        if irq & ERR_IRQ:
            error = self.read(Reg.Error)
            if error & COLL_ERR:
                raise CardError("collision: more than one card in the field", collision=True)
            if error & (BUFFER_OVFL | PARITY_ERR | PROTOCOL_ERR):
                raise CardError(f"receive error, ErrorReg 0x{error:02X}")
        if not irq & RX_IRQ:
            return None
        level, control = self.read_many(Reg.FIFOLevel, Reg.Control)
        return RxFrame(self.read_fifo(level & 0x7F), control & RX_LAST_BITS_MASK)

    def authenticate(self, key_type: Literal["A", "B"], block: int, key: bytes,
                     uid: bytes) -> bool:
        """MIFARE Classic three-pass authentication; True when Crypto1 is on."""
        self._prepare()
        self.write_fifo(mifare_auth_command(key_type, block) + bytes(key) + crypto1_uid(uid))
        self.write(Reg.Command, Cmd.MFAuthent)
        irq = self._wait(Reg.ComIrq, IDLE_IRQ | TIMER_IRQ | ERR_IRQ, "MFAuthent")
        ok = bool(irq & IDLE_IRQ) and not irq & ERR_IRQ and bool(
            self.read(Reg.Status2) & MF_CRYPTO1_ON)
        if not ok:
            self.write(Reg.Command, Cmd.Idle)  # MFAuthent does not end by itself on silence
        return ok

    def stop_crypto1(self) -> None:
        self.clear_bits(Reg.Status2, MF_CRYPTO1_ON)


class Mfrc522Reader:
    """An MFRC522 badge reader implementing ``drivers.rfid.CardReader``.

    The chip is checked and initialised here, so a wrong or missing chip fails at start-up.
    ``irq_pin`` (a GPIO name or number on ``pin_factory``) is optional; without it the
    driver polls ComIrqReg with short sleeps. ``rst_pin`` drives the chip's NRSTPD line:
    high at open (a Pi pin that idles low would keep the chip powered down) and pulsed low
    by :meth:`reset` for a hard reset. Thread-safe: ``close`` may be called while another
    thread waits in ``wait_for_card``.
    """

    def __init__(
        self,
        spi: SpiTransport,
        config: Mfrc522Config | None = None,
        *,
        irq_pin: int | str | None = None,
        rst_pin: int | str | None = None,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` must advance like ``time.monotonic`` (it bounds waits and deadlines)."""
        self.config = config or Mfrc522Config()
        self._spi = spi
        self._clock = clock
        self._irq: Any = None
        self._rst: Any = None
        try:
            if rst_pin is not None:
                self._rst = DigitalOutputDevice(rst_pin, initial_value=True,
                                                pin_factory=pin_factory)
                time.sleep(HARD_RESET_SETTLE_S)
            if irq_pin is not None:
                self._irq = DigitalInputDevice(irq_pin, pull_up=True, pin_factory=pin_factory)
        except BaseException:
            self._release()  # a pin already in use must not leak the SPI handle
            raise
        self.chip = Mfrc522(spi, irq=self._irq, command_timeout_s=self.config.command_timeout_s,
                            irq_poll_s=self.config.irq_poll_s, clock=clock)
        self._debouncer = Debouncer(hold_off_s=self.config.hold_off_s,
                                    hold_off_polls=self.config.hold_off_polls, clock=clock)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._next_poll = 0.0
        self._credential_failures: tuple[bytes, int] = (b"", 0)
        try:
            self.version = self.chip.initialise(accepted_versions=self.config.accepted_versions,
                                                rx_gain=self.config.rx_gain)
        except BaseException:
            self._release()
            raise
        log.info("%s: %s ready (IRQ %s)", self.reader_id,
                 CHIP_VERSIONS.get(self.version, f"chip 0x{self.version:02X}"),
                 "wired" if self._irq is not None else "polled")

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
            now = self._clock()
            if now < self._next_poll:  # never poll faster than poll_interval_s
                if self._next_poll > deadline:
                    self._stop.wait(max(0.0, deadline - now))
                    return None
                if self._stop.wait(self._next_poll - now):
                    return None
            with self._lock:
                if self._closed:
                    return None
                self._next_poll = self._clock() + self.config.poll_interval_s
                read = self._poll()
            if read is not None:
                return read
            if self._clock() >= deadline:
                return None

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(ReaderError):  # best effort: the chip may be gone
                self.chip.antenna_off()
            self._release()

    def reset(self) -> None:
        """Reset and re-initialise the chip (e.g. after a power blip made it forget its set-up).

        With ``rst_pin`` wired this is a hard reset (NRSTPD pulsed low), which also frees a
        chip that no longer answers SPI; otherwise the chip gets a soft reset.
        """
        with self._lock:
            if self._rst is not None:
                self._rst.off()
                time.sleep(0.001)
                self._rst.on()
                time.sleep(HARD_RESET_SETTLE_S)
            self.chip.initialise(accepted_versions=self.config.accepted_versions,
                                 rx_gain=self.config.rx_gain)
            self._debouncer.reset()

    def _release(self) -> None:
        if self._irq is not None:
            self._irq.close()
        if self._rst is not None:
            self._rst.close()  # the pin falls back to its pull: the chip powers down
        close = getattr(self._spi, "close", None)
        if close is not None:
            close()

    # -- one poll --------------------------------------------------------------------------
    def _poll(self) -> CardRead | None:
        try:
            found = self.activate()
        except CardError as exc:
            log.debug("%s: no read this poll: %s", self.reader_id, exc)
            return None  # neither present nor absent: wait for a clean answer
        if found is None:
            self._debouncer.observe(None)
            return None
        uid, _sak = found
        if not self._debouncer.is_new(uid):
            self._debouncer.observe(uid)  # still held: refresh, put it back to sleep
            self._halt()
            return None
        try:
            credential = self._read_credential(uid)
        except CardError as exc:
            log.debug("%s: credential read of %s failed: %s", self.reader_id, uid.hex(), exc)
            self._halt()
            self.chip.stop_crypto1()
            return None
        self._halt()  # while Crypto1 is still on, so an authenticated card understands it
        self.chip.stop_crypto1()
        magic = self._probe_gen1a() if self.config.detect_magic else False
        self._debouncer.observe(uid)
        if magic:
            log.warning("%s: card %s answers the Gen1a backdoor (writable-UID clone)",
                        self.reader_id, uid.hex().upper())
        return CardRead(uid=uid, reader_id=self.reader_id, credential=credential, magic=magic)

    def activate(self) -> tuple[bytes, int] | None:
        """WUPA, then anticollision and SELECT per cascade level: ``(uid, sak)`` or None."""
        atqa = self.chip.transceive(bytes((WUPA,)), tx_last_bits=SHORT_FRAME_BITS)
        if atqa is None:
            return None
        if len(atqa.data) != 2 or atqa.last_bits:
            raise CardError(f"bad ATQA {atqa.data.hex()}")
        uid = b""
        for level in (1, 2, 3):
            answer = self.chip.transceive(anticollision_command(level))
            if answer is None:
                raise CardError(f"card left during anticollision level {level}")
            try:
                uid_cln = parse_anticollision(answer.data)
            except ValueError as exc:
                raise CardError(str(exc)) from exc
            sak_frame = self.chip.transceive(self.chip.with_crc(select_command(level, uid_cln)))
            if sak_frame is None or len(sak_frame.data) != 3:
                raise CardError(f"no SAK at cascade level {level}")
            if self.chip.calc_crc(sak_frame.data[:1]) != sak_frame.data[1:]:
                raise CardError(f"SAK CRC error at cascade level {level}")
            sak = sak_frame.data[0]
            try:
                uid += uid_part(uid_cln, sak)
            except ValueError as exc:
                raise CardError(str(exc)) from exc
            if not sak & SAK_CASCADE_BIT:
                return uid, sak
        raise CardError("UID longer than three cascade levels")

    def _read_credential(self, uid: bytes) -> bytes | None:
        block = self.config.credential_block
        if block is None:
            return None
        if not self.chip.authenticate(self.config.key_type, block, self.config.key, uid):
            log.info("%s: card %s refused the configured key for block %d",
                     self.reader_id, uid.hex().upper(), block)
            return None
        frame = self.chip.transceive(self.chip.with_crc(mifare_read_command(block)))
        if frame is not None and len(frame.data) == 1 and frame.last_bits == 4:
            log.info("%s: card %s refused READ of block %d (access bits)",
                     self.reader_id, uid.hex().upper(), block)
            return None
        try:
            if frame is None or len(frame.data) != MIFARE_BLOCK_SIZE + 2 or frame.last_bits:
                raise CardError(f"READ of block {block} got no valid answer")
            if self.chip.calc_crc(frame.data[:MIFARE_BLOCK_SIZE]) != frame.data[-2:]:
                raise CardError(f"READ of block {block}: CRC error")
        except CardError:
            last_uid, count = self._credential_failures
            count = count + 1 if last_uid == uid else 1
            self._credential_failures = (uid, count)
            if count >= MAX_CREDENTIAL_ATTEMPTS:  # do not retry one odd card forever
                self._credential_failures = (b"", 0)
                return None
            raise
        self._credential_failures = (b"", 0)
        return frame.data[:MIFARE_BLOCK_SIZE]

    def _halt(self) -> None:
        """HLTA: the card stays quiet until the next WUPA (no answer means it obeyed)."""
        try:
            self.chip.transceive(self.chip.with_crc(HLTA))
        except CardError as exc:
            log.debug("%s: HLTA: %s", self.reader_id, exc)

    def _probe_gen1a(self) -> bool:
        """Gen1a backdoor: a halted genuine card ignores 0x40; a Gen1a clone ACKs 0x40/0x43."""
        try:
            if not _is_ack(self.chip.transceive(bytes((GEN1A_UNLOCK_1,)),
                                                tx_last_bits=SHORT_FRAME_BITS)):
                return False
            magic = _is_ack(self.chip.transceive(bytes((GEN1A_UNLOCK_2,))))
        except CardError as exc:
            log.debug("%s: Gen1a probe: %s", self.reader_id, exc)
            return False
        self._halt()  # leave the backdoor state so the card sleeps until the next WUPA
        return magic


def _is_ack(frame: RxFrame | None) -> bool:
    return (frame is not None and len(frame.data) == 1 and frame.last_bits == 4
            and frame.data[0] & 0x0F == MIFARE_ACK)
