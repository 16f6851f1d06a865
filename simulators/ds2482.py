"""DS2482-800 bridges, a TCA9548A multiplexer and 1-Wire key fobs at register level.

:class:`I2cBusSim` is an SMBus: the identity driver calls ``write_byte``,
``write_byte_data`` and ``read_byte`` on it exactly as on smbus2's ``SMBus``, and each
address is answered by a :class:`Ds2482Sim` (or NACKed with ``OSError(121)`` as the kernel
does). Each bridge channel is a 1-Wire line whose devices are what the cabinet model says
hangs in that slot: :meth:`simulators.cabinet.CabinetModel.fob_rom`.

Modelled: device reset and the RST bit, configuration write/read-back (upper nibble check),
channel select with the datasheet's read-back values, 1-Wire reset with presence (PPD) and
short (SD), Write Byte, Read Byte, the read pointer, and 1WB staying set for
``busy_reads`` status reads after each line command (so the driver must poll). A line with
two fobs answers Read ROM as a wired AND, as real ones do. Faults: a shorted line, a bridge
stuck busy, a bridge that NACKs (unplugged), a flipped ROM bit (dirty contact).
"""

from __future__ import annotations

import errno
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from drivers.identity.ds2482 import Receptor
from drivers.identity.onewire import (
    CHANNEL_CODES,
    CHANNEL_READBACK,
    CMD_1WIRE_READ_BYTE,
    CMD_1WIRE_RESET,
    CMD_1WIRE_SINGLE_BIT,
    CMD_1WIRE_TRIPLET,
    CMD_1WIRE_WRITE_BYTE,
    CMD_CHANNEL_SELECT,
    CMD_DEVICE_RESET,
    CMD_SET_READ_POINTER,
    CMD_WRITE_CONFIG,
    PTR_CHANNEL,
    PTR_CONFIG,
    PTR_READ_DATA,
    PTR_STATUS,
    ROM_READ,
    STATUS_1WB,
    STATUS_PPD,
    STATUS_RST,
    STATUS_SD,
    FobId,
)

LOG_LENGTH = 4096
"""How many commands a bridge remembers (for tests that check the driver's sequence)."""

LineDevices = Callable[[int], Sequence[FobId]]
"""What hangs on one channel of a bridge: ``channel -> fobs`` (usually zero or one)."""


def _nack(address: int) -> OSError:
    return OSError(errno.EREMOTEIO, f"Remote I/O error (no ACK from 0x{address:02X})")


@dataclass
class Ds2482Faults:
    """Switchable faults of one bridge."""

    shorted: set[int] = field(default_factory=set)
    """Channels whose line is held low: 1-Wire reset reports SD."""
    stuck_busy: bool = False
    """1WB never clears after a line command (a bridge wedged by ESD)."""
    unplugged: bool = False
    """The bridge NACKs every transaction (cable off, chip dead)."""
    flip_rom_bit: set[int] = field(default_factory=set)
    """Channels whose next Read ROM returns one wrong bit (a dirty contact); cleared after
    one read, like a bounce."""
    flip_always: set[int] = field(default_factory=set)
    """Channels whose every Read ROM has a wrong bit (a broken fob or contact)."""


class Ds2482Sim:
    """One DS2482-800 at ``address``; ``devices(channel)`` says what is on each line."""

    def __init__(self, address: int, devices: LineDevices, *, busy_reads: int = 2) -> None:
        self.address = address
        self.devices = devices
        self.busy_reads = busy_reads
        self.faults = Ds2482Faults()
        self.commands: deque[tuple[int, ...]] = deque(maxlen=LOG_LENGTH)
        """The latest commands received, as (command,) or (command, parameter): for tests.
        Bounded: ``kiosk run`` on a simulated identity cabinet reads every receptor at
        every sensor scan for as long as it runs (issue 15, item 4)."""
        self._power_up()

    def _power_up(self) -> None:
        self.status = STATUS_RST
        self.config = 0
        self.channel = 0
        self.pointer = PTR_STATUS
        self.read_data = 0xFF
        self._busy_left = 0
        self._rom_out: list[int] = []

    # -- SMBus transactions ----------------------------------------------------------------------
    def write_byte(self, value: int) -> None:
        self._check_present()
        self.commands.append((value,))
        if value == CMD_DEVICE_RESET:
            self._power_up()
        elif value == CMD_1WIRE_RESET:
            self._line_command()
            self._one_wire_reset()
        elif value == CMD_1WIRE_READ_BYTE:
            self._line_command()
            self.read_data = self._rom_out.pop(0) if self._rom_out else 0xFF
        else:
            raise _nack(self.address)  # a parameterised command without its byte: not ACKed

    def write_byte_data(self, command: int, value: int) -> None:
        self._check_present()
        self.commands.append((command, value))
        if command == CMD_SET_READ_POINTER:
            if value not in (PTR_STATUS, PTR_READ_DATA, PTR_CHANNEL, PTR_CONFIG):
                raise _nack(self.address)
            self.pointer = value
        elif command == CMD_WRITE_CONFIG:
            if (value >> 4) != (~value & 0x0F):
                raise _nack(self.address)  # the datasheet: an invalid byte is not accepted
            self.config = value & 0x0F
            self.status &= ~STATUS_RST
            self.pointer = PTR_CONFIG
        elif command == CMD_CHANNEL_SELECT:
            if value in CHANNEL_CODES:
                self.channel = CHANNEL_CODES.index(value)
                self._rom_out = []
            self.pointer = PTR_CHANNEL  # an invalid code leaves the channel, the read-back tells
        elif command == CMD_1WIRE_WRITE_BYTE:
            self._line_command()
            self._rom_out = self._rom_bytes() if value == ROM_READ else []
        elif command in (CMD_1WIRE_SINGLE_BIT, CMD_1WIRE_TRIPLET):
            self._line_command()
        else:
            raise _nack(self.address)

    def read_byte(self) -> int:
        self._check_present()
        if self.pointer == PTR_STATUS:
            status = self.status
            if self._busy_left > 0 or self.faults.stuck_busy:
                self._busy_left -= 1
                return status | STATUS_1WB
            return status & ~STATUS_1WB
        if self.pointer == PTR_READ_DATA:
            return self.read_data
        if self.pointer == PTR_CHANNEL:
            return CHANNEL_READBACK[self.channel]
        return self.config  # the configuration register reads back its lower nibble only

    # -- the 1-Wire side -------------------------------------------------------------------------
    def _check_present(self) -> None:
        if self.faults.unplugged:
            raise _nack(self.address)

    def _line_command(self) -> None:
        self.pointer = PTR_STATUS
        self._busy_left = self.busy_reads

    def _one_wire_reset(self) -> None:
        self.status &= ~(STATUS_PPD | STATUS_SD)
        self._rom_out = []
        if self.channel in self.faults.shorted:
            self.status |= STATUS_SD
        elif self.devices(self.channel):
            self.status |= STATUS_PPD

    def _rom_bytes(self) -> list[int]:
        if not self.status & STATUS_PPD:
            return []
        fobs = self.devices(self.channel)
        rom = bytearray(b"\xff" * 8)
        for fob in fobs:  # wired AND: any device pulling a bit low wins
            rom = bytearray(a & b for a, b in zip(rom, fob.rom, strict=True))
        if self.channel in self.faults.flip_rom_bit or self.channel in self.faults.flip_always:
            self.faults.flip_rom_bit.discard(self.channel)
            rom[3] ^= 0x10
        return list(rom)


class Tca9548aSim:
    """A TCA9548A: the control byte written to it says which downstream channels connect."""

    def __init__(self, address: int) -> None:
        self.address = address
        self.mask = 0


class I2cBusSim:
    """An I2C bus with bridges on it, some behind a TCA9548A; an SMBus for the driver."""

    def __init__(self) -> None:
        self._direct: dict[int, Ds2482Sim] = {}
        self._muxes: dict[int, Tca9548aSim] = {}
        self._behind: dict[tuple[int, int], dict[int, Ds2482Sim]] = {}
        self._lock = threading.Lock()
        self.closed = False

    def add(self, chip: Ds2482Sim, *, mux: tuple[int, int] | None = None) -> Ds2482Sim:
        if mux is None:
            self._direct[chip.address] = chip
        else:
            self._muxes.setdefault(mux[0], Tca9548aSim(mux[0]))
            self._behind.setdefault(mux, {})[chip.address] = chip
        return chip

    def chip(self, address: int, *, mux: tuple[int, int] | None = None) -> Ds2482Sim:
        return self._direct[address] if mux is None else self._behind[mux][address]

    def _target(self, address: int) -> Ds2482Sim | Tca9548aSim:
        if address in self._muxes:
            return self._muxes[address]
        found = [self._direct[address]] if address in self._direct else []
        for (mux_address, channel), chips in self._behind.items():
            if self._muxes[mux_address].mask >> channel & 1 and address in chips:
                found.append(chips[address])
        if len(found) != 1:
            # None: nothing ACKs. Two: two chips answer at once and the transfer is garbage;
            # either way the master sees an error.
            raise _nack(address)
        return found[0]

    # -- the SMBus interface ---------------------------------------------------------------------
    def write_byte(self, i2c_addr: int, value: int, /) -> None:
        with self._lock:
            target = self._target(i2c_addr)
            if isinstance(target, Tca9548aSim):
                target.mask = value & 0xFF
            else:
                target.write_byte(value)

    def write_byte_data(self, i2c_addr: int, register: int, value: int, /) -> None:
        with self._lock:
            target = self._target(i2c_addr)
            if isinstance(target, Tca9548aSim):
                raise _nack(i2c_addr)
            target.write_byte_data(register, value)

    def read_byte(self, i2c_addr: int, /) -> int:
        with self._lock:
            target = self._target(i2c_addr)
            if isinstance(target, Tca9548aSim):
                return target.mask
            return target.read_byte()

    def close(self) -> None:
        self.closed = True


def bus_for_receptors(
    receptors: dict[int, Receptor], fobs_in: Callable[[int], Sequence[FobId]],
    *, busy_reads: int = 2,
) -> I2cBusSim:
    """Build the bus a receptor map describes: one bridge per (mux, address), each channel's
    line showing ``fobs_in(slot)`` for the slot wired there."""
    bus = I2cBusSim()
    by_chip: dict[tuple[tuple[int, int] | None, int], dict[int, int]] = {}
    for slot, receptor in receptors.items():
        by_chip.setdefault(receptor.chip, {})[receptor.channel] = slot

    for (mux, address), channels in by_chip.items():

        def devices(channel: int, channels: dict[int, int] = channels) -> Sequence[FobId]:
            slot = channels.get(channel)
            return () if slot is None else fobs_in(slot)

        bus.add(Ds2482Sim(address, devices, busy_reads=busy_reads), mux=mux)
    return bus
