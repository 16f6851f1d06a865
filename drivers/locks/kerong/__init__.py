"""Kerong KR-CU16-compatible RS-485 lock boards.

Three layers, as for every protocol driver: :mod:`.codec` (pure frame encode/decode, no I/O),
the transport (:func:`.device.open_port`, any ``serial_for_url`` URL) and the device
(:class:`.device.KerongLockBank`, the :class:`~drivers.locks.base.LockBank` the cabinet uses).
"""

from __future__ import annotations

from drivers.locks.kerong.codec import BoardStatus, Frame, FrameParser
from drivers.locks.kerong.device import ARM_VALID_S, KerongLockBank, open_port

__all__ = ["ARM_VALID_S", "BoardStatus", "Frame", "FrameParser", "KerongLockBank", "open_port"]
