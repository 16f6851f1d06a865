"""Simulated ISO/IEC 14443-A cards: what a badge answers to each frame it hears.

A tag is handed one frame at a time by a reader simulator (``simulators.mfrc522_chip``)
as bytes plus the number of valid bits in the last byte, and answers with a
:class:`Response` or stays silent (``None``). The state machine follows ISO/IEC 14443-3:
IDLE -> READY (REQA/WUPA) -> cascade levels -> ACTIVE (SELECT) -> HALT (HLTA); a halted
tag answers only WUPA, and any unexpected frame drops a tag in READY or ACTIVE back to
IDLE (or HALT, if it had been halted). Leaving the field resets it (:meth:`power_up`).

MIFARE Classic authentication is modelled at the level of its outcome, not its cipher:
the reader chip passes key type, block, key and UID to :meth:`Iso14443aTag.authenticate`;
the right key switches the tag to AUTHENTICATED (the chip then sets Status2Reg
MFCrypto1On) and later READs in that sector return plaintext. No Crypto1 stream cipher,
nonces or parity encryption are simulated, and access bits are not enforced except that
key A never reads back. Bit-oriented anticollision (a partial NVB) is not modelled: the
driver never sends it, because it treats any collision as "present one card at a time".

Frames carry their CRC_A as on air; the tag checks it with the driver's codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto
from typing import Protocol, runtime_checkable

from drivers.rfid.iso14443a import (
    GEN1A_UNLOCK_1,
    GEN1A_UNLOCK_2,
    HLTA,
    MIFARE_ACK,
    MIFARE_AUTH_KEY_A,
    MIFARE_AUTH_KEY_B,
    MIFARE_BLOCK_SIZE,
    MIFARE_KEY_SIZE,
    MIFARE_READ,
    NVB_ANTICOLLISION,
    NVB_SELECT,
    REQA,
    SAK_CASCADE_BIT,
    SEL_CODES,
    SHORT_FRAME_BITS,
    WUPA,
    bcc,
    cascade_levels,
    check_crc,
    crypto1_uid,
    is_sector_trailer,
    sector_of,
    with_crc,
)

MIFARE_NAK = 0x04
"""4-bit NAK: invalid operation (e.g. READ without authentication)."""
DEFAULT_KEY = bytes.fromhex("FFFFFFFFFFFF")
DEFAULT_ACCESS = bytes.fromhex("FF078069")
"""Transport configuration access bits + general purpose byte of a fresh card."""


@dataclass(frozen=True, slots=True)
class Response:
    """A tag's answer: bytes plus valid bits in the last byte (0 = all 8)."""

    data: bytes
    last_bits: int = 0


@dataclass(frozen=True, slots=True)
class Collision(Response):
    """Several tags answered different bits; ``bit`` is the first colliding bit (1-based)."""

    bit: int = 1


@runtime_checkable
class RfTag(Protocol):
    """What a reader simulator needs from whatever is held to its antenna."""

    def power_up(self) -> None:
        """The tag entered the field (or the field came back): reset to IDLE."""
        ...

    def handle(self, frame: bytes, last_bits: int = 0) -> Response | None:
        """Answer one frame, or return ``None`` to stay silent."""
        ...

    def authenticate(self, key_type: int, block: int, key: bytes, uid4: bytes) -> bool:
        """Three-pass MIFARE authentication outcome (see the module docstring)."""
        ...


class TagState(Enum):
    IDLE = auto()
    READY = auto()
    ACTIVE = auto()
    HALT = auto()
    AUTHENTICATED = auto()
    MAGIC_WAIT = auto()
    MAGIC = auto()


def default_atqa(uid: bytes) -> bytes:
    """ATQA of a MIFARE Classic with this UID size (bits 8..7 code the size), LSB first."""
    return bytes(({4: 0x04, 7: 0x44, 10: 0x84}[len(uid)], 0x00))


class Iso14443aTag:
    """A type A tag that does activation and HLTA only (e.g. a bare UID fob)."""

    def __init__(self, uid: bytes, *, atqa: bytes | None = None, sak: int = 0x08) -> None:
        self.uid = bytes(uid)
        self._levels = cascade_levels(self.uid)
        self.atqa = bytes(atqa) if atqa is not None else default_atqa(self.uid)
        if len(self.atqa) != 2:
            raise ValueError("ATQA has 2 bytes")
        self.sak = sak & ~SAK_CASCADE_BIT & 0xFF
        self.state = TagState.IDLE
        self._level = 0
        self._halted = False
        self._auth_sector: int | None = None
        self.frames: list[tuple[bytes, int]] = []
        """Every frame heard while powered, for tests that check what went on air."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(uid={self.uid.hex().upper()}, state={self.state.name})"

    # -- field -----------------------------------------------------------------------------
    def power_up(self) -> None:
        self.state = TagState.IDLE
        self._level = 0
        self._halted = False
        self._auth_sector = None

    # -- frames ----------------------------------------------------------------------------
    def handle(self, frame: bytes, last_bits: int = 0) -> Response | None:
        self.frames.append((bytes(frame), last_bits))
        if len(frame) == 1 and last_bits == SHORT_FRAME_BITS:
            return self._short_frame(frame[0])
        if self.state is TagState.READY:
            return self._anticollision(frame, last_bits)
        if self.state in (TagState.ACTIVE, TagState.AUTHENTICATED, TagState.MAGIC):
            if last_bits == 0 and frame == with_crc(HLTA):
                self._halt()
                return None
            answer = self._active_command(frame, last_bits)
            if answer is None:
                self._fall_back()
            return answer
        if self.state is TagState.MAGIC_WAIT:
            return self._magic_second(frame, last_bits)
        return None  # IDLE / HALT: only short frames count

    def authenticate(self, key_type: int, block: int, key: bytes, uid4: bytes) -> bool:
        """A tag without MIFARE Classic memory never authenticates."""
        self._fall_back()
        return False

    # -- for subclasses --------------------------------------------------------------------
    def _active_command(self, frame: bytes, last_bits: int) -> Response | None:
        """Commands after SELECT; ``None`` means "not understood" (tag leaves ACTIVE)."""
        return None

    def _magic_first(self) -> Response | None:
        return None

    def _magic_second(self, frame: bytes, last_bits: int) -> Response | None:
        self._fall_back()
        return None

    # -- state machine ---------------------------------------------------------------------
    def _short_frame(self, code: int) -> Response | None:
        if code == WUPA or (code == REQA and self.state is TagState.IDLE):
            if self.state in (TagState.IDLE, TagState.HALT):
                self.state = TagState.READY
                self._level = 0
                self._auth_sector = None
                return Response(self.atqa)
            self._fall_back()  # REQA/WUPA is not valid in READY or ACTIVE
            return None
        if code == GEN1A_UNLOCK_1 and self.state in (TagState.IDLE, TagState.HALT):
            return self._magic_first()
        if self.state not in (TagState.IDLE, TagState.HALT):
            self._fall_back()
        return None

    def _anticollision(self, frame: bytes, last_bits: int) -> Response | None:
        if last_bits != 0 or len(frame) < 2 or frame[0] != SEL_CODES[self._level]:
            self._fall_back()
            return None
        cln = self._levels[self._level]
        if frame[1] == NVB_ANTICOLLISION and len(frame) == 2:
            return Response(cln + bytes((bcc(cln),)))
        if frame[1] == NVB_SELECT and len(frame) == 9 and check_crc(frame):
            if frame[2:7] != cln + bytes((bcc(cln),)):
                self._fall_back()  # another card was selected
                return None
            if self._level + 1 < len(self._levels):
                self._level += 1
                return Response(with_crc(bytes((SAK_CASCADE_BIT,))))
            self.state = TagState.ACTIVE
            return Response(with_crc(bytes((self.sak,))))
        self._fall_back()
        return None

    def _halt(self) -> None:
        self.state = TagState.HALT
        self._halted = True
        self._auth_sector = None

    def _fall_back(self) -> None:
        """ISO/IEC 14443-3: an unexpected frame returns the tag to IDLE, or HALT if halted."""
        self.state = TagState.HALT if self._halted else TagState.IDLE
        self._level = 0
        self._auth_sector = None


class MifareClassic1K(Iso14443aTag):
    """MIFARE Classic 1K: 16 sectors x 4 blocks of 16 bytes, keys in each sector trailer."""

    BLOCKS = 64

    def __init__(
        self,
        uid: bytes,
        *,
        atqa: bytes | None = None,
        sak: int = 0x08,
        key_a: bytes = DEFAULT_KEY,
        key_b: bytes = DEFAULT_KEY,
        blocks: dict[int, bytes] | None = None,
    ) -> None:
        super().__init__(uid, atqa=atqa, sak=sak)
        self.memory = [bytearray(MIFARE_BLOCK_SIZE) for _ in range(self.BLOCKS)]
        for sector in range(self.BLOCKS // 4):
            self.set_sector_keys(sector, key_a=key_a, key_b=key_b)
        self._write_manufacturer_block()
        for block, data in (blocks or {}).items():
            self.write_block(block, data)

    def _write_manufacturer_block(self) -> None:
        block0 = bytearray(MIFARE_BLOCK_SIZE)
        if len(self.uid) == 4:
            block0[0:5] = self.uid + bytes((bcc(self.uid),))
            block0[5] = self.sak
            block0[6:8] = self.atqa
        else:
            block0[0 : len(self.uid)] = self.uid
            block0[len(self.uid)] = self.sak
            block0[len(self.uid) + 1 : len(self.uid) + 3] = self.atqa
        self.memory[0] = block0

    # -- personalisation (what an enrolment station would write) -----------------------
    def write_block(self, block: int, data: bytes) -> None:
        if len(data) != MIFARE_BLOCK_SIZE:
            raise ValueError("a MIFARE Classic block has 16 bytes")
        self.memory[block][:] = data

    def set_sector_keys(self, sector: int, *, key_a: bytes, key_b: bytes,
                        access: bytes = DEFAULT_ACCESS) -> None:
        if len(key_a) != MIFARE_KEY_SIZE or len(key_b) != MIFARE_KEY_SIZE:
            raise ValueError("MIFARE keys have 6 bytes")
        self.memory[sector * 4 + 3][:] = key_a + access + key_b

    def key(self, sector: int, key_type: int) -> bytes:
        trailer = self.memory[sector * 4 + 3]
        return bytes(trailer[0:6] if key_type == MIFARE_AUTH_KEY_A else trailer[10:16])

    # -- protocol ---------------------------------------------------------------------------
    def authenticate(self, key_type: int, block: int, key: bytes, uid4: bytes) -> bool:
        if (self.state not in (TagState.ACTIVE, TagState.AUTHENTICATED)
                or key_type not in (MIFARE_AUTH_KEY_A, MIFARE_AUTH_KEY_B)
                or not 0 <= block < self.BLOCKS):
            self._fall_back()
            return False
        if uid4 != crypto1_uid(self.uid) or bytes(key) != self.key(sector_of(block), key_type):
            self._fall_back()  # the card drops out after a failed authentication
            return False
        self.state = TagState.AUTHENTICATED
        self._auth_sector = sector_of(block)
        return True

    def _read_block(self, block: int) -> bytes:
        data = bytearray(self.memory[block])
        if is_sector_trailer(block):
            data[0:6] = bytes(6)  # key A is never readable
        return bytes(data)

    def _active_command(self, frame: bytes, last_bits: int) -> Response | None:
        if last_bits or len(frame) != 4 or not check_crc(frame):
            return None
        if frame[0] == MIFARE_READ and frame[1] < self.BLOCKS:
            block = frame[1]
            allowed = self.state is TagState.MAGIC or (
                self.state is TagState.AUTHENTICATED and self._auth_sector == sector_of(block))
            if allowed:
                return Response(with_crc(self._read_block(block)))
            self._fall_back()
            return Response(bytes((MIFARE_NAK,)), 4)
        return None


class Gen1aMifareClassic(MifareClassic1K):
    """A "Chinese magic" Gen1a clone: answers 0x40 (7 bits) / 0x43 with 4-bit ACKs and
    then reads or writes any block without authentication. Such cards carry copied UIDs,
    which is why the driver reports them."""

    def _magic_first(self) -> Response | None:
        self.state = TagState.MAGIC_WAIT
        return Response(bytes((MIFARE_ACK,)), 4)

    def _magic_second(self, frame: bytes, last_bits: int) -> Response | None:
        if last_bits == 0 and frame == bytes((GEN1A_UNLOCK_2,)):
            self.state = TagState.MAGIC
            return Response(bytes((MIFARE_ACK,)), 4)
        self._fall_back()
        return None


class TagStack:
    """Several tags on the antenna at once: each hears every frame, answers superpose.

    Identical answers are indistinguishable from one tag; different ones are a collision
    whose first differing bit the reader chip reports.
    """

    def __init__(self, *tags: RfTag) -> None:
        self.tags = list(tags)

    def power_up(self) -> None:
        for tag in self.tags:
            tag.power_up()

    def handle(self, frame: bytes, last_bits: int = 0) -> Response | None:
        answers = [a for a in (t.handle(frame, last_bits) for t in self.tags) if a is not None]
        if not answers:
            return None
        first = answers[0]
        for other in answers[1:]:
            if other != first:
                return Collision(first.data, first.last_bits, bit=_first_diff_bit(first, other))
        return first

    def authenticate(self, key_type: int, block: int, key: bytes, uid4: bytes) -> bool:
        results = [t.authenticate(key_type, block, key, uid4) for t in self.tags]
        return any(results)


def _first_diff_bit(a: Response, b: Response) -> int:
    """1-based position (LSB of byte 0 first, as sent on air) of the first differing bit."""
    for index in range(max(len(a.data), len(b.data))):
        x = a.data[index] if index < len(a.data) else 0
        y = b.data[index] if index < len(b.data) else 0
        if x != y:
            diff = x ^ y
            return index * 8 + (diff & -diff).bit_length()
    return 1


def card_from_uid_hex(uid_hex: str, *, magic: bool = False,
                      blocks: dict[int, bytes] | None = None,
                      key_a: bytes = DEFAULT_KEY, key_b: bytes = DEFAULT_KEY) -> MifareClassic1K:
    """A MIFARE Classic 1K (or Gen1a clone) badge with this UID, e.g. for a simulator CLI."""
    uid = bytes.fromhex(uid_hex.replace(":", "").replace(" ", ""))
    cls = Gen1aMifareClassic if magic else MifareClassic1K
    return cls(uid, blocks=blocks, key_a=key_a, key_b=key_b)


__all__ = [
    "DEFAULT_KEY",
    "Collision",
    "Gen1aMifareClassic",
    "Iso14443aTag",
    "MifareClassic1K",
    "Response",
    "RfTag",
    "TagStack",
    "TagState",
    "card_from_uid_hex",
]
