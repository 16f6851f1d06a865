"""The narrow interface every lock bank driver offers to the cabinet.

Drivers are synchronous and bounded by timeouts; the cabinet calls them from a worker
thread so the asyncio loop never blocks on a serial bus. Slots are numbered from 1 across
the whole cabinet; each driver maps a slot to its own board and channel.

A driver may also offer ``arm(slot, pulse_ms=None)``: send ahead whatever its next unlock of
``slot`` needs on the bus before the opening frame, opening nothing (the Kerong driver's
coil-time frame). The cabinet calls it, when present, while the unlock's intent is being
made durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

HARD_MAX_PULSE_MS = 2000
"""No lock coil in our bill of materials is rated for more than 2 s continuous on-time."""

DEFAULT_PULSE_MS = 500


@dataclass(frozen=True, slots=True)
class SlotState:
    """What the hardware says about one slot right now.

    ``key_present`` is ``None`` where the hardware has no key sensor for that slot.
    ``fob`` is the fob tag id seen in the slot where the hardware reads fob identity.
    """

    slot: int
    locked: bool
    key_present: bool | None
    fob: str | None = None


@runtime_checkable
class LockBank(Protocol):
    """A set of slot locks with their key sensors."""

    @property
    def slots(self) -> tuple[int, ...]:
        """The cabinet slot numbers this bank drives."""
        ...

    def unlock(self, slot: int, pulse_ms: int | None = None) -> None:
        """Release one slot for ``pulse_ms`` (capped); raise ``LockBoardError`` on failure."""
        ...

    def status(self) -> dict[int, SlotState]:
        """Read every slot's lock and key sensor; raise ``LockBoardError`` if the bus is silent."""
        ...

    def lock_all(self) -> None:
        """Drive every output to its locked state. Never raises for one bad channel."""
        ...

    def close(self) -> None:
        """Lock everything and release the transport."""
        ...


def cap_pulse(pulse_ms: int | None, *, configured_max_ms: int) -> int:
    """Clamp a requested pulse to the configured cap and the hard coil maximum."""
    limit = min(configured_max_ms, HARD_MAX_PULSE_MS)
    if pulse_ms is None:
        return min(DEFAULT_PULSE_MS, limit)
    if pulse_ms <= 0:
        raise ValueError(f"pulse must be positive, got {pulse_ms} ms")
    return min(pulse_ms, limit)
