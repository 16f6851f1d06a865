"""1-Wire key-fob identity and the DS2482-800 bridge's command set: pure codec, no I/O.

A key fob carries a DS2401 / DS1990A-class chip whose whole memory is a 64-bit ROM ID,
sent least significant byte first on the wire::

    family (1 byte)  serial (6 bytes, LSB first)  CRC-8 (1 byte)

The CRC is the Dallas/Maxim CRC-8 (polynomial x^8 + x^5 + x^4 + 1, reflected 0x8C, initial
value 0) over the first seven bytes; CRC-8 over all eight bytes is 0 for a good ROM.

A :class:`FobId` is written as the 16 hex digits of the 8 bytes in wire order (family
first, CRC last), e.g. ``021CB801000000A2`` (the worked example of Maxim's 1-Wire CRC
application note): the form ``SlotState.fob`` carries and an installer reads off the
commissioning output.

The DS2482-800 (I2C to 8 x 1-Wire) is driven by one-byte commands, some with a parameter
byte. Every value here is taken from the chip's datasheet tables and pinned by exact-byte
tests; the device layer (:mod:`drivers.identity.ds2482`) adds the bus and the timeouts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from drivers.errors import IdentityError

# -- DS2482 commands (datasheet "Function Commands") ------------------------------------------
CMD_DEVICE_RESET = 0xF0
"""Reset the bridge: ends any 1-Wire activity, read pointer -> status, channel 0 selected."""
CMD_SET_READ_POINTER = 0xE1
"""Followed by a pointer code: which register the next I2C read returns."""
CMD_WRITE_CONFIG = 0xD2
"""Followed by the configuration byte (upper nibble = ones' complement of the lower)."""
CMD_CHANNEL_SELECT = 0xC3
"""DS2482-800 only: followed by a channel code; the read pointer then names the channel
selection register, whose read-back value (different from the code!) confirms the switch."""
CMD_1WIRE_RESET = 0xB4
"""Reset pulse on the selected channel; status PPD/SD tell presence and short."""
CMD_1WIRE_SINGLE_BIT = 0x87
CMD_1WIRE_WRITE_BYTE = 0xA5
"""Followed by the byte to send on the 1-Wire line."""
CMD_1WIRE_READ_BYTE = 0x96
"""Read one byte from the line into the read data register (then point there to fetch it)."""
CMD_1WIRE_TRIPLET = 0x78

# -- read pointer codes ----------------------------------------------------------------------
PTR_STATUS = 0xF0
PTR_READ_DATA = 0xE1
PTR_CHANNEL = 0xD2
PTR_CONFIG = 0xC3

# -- status register bits --------------------------------------------------------------------
STATUS_1WB = 0x01
"""1-Wire busy: a line command is still running; poll until clear."""
STATUS_PPD = 0x02
"""Presence-pulse detect: some device answered the last 1-Wire reset."""
STATUS_SD = 0x04
"""Short detected on the last 1-Wire reset (line held low: a fob bridging the contacts
badly, water, a crushed receptor)."""
STATUS_LL = 0x08
"""Logic level of the line, sampled without a time slot."""
STATUS_RST = 0x10
"""The bridge has been reset (power-up or Device Reset) and not configured since."""
STATUS_SBR = 0x20
STATUS_TSB = 0x40
STATUS_DIR = 0x80

# -- configuration bits (lower nibble) -------------------------------------------------------
CONFIG_APU = 0x01
"""Active pull-up: recommended for every line longer than a few cm."""
CONFIG_SPU = 0x04
"""Strong pull-up (parasite-powered devices doing EEPROM writes); never needed for ROMs."""
CONFIG_1WS = 0x08
"""Overdrive speed; fobs are read at standard speed."""

# -- channel select codes and read-back values (DS2482-800 datasheet table) ------------------
CHANNEL_CODES: tuple[int, ...] = (0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5, 0x96, 0x87)
CHANNEL_READBACK: tuple[int, ...] = (0xB8, 0xB1, 0xAA, 0xA3, 0x9C, 0x95, 0x8E, 0x87)
CHANNELS_PER_CHIP = 8
FIRST_ADDRESS = 0x18
"""AD2..AD0 all low; the eight possible bridges are 0x18..0x1F."""
LAST_ADDRESS = 0x1F
TCA9548A_ADDRESSES = range(0x70, 0x78)
"""A TCA9548A multiplexer answers at 0x70..0x77 (A2..A0); one byte selects its channels."""

# -- 1-Wire ROM commands ---------------------------------------------------------------------
ROM_READ = 0x33
"""Read ROM: the one device on the line sends its 8 ROM bytes. A receptor holds one fob,
so no search is needed; two fobs on one line answer as a wired AND and fail the CRC."""
ROM_SIZE = 8
FAMILY_DS1990A = 0x01
"""DS1990A iButton and DS2401 silicon serial number share family code 0x01."""


def crc8(data: bytes) -> int:
    """Dallas/Maxim CRC-8 of ``data`` (reflected polynomial 0x8C, initial value 0)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


def config_byte(*, apu: bool = True, spu: bool = False, overdrive: bool = False) -> int:
    """The byte written after 0xD2: the options in the lower nibble, their complement above."""
    low = (CONFIG_APU if apu else 0) | (CONFIG_SPU if spu else 0) | (CONFIG_1WS if overdrive else 0)
    return ((~low & 0x0F) << 4) | low


def channel_code(channel: int) -> int:
    """The parameter byte of Channel Select for ``channel`` 0..7."""
    _check_channel(channel)
    return CHANNEL_CODES[channel]


def channel_readback(channel: int) -> int:
    """What the channel selection register reads after a successful select of ``channel``."""
    _check_channel(channel)
    return CHANNEL_READBACK[channel]


def channel_from_readback(value: int) -> int | None:
    """The channel a read-back value names, or ``None`` for a value the table does not have."""
    try:
        return CHANNEL_READBACK.index(value)
    except ValueError:
        return None


def _check_channel(channel: int) -> None:
    if not 0 <= channel < CHANNELS_PER_CHIP:
        raise ValueError(f"DS2482-800 channel must be 0..7, got {channel}")


def check_address(address: int) -> int:
    """Refuse an I2C address no DS2482-800 can answer at."""
    if not FIRST_ADDRESS <= address <= LAST_ADDRESS:
        raise ValueError(f"DS2482-800 address must be 0x18..0x1F, got 0x{address:02X}")
    return address


def describe_status(status: int) -> str:
    """The status bits by name, for log lines and error messages."""
    names = [(STATUS_1WB, "1WB"), (STATUS_PPD, "PPD"), (STATUS_SD, "SD"), (STATUS_LL, "LL"),
             (STATUS_RST, "RST"), (STATUS_SBR, "SBR"), (STATUS_TSB, "TSB"), (STATUS_DIR, "DIR")]
    return "|".join(name for bit, name in names if status & bit) or "0"


@dataclass(frozen=True, slots=True, order=True)
class FobId:
    """One fob's 64-bit ROM ID, CRC-checked when built."""

    rom: bytes

    def __post_init__(self) -> None:
        if len(self.rom) != ROM_SIZE:
            raise IdentityError(f"a 1-Wire ROM is 8 bytes, got {len(self.rom)}: {self.rom.hex()}")
        if self.rom == b"\x00" * ROM_SIZE:
            # CRC-8 of zeros is zero: the all-zero ROM passes the check, but it is what a
            # line held low (a short) reads, never a real chip.
            raise IdentityError("ROM reads all zeros: the line is held low, not a fob")
        if crc8(self.rom[:7]) != self.rom[7]:
            raise IdentityError(
                f"ROM {self.rom.hex().upper()} fails its CRC-8 "
                f"(expected {crc8(self.rom[:7]):02X}, got {self.rom[7]:02X})"
            )

    @property
    def family(self) -> int:
        return self.rom[0]

    @property
    def serial(self) -> int:
        """The 48-bit serial number (sent LSB first)."""
        return int.from_bytes(self.rom[1:7], "little")

    @property
    def crc(self) -> int:
        return self.rom[7]

    @property
    def hex(self) -> str:
        """16 upper-case hex digits in wire order: what ``SlotState.fob`` carries."""
        return self.rom.hex().upper()

    def __str__(self) -> str:
        return self.hex

    @classmethod
    def build(cls, family: int, serial: int) -> FobId:
        """A ROM from family code and 48-bit serial, with its CRC computed."""
        if not 0 <= family <= 0xFF:
            raise ValueError(f"family code is one byte, got {family}")
        if not 0 <= serial < 1 << 48:
            raise ValueError(f"serial is 48 bits, got {serial}")
        body = bytes((family,)) + serial.to_bytes(6, "little")
        return cls(body + bytes((crc8(body),)))

    @classmethod
    def parse(cls, text: str) -> FobId:
        """Read the 16-hex-digit form (spaces, ``-`` and ``:`` allowed); CRC checked."""
        digits = "".join(ch for ch in text.strip() if ch not in " -:")
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            raise IdentityError(f"not a 1-Wire ROM (hex expected): {text!r}") from None
        return cls(raw)

    @classmethod
    def derived(cls, label: str, *, family: int = FAMILY_DS1990A) -> FobId:
        """A stable ROM for a printed fob label: for simulators and demo data only.

        Real fobs are paired by reading their chip; a simulated key needs *some* ROM that is
        the same after every restart, so it is derived from the label (SHA-256, 48 bits).
        """
        serial = int.from_bytes(hashlib.sha256(label.encode()).digest()[:6], "little")
        return cls.build(family, serial or 1)


def is_rom_text(text: str) -> bool:
    """True if ``text`` is the hex form of a ROM with a good CRC (not just any label)."""
    try:
        FobId.parse(text)
    except IdentityError:
        return False
    return True


def parse_rom(raw: bytes) -> FobId | None:
    """The 8 bytes of a Read ROM, or ``None`` if they are all ones (nobody drove the line).

    All ones is what an empty receptor reads when a presence pulse was seen but no device
    answered the ROM command (noise on the reset); anything else must pass the CRC, or it
    is an :class:`IdentityError`.
    """
    if raw == b"\xff" * ROM_SIZE:
        return None
    return FobId(bytes(raw))
