"""The nfcpy reader against a card that nfcpy emulates in a second process over UDP."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.errors import ReaderError
from drivers.rfid import CardRead, CardReader
from drivers.rfid.nfcpy_reader import NfcpyConfig, NfcpyReader

ROOT = Path(__file__).resolve().parents[2]
IDM_A = bytes.fromhex("03FE0102030405AB")
IDM_B = bytes.fromhex("03FE0102030405CD")

StartCard = Callable[[bytes], subprocess.Popen[str]]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_udp_port()


@pytest.fixture
def start_card(port: int) -> Iterator[StartCard]:
    """Run simulators/nfcpy_tag.py as a separate process: the card on the reader."""
    processes: list[subprocess.Popen[str]] = []

    def start(idm: bytes) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulators.nfcpy_tag", "--device",
             f"udp:127.0.0.1:{port}", "--idm", idm.hex()],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        processes.append(process)
        assert process.stdout is not None
        assert "listening" in process.stdout.readline()
        return process

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def test_reads_a_card_emulated_by_another_process(
        port: int, start_card: StartCard) -> None:
    card = start_card(IDM_A)
    reader = NfcpyReader(NfcpyConfig(path=f"udp:127.0.0.1:{port}", reader_id="desk",
                                     targets=("212F",), poll_interval_s=0.05))
    try:
        assert isinstance(reader, CardReader)
        read = reader.wait_for_card(8.0)
        assert read == CardRead(uid=IDM_A, reader_id="desk", credential=None, magic=False)
        assert read.uid_hex == "03FE0102030405AB"
        assert reader.wait_for_card(0.8) is None  # the card stays in the field: one tap
        assert reader.holding
        card.terminate()  # take the card away ...
        card.wait(10)
        start_card(IDM_B)  # ... and tap another one
        read = reader.wait_for_card(8.0)
        assert read is not None and read.uid == IDM_B
    finally:
        reader.close()
    with pytest.raises(ReaderError, match="closed"):
        reader.wait_for_card(0.1)


def test_missing_device_is_a_reader_error() -> None:
    with pytest.raises(ReaderError, match="no NFC reader"):
        NfcpyReader(NfcpyConfig(path="tty:doesnotexist:pn532"))


@pytest.mark.parametrize(
    "bad",
    [
        {"path": ""},
        {"targets": ()},
        {"targets": ("106X",)},
        {"poll_interval_s": 0.0},
        {"hold_off_polls": 0},
        {"max_read_age_s": 60.0},
    ],
)
def test_config_bounds(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        NfcpyConfig(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("uid_hex", ["5A3C9E01", "045A3C9E01B280"], ids=["4-byte", "7-byte-nxp"])
def test_reads_an_iso14443a_badge_emulated_by_another_process(port: int, uid_hex: str) -> None:
    """Issue 13: most building badges are ISO 14443-A (MIFARE, NTAG), not FeliCa."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.nfcpy_tag", "--device", f"udp:127.0.0.1:{port}",
         "--uid", uid_hex],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    reader = None
    try:
        assert process.stdout is not None
        assert "14443-A" in process.stdout.readline()
        reader = NfcpyReader(NfcpyConfig(path=f"udp:127.0.0.1:{port}", reader_id="door",
                                         targets=("106A",), poll_interval_s=0.05))
        read = reader.wait_for_card(8.0)
        assert read is not None and read.uid_hex == uid_hex
        assert reader.wait_for_card(0.8) is None  # held still: one tap, not a stream
    finally:
        if reader is not None:
            reader.close()
        process.terminate()
        process.wait(10)


def test_the_badge_simulator_refuses_bad_uids() -> None:
    from simulators.nfcpy_tag import TypeACard, cascade, parse_args

    with pytest.raises(SystemExit):
        parse_args(["--uid", "88112233"])  # 88 is the cascade tag
    with pytest.raises(SystemExit):
        parse_args(["--uid", "1122"])
    assert cascade(bytes.fromhex("045A3C9E01B280")) == [
        bytes.fromhex("88045A3C") + bytes((0x88 ^ 0x04 ^ 0x5A ^ 0x3C,)),
        bytes.fromhex("9E01B280") + bytes((0x9E ^ 0x01 ^ 0xB2 ^ 0x80,)),
    ]
    card = TypeACard(bytes.fromhex("5A3C9E01"), atqa=b"\x04\x00", sak=0x08)
    assert card.answer(b"\x26") == b"\x04\x00"
    block = card.answer(b"\x30\x00")  # READ block 0: the UID first
    assert block is not None and block[:4] == bytes.fromhex("5A3C9E01")
    assert card.answer(b"\x60") is None  # GET_VERSION: a Classic card stays silent
