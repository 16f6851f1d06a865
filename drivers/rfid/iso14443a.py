"""ISO/IEC 14443-3 type A and MIFARE Classic frame codec: pure functions, no I/O.

The MFRC522 driver builds every card command here and checks every card answer here, and
the simulated tags decode the same frames, so each byte on the air has exactly one
definition. The driver computes CRC_A on the chip (CalcCRC); :func:`crc_a` is the software
reference that the simulator uses and the tests pin to known vectors.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce

# -- short frames (7 bits) -----------------------------------------------------------------
REQA = 0x26
"""Request type A: only tags in IDLE answer."""
WUPA = 0x52
"""Wake-up type A: tags in IDLE *and* HALT answer, so a card we halted is still found."""
SHORT_FRAME_BITS = 7

# -- cascade levels ------------------------------------------------------------------------
SEL_CL1 = 0x93
SEL_CL2 = 0x95
SEL_CL3 = 0x97
SEL_CODES = (SEL_CL1, SEL_CL2, SEL_CL3)
CASCADE_TAG = 0x88
"""First byte of a cascade level that carries only part of a longer UID."""
NVB_ANTICOLLISION = 0x20
"""Number of valid bits: SEL + NVB only, every tag answers its whole UID CLn + BCC."""
NVB_SELECT = 0x70
"""Number of valid bits: the whole UID CLn + BCC follows, one tag is selected."""
SAK_CASCADE_BIT = 0x04
"""SAK bit 3: the UID is not complete, go to the next cascade level."""
UID_SIZES = (4, 7, 10)

# -- other commands ------------------------------------------------------------------------
HLTA = bytes((0x50, 0x00))
MIFARE_AUTH_KEY_A = 0x60
MIFARE_AUTH_KEY_B = 0x61
MIFARE_READ = 0x30
MIFARE_ACK = 0x0A
"""4-bit acknowledge of MIFARE Classic (and of the Gen1a backdoor)."""
GEN1A_UNLOCK_1 = 0x40
"""Gen1a ("Chinese magic") backdoor, first part, sent as a 7-bit frame after HLTA."""
GEN1A_UNLOCK_2 = 0x43
"""Gen1a backdoor, second part, a full byte."""
MIFARE_BLOCK_SIZE = 16
MIFARE_KEY_SIZE = 6

CRC_A_PRESET = 0x6363


def crc_a_update(crc: int, data: Iterable[int]) -> int:
    """Feed ``data`` into a running CRC_A register (ISO/IEC 14443-3 annex B).

    CRC_A is the CCITT polynomial x^16 + x^12 + x^5 + 1 processed LSB first (reflected
    0x8408), preset 0x6363, no final inversion. Kept incremental because the chip's
    CalcCRC keeps absorbing bytes written to the FIFO while the command runs.
    """
    for byte in data:
        crc ^= byte & 0xFF
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc & 0xFFFF


def crc_a(data: bytes | bytearray | Iterable[int], preset: int = CRC_A_PRESET) -> bytes:
    """CRC_A of ``data`` as the two bytes sent on air (least significant byte first)."""
    crc = crc_a_update(preset, data)
    return bytes((crc & 0xFF, crc >> 8))


def with_crc(data: bytes) -> bytes:
    """``data`` followed by its CRC_A."""
    return bytes(data) + crc_a(data)


def check_crc(frame: bytes) -> bool:
    """True when the last two bytes of ``frame`` are the CRC_A of the rest."""
    return len(frame) >= 3 and crc_a(frame[:-2]) == frame[-2:]


def bcc(data: bytes | bytearray | Iterable[int]) -> int:
    """Block check character: XOR of the four UID CLn bytes."""
    return reduce(lambda a, b: a ^ b, data, 0)


def cascade_levels(uid: bytes) -> list[bytes]:
    """Split a 4-, 7- or 10-byte UID into the 4-byte UID CLn of each cascade level.

    Every level but the last starts with the cascade tag 0x88 and carries three UID bytes,
    which is why a 7-byte UID needs two levels and a 10-byte UID three.
    """
    if len(uid) not in UID_SIZES:
        raise ValueError(f"a type A UID has 4, 7 or 10 bytes, not {len(uid)}")
    levels: list[bytes] = []
    rest = bytes(uid)
    while len(rest) > 4:
        levels.append(bytes((CASCADE_TAG,)) + rest[:3])
        rest = rest[3:]
    levels.append(rest)
    return levels


def anticollision_command(level: int) -> bytes:
    """SEL + NVB=0x20 for cascade ``level`` (1-3): ask for the whole UID CLn."""
    return bytes((SEL_CODES[level - 1], NVB_ANTICOLLISION))


def select_command(level: int, uid_cln: bytes) -> bytes:
    """SELECT for cascade ``level`` without its CRC (the caller adds it, e.g. via the chip)."""
    if len(uid_cln) != 4:
        raise ValueError("a cascade level carries exactly 4 UID bytes")
    return bytes((SEL_CODES[level - 1], NVB_SELECT)) + bytes(uid_cln) + bytes((bcc(uid_cln),))


def parse_anticollision(answer: bytes) -> bytes:
    """Check a 5-byte anticollision answer (UID CLn + BCC) and return the UID CLn.

    Raises ``ValueError`` on a wrong length or a BCC mismatch: that is a corrupted frame or
    two cards answering at once, and the UID must not be trusted.
    """
    if len(answer) != 5:
        raise ValueError(f"anticollision answer has {len(answer)} bytes, expected 5")
    if bcc(answer[:4]) != answer[4]:
        raise ValueError(f"BCC mismatch: {answer[:4].hex()} xor is {bcc(answer[:4]):02x}, "
                         f"card sent {answer[4]:02x}")
    return bytes(answer[:4])


def uid_part(uid_cln: bytes, sak: int) -> bytes:
    """The UID bytes a cascade level contributes (drops the cascade tag when more follow)."""
    if sak & SAK_CASCADE_BIT:
        if uid_cln[0] != CASCADE_TAG:
            raise ValueError("SAK says the UID continues but the level has no cascade tag")
        return bytes(uid_cln[1:])
    return bytes(uid_cln)


def mifare_auth_command(key_type: str, block: int) -> bytes:
    """The first bytes of MIFARE Classic authentication (0x60/0x61 + block)."""
    if key_type not in ("A", "B"):
        raise ValueError("key_type must be 'A' or 'B'")
    return bytes((MIFARE_AUTH_KEY_A if key_type == "A" else MIFARE_AUTH_KEY_B, block))


def mifare_read_command(block: int) -> bytes:
    """READ of one 16-byte block, without CRC."""
    if not 0 <= block <= 0xFF:
        raise ValueError(f"block {block} out of range")
    return bytes((MIFARE_READ, block))


def crypto1_uid(uid: bytes) -> bytes:
    """The 4 UID bytes MIFARE Classic mixes into Crypto1 (the last cascade level's bytes).

    NXP AN10927: a 7-byte UID card authenticates with UID3..UID6, a 4-byte one with its UID.
    """
    return bytes(uid[-4:])


def sector_of(block: int) -> int:
    """MIFARE Classic 1K sector of ``block`` (4 blocks per sector)."""
    return block // 4


def is_sector_trailer(block: int) -> bool:
    """True for the last block of a 1K sector, which holds the keys and access bits."""
    return block % 4 == 3
