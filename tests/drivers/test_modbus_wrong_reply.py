"""A relay board's answer that does not fit the question (issue 13, a bus hardened for a real
wire): real RTU bytes on a real pty pair (socat), a board end written by hand.

On a slow or noisy RS-485 line a late answer to an earlier request (a "write coils" echo)
can arrive while the driver waits for its "read coils" answer; CI's loaded machine once
produced exactly that. The driver indexed the short reply and crashed with ``IndexError``
in the middle of the cabinet's start-up. What a cabinet must do instead: take such an
answer for what it is (not the board's state), drop the line so the stray bytes go, ask
again, and if the board never answers what was asked, a ``LockBoardError`` naming it (the
``bus_fault`` path, K2) rather than a crash.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from drivers.errors import LockBoardError
from drivers.locks.modbus_relay import ModbusRelayBank, ModbusRelayConfig
from tests.drivers.test_kerong_field_faults import SocatLink

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")

CHANNELS = 8
UNIT = 1


def crc16(frame: bytes) -> bytes:
    """Modbus RTU's CRC (polynomial 0xA001, low byte first)."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes([crc & 0xFF, crc >> 8])


def rtu(*body: int) -> bytes:
    frame = bytes(body)
    return frame + crc16(frame)


WRITE_COILS_ECHO = rtu(UNIT, 0x0F, 0x00, 0x00, 0x00, CHANNELS)  # a late "write coils" answer
ALL_LOCKED = rtu(UNIT, 0x01, 0x01, 0x00)  # "read coils": one byte, every coil off (locked)


class HandWrittenBoard:
    """Answers each request on the board end of the pty with the next scripted frame."""

    def __init__(self, device: Path, answers: list[bytes]) -> None:
        self.port = serial.Serial(str(device), 9600, timeout=0.05)
        self.answers = answers
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            request = self.port.read(8)  # every request the driver sends here is 8 bytes
            if len(request) < 8:
                continue
            self.requests.append(request)
            if self.answers:
                self.port.write(self.answers.pop(0))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.port.close()


@pytest.fixture
def link(tmp_path: Path) -> Iterator[SocatLink]:
    socat = SocatLink(tmp_path)
    socat.plug()
    yield socat
    socat.unplug()


def bank_on(link: SocatLink) -> ModbusRelayBank:
    config = ModbusRelayConfig(channels=CHANNELS, retries=2, backoff_ms=10)
    return ModbusRelayBank.from_url(str(link.driver_end), config, timeout_s=0.2)


def test_a_stray_answer_is_not_taken_for_the_coils_and_the_read_is_asked_again(
        link: SocatLink) -> None:
    board = HandWrittenBoard(link.board_end, [WRITE_COILS_ECHO, ALL_LOCKED])
    bank = bank_on(link)
    try:
        status = bank.status()
        assert sorted(status) == list(range(1, CHANNELS + 1))
        assert all(state.locked for state in status.values())
        assert len(board.requests) == 2  # the stray answer was refused, the read asked again
        assert board.requests[0][1] == board.requests[1][1] == 0x01  # both "read coils"
    finally:
        bank.close()
        board.close()


def test_a_board_that_never_answers_the_question_is_a_board_error_not_a_crash(
        link: SocatLink) -> None:
    board = HandWrittenBoard(link.board_end, [WRITE_COILS_ECHO] * 3)
    bank = bank_on(link)
    try:
        with pytest.raises(LockBoardError, match=r"read coils .*not an answer to it"):
            bank.status()
        assert len(board.requests) == 3  # asked three times (retries=2), then told
    finally:
        bank.close()
        board.close()


def test_a_stray_exception_meant_for_another_request_does_not_refuse_this_one(
        link: SocatLink) -> None:
    """A "write coils" refusal (0x8F, illegal address) arriving late is not the read's own
    answer: taken as such, an illegal-address code is never retried and the read would fail
    for good; the driver asks again and reads the coils."""
    late_refusal = rtu(UNIT, 0x8F, 0x02)
    board = HandWrittenBoard(link.board_end, [late_refusal, ALL_LOCKED])
    bank = bank_on(link)
    try:
        status = bank.status()
        assert all(state.locked for state in status.values())
        assert len(board.requests) == 2
    finally:
        bank.close()
        board.close()


def test_the_boards_own_refusal_of_the_read_is_still_a_refusal(link: SocatLink) -> None:
    """The read's own exception (0x81, illegal address) is the board's answer: refused at
    once, not asked again (a wrong address cannot be fixed by asking again)."""
    board = HandWrittenBoard(link.board_end, [rtu(UNIT, 0x81, 0x02)] * 3)
    bank = bank_on(link)
    try:
        with pytest.raises(LockBoardError, match="read coils refused"):
            bank.status()
        assert len(board.requests) == 1
    finally:
        bank.close()
        board.close()
