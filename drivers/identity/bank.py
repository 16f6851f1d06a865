"""A lock bank whose slot states carry the fob identity read in each slot.

``SlotState.fob`` exists for hardware that reads fob identity; this adapter fills it from
the slot's 1-Wire receptor, so the cabinet sees *which* key hangs in a slot through the
same ``status()`` it already polls. A receptor is read only when its slot's key sensor
says a key arrived (and again after a failed read), not on every scan: reading 64
receptors takes over half a second, a scan tick is 0.1 s.

A receptor that cannot be read leaves ``fob = None`` for that scan and is listed in
:attr:`IdentifiedLockBank.identity_faults`; the lock bank's own errors pass through
unchanged (``PartialStatus`` keeps its healthy slots, now with identities).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from drivers.errors import IdentityError, PartialStatus
from drivers.identity.ds2482 import IdentitySweep, SlotIdentityReader
from drivers.identity.onewire import FobId
from drivers.locks.base import LockBank, SlotState

log = logging.getLogger(__name__)


class IdentifiedLockBank:
    """:class:`~drivers.locks.base.LockBank` = ``locks`` + ``identity`` per slot.

    Everything else (``unlock``, ``lock_all``, ``bus_ok``, ``commission``...) is the wrapped
    bank's; ``close()`` closes both.
    """

    def __init__(self, locks: LockBank, identity: SlotIdentityReader) -> None:
        self.locks = locks
        self.identity = identity
        self._known: dict[int, FobId | None] = {}
        self.identity_faults: dict[int, str] = {}
        """Slots whose receptor failed at the last read (identity unknown, not absent)."""

    @property
    def slots(self) -> tuple[int, ...]:
        return self.locks.slots

    def unlock(self, slot: int, pulse_ms: int | None = None) -> None:
        self.locks.unlock(slot, pulse_ms)

    def status(self) -> dict[int, SlotState]:
        """The lock bank's status with ``fob`` set to the ROM (16 hex digits) in each slot."""
        try:
            states = self.locks.status()
        except PartialStatus as exc:
            raise PartialStatus(str(exc), status=self._identify(exc.status),
                                failed=exc.failed) from exc
        return self._identify(states)

    def read_slot(self, slot: int) -> FobId | None:
        """Read one receptor now (commissioning, or a check the cabinet wants fresh)."""
        rom = self.identity.read_slot(slot)
        self._known[slot] = rom
        self.identity_faults.pop(slot, None)
        return rom

    def sweep(self) -> IdentitySweep:
        """Read every receptor now (start-up scan, daily count) and refresh the cache."""
        result = self.identity.sweep()
        self._known.update(result.fobs)
        self.identity_faults = dict(result.faults)
        for slot in result.faults:
            self._known.pop(slot, None)
        return result

    def lock_all(self) -> None:
        self.locks.lock_all()

    def close(self) -> None:
        try:
            self.locks.close()
        finally:
            self.identity.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.locks, name)

    def _identify(self, states: dict[int, SlotState]) -> dict[int, SlotState]:
        out: dict[int, SlotState] = {}
        receptors = set(self.identity.slots)
        for slot, st in states.items():
            if slot not in receptors:
                out[slot] = st
                continue
            rom = self._fob_in(slot, st.key_present)
            out[slot] = dataclasses.replace(st, fob=None if rom is None else rom.hex)
        return out

    def _fob_in(self, slot: int, present: bool | None) -> FobId | None:
        if present is False:
            self._known.pop(slot, None)
            self.identity_faults.pop(slot, None)
            return None
        if present is True and slot in self._known:
            return self._known[slot]
        try:
            rom = self.identity.read_slot(slot)
        except IdentityError as exc:
            if slot not in self.identity_faults:
                log.warning("identity of slot %s unreadable: %s", slot, exc)
            self.identity_faults[slot] = str(exc)
            return None
        self.identity_faults.pop(slot, None)
        if present is True and rom is not None:
            self._known[slot] = rom  # an unread chip (fob still seating) is asked again
        return rom
