"""Errors raised by hardware drivers.

Drivers know bytes and pins, nothing about people or keys, so they have their own error
root instead of importing ``kiosk``; the cabinet layer wraps these where it must.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivers.locks.base import SlotState


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


class BusFault(LockBoardError):
    """The transport under a lock bus failed (adapter unplugged, port closed, socket gone).

    A subclass of :class:`LockBoardError`, so every caller that handles a silent board
    already handles it; the driver reopens the port with backoff on its own, and its
    ``bus_ok`` property (or its ``on_bus_change`` callback) says when the bus is back.
    """


class DutyCycleExceeded(LockBoardError):
    """A coil was asked to pulse more often than its duty-cycle limit allows; it was not
    pulsed. The coil is fine: wait for the cool-down (``retry_after_s``) and ask again."""

    def __init__(self, slot: int, message: str, retry_after_s: float) -> None:
        super().__init__(f"slot {slot}: {message}")
        self.slot = slot
        self.retry_after_s = retry_after_s


class IdentityError(DriverError):
    """A key-identity receptor failed: bridge not answering, short on the line, a ROM with
    a bad CRC, a busy bit that never cleared."""


class PartialStatus(LockBoardError):
    """Some boards of a lock bus answered and some did not.

    Still a :class:`LockBoardError` (so a cabinet that only knows that raises its bus alarm),
    but it carries what the healthy boards said: ``status`` (slot -> ``SlotState``) and
    ``failed`` (board -> reason), so an updated cabinet keeps watching the healthy slots
    while one board is dead.
    """

    def __init__(self, message: str, *, status: dict[int, SlotState], failed: dict[int, str]) -> None:
        super().__init__(message)
        self.status = status
        self.failed = failed
