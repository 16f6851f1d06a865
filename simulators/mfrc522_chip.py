"""A register-level NXP MFRC522 simulator that speaks spidev's ``xfer2``.

The driver talks to this object exactly as it talks to ``spidev.SpiDev``: address bytes
in, register values out. Behind the register file sit a 64-byte FIFO, the commands the
driver uses (Idle, Mem, GenerateRandomID, CalcCRC, Transmit, Receive, Transceive,
MFAuthent, SoftReset), the interrupt request bits and, optionally, the IRQ output pin
driven on a gpiozero ``MockFactory`` pin. On the air side it hands frames to whatever tag
is held to the antenna (a ``simulators.tags`` object, read from a ``CabinetModel`` so the
cabinet model places and removes cards).

Simplifications, each chosen because the driver does not depend on it:

* Time does not pass: a frame gets its answer, or TimerIRq, within the same ``xfer2``.
  TimerIRq on silence is raised only when TModeReg.TAuto is set, as on the chip, so a
  driver that forgets to start the timer waits into its own deadline.
* The field matters: with TxControlReg Tx1/Tx2RFEn off or without TxASKReg Force100ASK no
  tag answers, and switching the field off resets the tags (they lose power).
* No TX/RX CRC hardware (TxModeReg/RxModeReg CRCEn), no RxAlign, no MSBFirst CRC, no
  Crypto1 cipher: MFAuthent asks the tag whether the key is right (see simulators.tags).
* The register file keeps what is written; read-only registers ignore writes.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from typing import Any

from drivers.rfid.iso14443a import crc_a_update, with_crc
from drivers.rfid.mfrc522_regs import (
    BUFFER_OVFL,
    COLL_ERR,
    COMMAND_MASK,
    CRC_IRQ,
    CRC_PRESET_MASK,
    CRC_PRESETS,
    CRC_READY,
    DIV_IRQ_ALL,
    ERR_IRQ,
    FIFO_SIZE,
    FLUSH_BUFFER,
    FORCE_100_ASK,
    IDLE_IRQ,
    IRQ_INV,
    MF_CRYPTO1_ON,
    POWER_DOWN,
    PROTOCOL_ERR,
    RCV_OFF,
    RX_IRQ,
    SET1,
    SET2,
    START_SEND,
    STATUS1_IRQ,
    T_AUTO,
    TEMP_ERR,
    TIMER_IRQ,
    TX1_RF_EN,
    TX2_RF_EN,
    TX_IRQ,
    TX_LAST_BITS_MASK,
    Cmd,
    Reg,
)
from simulators.cabinet import CabinetModel
from simulators.tags import Collision, Response, RfTag

RESET_VALUES: dict[int, int] = {
    Reg.Command: 0x20,
    Reg.ComIEn: 0x80,
    Reg.DivIEn: 0x00,
    Reg.ComIrq: 0x14,
    Reg.DivIrq: 0x00,
    Reg.Error: 0x00,
    Reg.Status1: 0x21,
    Reg.Status2: 0x00,
    Reg.WaterLevel: 0x08,
    Reg.Control: 0x10,
    Reg.BitFraming: 0x00,
    Reg.Coll: 0xA0,
    Reg.Mode: 0x3F,
    Reg.TxMode: 0x00,
    Reg.RxMode: 0x00,
    Reg.TxControl: 0x80,
    Reg.TxASK: 0x00,
    Reg.TxSel: 0x10,
    Reg.RxSel: 0x84,
    Reg.RxThreshold: 0x84,
    Reg.Demod: 0x4D,
    Reg.MfTx: 0x62,
    Reg.SerialSpeed: 0xEB,
    Reg.CRCResultH: 0xFF,
    Reg.CRCResultL: 0xFF,
    Reg.ModWidth: 0x26,
    Reg.RFCfg: 0x48,
    Reg.GsN: 0x88,
    Reg.CWGsP: 0x20,
    Reg.ModGsP: 0x20,
}
READ_ONLY = frozenset({Reg.Error, Reg.Status1, Reg.CRCResultH, Reg.CRCResultL,
                       Reg.TCounterValH, Reg.TCounterValL, Reg.Version})
INTERNAL_BUFFER_SIZE = 25
LOG_LENGTH = 4096
"""How many commands, frames and IRQ level changes the simulator remembers (for tests)."""


class Mfrc522ChipSim:
    """One MFRC522 on an SPI bus, with an antenna.

    ``cabinet``: the antenna is ``cabinet.antenna`` and the chip loses power (and its
    registers) while ``cabinet.powered`` is False. Without a cabinet the chip has its own
    :attr:`antenna`. ``irq_pin``: a gpiozero mock pin the chip's IRQ output drives.
    ``rst_pin``: a mock pin on the chip's NRSTPD input; while it is low the chip is powered
    down (SPI reads zeros) and a rising edge is a hard reset.
    """

    def __init__(
        self,
        cabinet: CabinetModel | None = None,
        *,
        irq_pin: Any = None,
        rst_pin: Any = None,
        version: int = 0x92,
        log_length: int | None = None,
    ) -> None:
        self.cabinet = cabinet
        self.log_length = LOG_LENGTH if log_length is None else log_length
        """How much of its traffic the chip remembers: ``LOG_LENGTH`` for tests that read it
        back; ``kiosk run`` keeps a short log, which fills within its first seconds of
        polling instead of over its first hour (issue 15, item 4)."""
        self.irq_pin = irq_pin
        self.rst_pin = rst_pin
        self.version = version
        self._own_antenna: object | None = None
        self._lock = threading.RLock()
        self.xfer_count = 0
        self.reads: Counter[int] = Counter()
        self.writes: Counter[int] = Counter()
        self.commands: deque[Cmd | int] = deque(maxlen=self.log_length)
        """The latest commands started, in order (for tests that check the driver's sequence).
        Bounded: a simulated daemon polls the chip 20 times a second for weeks."""
        self.air_log: deque[tuple[bytes, int]] = deque(maxlen=self.log_length)
        """The latest frames sent on air as (bytes, valid bits in last byte); bounded too."""
        self.closed = False
        self.unplugged = False
        """A pulled cable: the chip answers nothing (all zeros), as on a dead SPI bus."""
        self._unpowered = False
        self._rst_seen = 0
        self._reset()

    # -- antenna ---------------------------------------------------------------------------
    @property
    def antenna(self) -> object | None:
        if self.cabinet is not None:
            return self.cabinet.antenna
        return self._own_antenna

    @antenna.setter
    def antenna(self, tag: object | None) -> None:
        if self.cabinet is not None:
            if tag is None:
                self.cabinet.remove_tag()
            else:
                self.cabinet.place_tag(tag)
        else:
            self._own_antenna = tag

    def place_tag(self, tag: object) -> None:
        """Hold ``tag`` to the antenna."""
        self.antenna = tag

    def remove_tag(self) -> None:
        """Take the tag away from the antenna."""
        self.antenna = None

    # -- SPI -------------------------------------------------------------------------------
    def xfer2(self, data: list[int]) -> list[int]:
        """One SPI transaction (chip select held for the whole list), as ``spidev``.

        Read: MOSI ``addr0, addr1, ..., 0`` and MISO ``x, reg(addr0), reg(addr1), ...``.
        Write: MOSI ``addr, value, value, ...`` writes every value to the same register.
        """
        with self._lock:
            self.xfer_count += 1
            if not self._has_power():
                return [0] * len(data)
            out = [0] * len(data)
            if not data:
                return out
            address = data[0] & 0xFF
            if address & 0x80:
                for index in range(1, len(data)):
                    out[index] = self._read((address >> 1) & 0x3F)
                    address = data[index] & 0xFF
                    if not address & 0x80:
                        break
            else:
                reg = (address >> 1) & 0x3F
                for value in data[1:]:
                    self._write(reg, value & 0xFF)
            self._drive_irq_pin()
            return out

    def close(self) -> None:
        """What the driver calls on its transport at shutdown."""
        self.closed = True

    # -- introspection for tests ---------------------------------------------------------
    def register(self, reg: int) -> int:
        """Peek a register without side effects (no FIFO pop, not counted)."""
        with self._lock:
            if reg == Reg.FIFOLevel:
                return len(self._fifo)
            return self._regs[reg]

    @property
    def crypto1_on(self) -> bool:
        return bool(self._regs[Reg.Status2] & MF_CRYPTO1_ON)

    @property
    def field_on(self) -> bool:
        return bool(self._regs[Reg.TxControl] & (TX1_RF_EN | TX2_RF_EN))

    def irq_active(self) -> bool:
        """Status1Reg.IRq: an enabled interrupt request is pending."""
        com = self._regs[Reg.ComIrq] & self._regs[Reg.ComIEn] & 0x7F
        div = self._regs[Reg.DivIrq] & self._regs[Reg.DivIEn] & DIV_IRQ_ALL
        return bool(com or div)

    # -- internals -------------------------------------------------------------------------
    def _has_power(self) -> bool:
        if self.rst_pin is not None and self._rst_went_low():
            self._unpowered = True
        if (self.unplugged or (self.cabinet is not None and not self.cabinet.powered)
                or (self.rst_pin is not None and not self.rst_pin.state)):
            self._unpowered = True
            return False
        if self._unpowered:  # power came back: the chip starts from its reset state
            self._unpowered = False
            self._reset()
        return True

    def _rst_went_low(self) -> bool:
        """Did NRSTPD dip low since the last transfer? (a pulse between two transfers
        still resets the chip, so read the mock pin's state history, not only its level)"""
        states = self.rst_pin.states
        start = self._rst_seen if self._rst_seen <= len(states) else 0
        self._rst_seen = len(states)
        return any(not entry.state for entry in states[start:])

    def _reset(self) -> None:
        self._regs = bytearray(64)
        for reg, value in RESET_VALUES.items():
            self._regs[reg] = value
        self._regs[Reg.Version] = self.version
        self._fifo = bytearray()
        self._buffer = bytearray(INTERNAL_BUFFER_SIZE)
        self._crc = 0
        self._command = Cmd.Idle
        self._powered_tag: object | None = None

    def _read(self, reg: int) -> int:
        self.reads[reg] += 1
        if reg == Reg.FIFOData:
            return self._fifo.pop(0) if self._fifo else 0
        if reg == Reg.FIFOLevel:
            return len(self._fifo)
        if reg == Reg.Status1:
            level = len(self._fifo)
            water = self._regs[Reg.WaterLevel] & 0x3F
            value = self._regs[Reg.Status1] & (CRC_READY | 0x40)
            value |= STATUS1_IRQ if self.irq_active() else 0
            value |= 0x02 if FIFO_SIZE - level <= water else 0
            value |= 0x01 if level <= water else 0
            return value
        if reg == Reg.Version:
            return self.version
        return self._regs[reg]

    def _write(self, reg: int, value: int) -> None:
        self.writes[reg] += 1
        if reg in READ_ONLY:
            return
        if reg == Reg.Command:
            self._start_command(value)
        elif reg == Reg.ComIrq:
            self._set_or_clear(Reg.ComIrq, value, SET1)
        elif reg == Reg.DivIrq:
            self._set_or_clear(Reg.DivIrq, value, SET2)
        elif reg == Reg.FIFOData:
            self._fifo_push(value)
        elif reg == Reg.FIFOLevel:
            if value & FLUSH_BUFFER:
                self._fifo.clear()
                self._regs[Reg.Error] &= ~BUFFER_OVFL & 0xFF
        elif reg == Reg.Status2:
            # software may clear MFCrypto1On (StopCrypto1) but never set it
            old = self._regs[Reg.Status2]
            self._regs[Reg.Status2] = (value & 0xC0) | (old & value & MF_CRYPTO1_ON) | (old & 0x07)
        elif reg == Reg.Control:
            # TStopNow/TStartNow are strobes; RxLastBits is read-only
            self._regs[Reg.Control] = 0x10 | (self._regs[Reg.Control] & 0x07)
        elif reg == Reg.BitFraming:
            self._regs[Reg.BitFraming] = value
            if value & START_SEND and self._command == Cmd.Transceive:
                self._transceive()
        elif reg == Reg.TxControl:
            self._regs[Reg.TxControl] = value
            if not self.field_on:
                self._powered_tag = None  # no carrier: the tags lose power
        else:
            self._regs[reg] = value

    def _set_or_clear(self, reg: int, value: int, set_bit: int) -> None:
        mask = value & 0x7F
        if value & set_bit:
            self._regs[reg] |= mask
        else:
            self._regs[reg] &= ~mask & 0xFF

    def _fifo_push(self, value: int) -> None:
        if self._command == Cmd.CalcCRC:
            self._crc = crc_a_update(self._crc, (value,))  # CalcCRC absorbs FIFO input
            self._store_crc()
            return
        if len(self._fifo) >= FIFO_SIZE:
            self._regs[Reg.Error] |= BUFFER_OVFL
            return
        self._fifo.append(value)

    def _irq(self, bits: int) -> None:
        self._regs[Reg.ComIrq] |= bits

    def _finish(self) -> None:
        """A command that terminates by itself: back to Idle with IdleIRq."""
        self._command = Cmd.Idle
        self._regs[Reg.Command] &= ~COMMAND_MASK & 0xFF
        self._irq(IDLE_IRQ)

    def _start_command(self, value: int) -> None:
        code = value & COMMAND_MASK
        if code == Cmd.SoftReset:
            self.commands.append(Cmd.SoftReset)
            self._reset()
            return
        self._regs[Reg.Command] = (value & (RCV_OFF | POWER_DOWN)) | (
            self._command if code == Cmd.NoCmdChange else code)
        if code == Cmd.NoCmdChange:
            return
        try:
            command = Cmd(code)
        except ValueError:
            self.commands.append(code)
            self._finish()  # unknown command: the chip goes Idle and says so
            return
        self.commands.append(command)
        self._command = command
        # ErrorReg flags describe the last command; a new one starts clean
        self._regs[Reg.Error] &= BUFFER_OVFL | TEMP_ERR
        if command == Cmd.Mem:
            if self._fifo:
                self._buffer[:] = bytes(self._fifo[:INTERNAL_BUFFER_SIZE]).ljust(
                    INTERNAL_BUFFER_SIZE, b"\0")
                del self._fifo[:INTERNAL_BUFFER_SIZE]
            else:
                self._fifo.extend(self._buffer)
            self._finish()
        elif command == Cmd.GenerateRandomID:
            self._buffer[15:25] = random.randbytes(10)
            self._finish()
        elif command == Cmd.CalcCRC:
            preset = CRC_PRESETS[self._regs[Reg.Mode] & CRC_PRESET_MASK]
            self._crc = crc_a_update(preset, self._fifo)
            self._fifo.clear()
            self._store_crc()
        elif command == Cmd.Transmit:
            self._air(self._take_frame())
            self._irq(TX_IRQ)
            self._finish()
        elif command == Cmd.Transceive:
            if self._regs[Reg.BitFraming] & START_SEND:
                self._transceive()
        elif command == Cmd.MFAuthent:
            self._authenticate()

    def _store_crc(self) -> None:
        self._regs[Reg.CRCResultL] = self._crc & 0xFF
        self._regs[Reg.CRCResultH] = self._crc >> 8
        self._regs[Reg.Status1] |= CRC_READY
        self._regs[Reg.DivIrq] |= CRC_IRQ

    def _take_frame(self) -> tuple[bytes, int]:
        frame = bytes(self._fifo)
        self._fifo.clear()
        return frame, self._regs[Reg.BitFraming] & TX_LAST_BITS_MASK

    def _reachable_tag(self) -> RfTag | None:
        if not self.field_on or not self._regs[Reg.TxASK] & FORCE_100_ASK:
            return None  # no carrier, or 10 % ASK that type A cards do not decode
        tag = self.antenna
        if not isinstance(tag, RfTag):
            self._powered_tag = None
            return None
        if tag is not self._powered_tag:
            tag.power_up()  # a card just entered the field
            self._powered_tag = tag
        return tag

    def _air(self, sent: tuple[bytes, int]) -> Response | None:
        self.air_log.append(sent)
        tag = self._reachable_tag()
        return tag.handle(*sent) if tag is not None else None

    def _silence(self) -> None:
        if self._regs[Reg.TMode] & T_AUTO:
            self._irq(TIMER_IRQ)

    def _transceive(self) -> None:
        answer = self._air(self._take_frame())
        self._irq(TX_IRQ)
        if answer is None:
            self._silence()
            return
        self._fifo[:] = answer.data[:FIFO_SIZE]
        self._regs[Reg.Control] = 0x10 | (answer.last_bits & 0x07)
        if isinstance(answer, Collision):
            self._regs[Reg.Error] |= COLL_ERR
            self._regs[Reg.Coll] = answer.bit & 0x1F  # CollPos; 0 means bit 32
            self._irq(ERR_IRQ)
        self._irq(RX_IRQ)

    def _authenticate(self) -> None:
        data = bytes(self._fifo)
        self._fifo.clear()
        self._regs[Reg.Status2] &= ~MF_CRYPTO1_ON & 0xFF
        if len(data) < 12:
            self._regs[Reg.Error] |= PROTOCOL_ERR
            self._irq(ERR_IRQ)
            self._finish()
            return
        key_type, block, key, uid4 = data[0], data[1], data[2:8], data[8:12]
        self.air_log.append((with_crc(data[:2]), 0))
        tag = self._reachable_tag()
        if tag is not None and tag.authenticate(key_type, block, key, uid4):
            self._regs[Reg.Status2] |= MF_CRYPTO1_ON
            self._finish()
        else:
            self._silence()  # MFAuthent does not end by itself when the card is silent

    def _drive_irq_pin(self) -> None:
        if self.irq_pin is None:
            return
        level = self.irq_active()
        if self._regs[Reg.ComIEn] & IRQ_INV:
            level = not level
        if level:
            self.irq_pin.drive_high()
        else:
            self.irq_pin.drive_low()
        states = getattr(self.irq_pin, "states", None)
        if states is not None and len(states) > self.log_length:
            self.irq_pin.clear_states()  # gpiozero's mock pin keeps every level change
