"""Exact bytes of the ISO/IEC 14443-3 type A and MIFARE Classic codec."""

from __future__ import annotations

import pytest

from drivers.rfid.iso14443a import (
    anticollision_command,
    bcc,
    cascade_levels,
    check_crc,
    crc_a,
    crc_a_update,
    crypto1_uid,
    is_sector_trailer,
    mifare_auth_command,
    mifare_read_command,
    parse_anticollision,
    sector_of,
    select_command,
    uid_part,
    with_crc,
)


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        ("5000", "57CD"),  # HLTA, ISO/IEC 14443-3
        ("3000", "02A8"),  # MIFARE READ block 0
        ("3004", "26EE"),  # MIFARE READ block 4
        ("6000", "F57B"),  # AUTH key A block 0
        ("", "6363"),  # nothing fed: the preset itself
        ("08", "B6DD"),  # SAK of a MIFARE Classic 1K
    ],
)
def test_crc_a_known_vectors(data: str, crc: str) -> None:
    assert crc_a(bytes.fromhex(data)) == bytes.fromhex(crc)


def test_crc_a_is_incremental_and_checkable() -> None:
    frame = bytes.fromhex("9370881122334C")
    whole = crc_a(frame)
    running = crc_a_update(crc_a_update(0x6363, frame[:3]), frame[3:])
    assert bytes((running & 0xFF, running >> 8)) == whole
    assert check_crc(with_crc(frame))
    assert not check_crc(frame + bytes((whole[0] ^ 1, whole[1])))
    assert not check_crc(b"\x01")


def test_bcc_is_xor_of_uid_bytes() -> None:
    assert bcc(bytes.fromhex("12345678")) == 0x08
    assert bcc(bytes.fromhex("88040A0B")) == 0x88 ^ 0x04 ^ 0x0A ^ 0x0B
    assert bcc(b"") == 0


@pytest.mark.parametrize(
    ("uid", "levels"),
    [
        ("DEADBEEF", ["DEADBEEF"]),
        ("04A1B2C3D4E5F6", ["8804A1B2", "C3D4E5F6"]),
        ("0102030405060708090A", ["88010203", "88040506", "0708090A"]),
    ],
)
def test_cascade_levels(uid: str, levels: list[str]) -> None:
    assert cascade_levels(bytes.fromhex(uid)) == [bytes.fromhex(x) for x in levels]


def test_cascade_levels_rejects_odd_sizes() -> None:
    with pytest.raises(ValueError, match="4, 7 or 10"):
        cascade_levels(bytes(5))


def test_anticollision_and_select_frames() -> None:
    assert anticollision_command(1) == bytes.fromhex("9320")
    assert anticollision_command(2) == bytes.fromhex("9520")
    assert anticollision_command(3) == bytes.fromhex("9720")
    assert select_command(1, bytes.fromhex("12345678")) == bytes.fromhex("93701234567808")
    assert select_command(2, bytes.fromhex("C3D4E5F6")) == bytes.fromhex("9570C3D4E5F604")
    with pytest.raises(ValueError):
        select_command(1, bytes(3))


def test_parse_anticollision_checks_bcc_and_length() -> None:
    assert parse_anticollision(bytes.fromhex("1234567808")) == bytes.fromhex("12345678")
    with pytest.raises(ValueError, match="BCC"):
        parse_anticollision(bytes.fromhex("1234567809"))
    with pytest.raises(ValueError, match="5"):
        parse_anticollision(bytes.fromhex("12345678"))


def test_uid_part_drops_cascade_tag_only_when_more_follows() -> None:
    assert uid_part(bytes.fromhex("8804A1B2"), 0x04) == bytes.fromhex("04A1B2")
    assert uid_part(bytes.fromhex("C3D4E5F6"), 0x08) == bytes.fromhex("C3D4E5F6")
    with pytest.raises(ValueError, match="cascade tag"):
        uid_part(bytes.fromhex("01020304"), 0x04)


def test_mifare_commands() -> None:
    assert mifare_auth_command("A", 4) == bytes.fromhex("6004")
    assert mifare_auth_command("B", 7) == bytes.fromhex("6107")
    assert mifare_read_command(8) == bytes.fromhex("3008")
    assert crypto1_uid(bytes.fromhex("04A1B2C3D4E5F6")) == bytes.fromhex("C3D4E5F6")
    assert crypto1_uid(bytes.fromhex("DEADBEEF")) == bytes.fromhex("DEADBEEF")
    assert [sector_of(b) for b in (0, 3, 4, 63)] == [0, 0, 1, 15]
    assert [is_sector_trailer(b) for b in (3, 4, 7, 62)] == [True, False, True, False]
    with pytest.raises(ValueError):
        mifare_auth_command("C", 4)
