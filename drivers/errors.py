"""Errors raised by hardware drivers.

Drivers know bytes and pins, nothing about people or keys, so they have their own error
root instead of importing ``kiosk``; the cabinet layer wraps these where it must.
"""

from __future__ import annotations


class DriverError(Exception):
    """Root of every error a driver raises."""


class LockBoardError(DriverError):
    """A lock board or relay board did not answer, answered garbage, or refused."""


class LockFault(LockBoardError):
    """A lock did not reach the state it was driven to (for example still open after its pulse)."""

    def __init__(self, slot: int, message: str) -> None:
        super().__init__(f"slot {slot}: {message}")
        self.slot = slot


class ReaderError(DriverError):
    """An RFID reader failed: unplugged, not answering, or a broken frame."""


class CodecError(DriverError):
    """A frame could not be decoded: bad start/end byte, checksum or length."""
