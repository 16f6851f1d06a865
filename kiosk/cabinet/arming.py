"""Arming lock boards ahead of their unlock, so a person's choice is one frame from the lock.

A Kerong board opens a lock for the coil time its last 0x37 set, and the driver sends that
frame before every unlock (K2: a board that reset would otherwise open with its factory
time). At 19200 baud the 0x37 and the turnaround before the 0x31 cost about 6 ms, more than
the whole choice-to-unlock budget (issue 15). The driver's ``arm`` sends it early and the
unlock then skips it; this module decides *when*:

* when the person picks a key on the screen (``ahead`` with the choice's time as validity):
  they still have to touch a reason, so the 0x37 is on the wire long before the draw;
* at the latest while the unlock's intent is being committed (``ahead`` with the driver's
  short default), for a draw chosen without a pick (the REST API, a test, an old page).

What a buyer's security officer should know: an armed board holds the configured coil time,
which is what every board holds after any unlock anyway; 0x37 opens nothing. The driver
disarms a board that misses a status sweep (it may have reset), and the cabinet forgets every
arming when the visit ends, so an arming never serves anyone but the person it was sent for.

Every call runs on the cabinet's lock bus (``kiosk.cabinet.bus``), in order with the
unlocks: an unlock is sent from the writer thread only while nothing is queued or running on
the bus, so an arming queued before an unlock always reaches the board first. Drivers without ``arm`` (GPIO,
Modbus relays, where an unlock is one write) are left alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable

from drivers.errors import DriverError
from drivers.locks.base import LockBank

log = logging.getLogger("kiosk.cabinet")

MAX_PICKED_SLOTS = 10
"""Slots one visit may arm by picking (twice the five keys of one draw): a page that picks
every key in turn cannot keep the bus busy with coil-time frames."""


class Arming:
    """Early coil-time frames for the locks about to open, on the bus thread."""

    def __init__(self, locks: LockBank, bus: concurrent.futures.Executor) -> None:
        self._arm: Callable[..., bool] | None = getattr(locks, "arm", None)
        self._disarm: Callable[[], None] | None = getattr(locks, "disarm", None)
        self._bus = bus
        self._picked: set[int] = set()

    def ahead(self, slot: int, valid_s: float | None = None) -> asyncio.Future[None] | None:
        """Start arming ``slot``'s board (for ``valid_s``, else the driver's default); None
        if the driver cannot. A failure is only logged: the unlock then sends its 0x37
        itself and reports any bus fault as its own."""
        arm = self._arm
        if arm is None:
            return None
        options = {} if valid_s is None else {"valid_s": valid_s}

        def arm_quietly() -> None:
            try:
                arm(slot, **options)
            except DriverError as exc:
                log.info("slot %s not armed ahead of its unlock: %s", slot, exc)

        return asyncio.get_running_loop().run_in_executor(self._bus, arm_quietly)

    def for_unlock(self, slot: int) -> asyncio.Future[None] | None:
        """Arm ``slot``'s board while its intent commits, unless a pick in this visit asked
        for it already: then the bus thread is left alone (waking it costs the loop time on
        the path to the lock). Should that arming have been lost (a sweep found the board
        silent), the unlock sends its 0x37 itself: slower, never less safe."""
        return None if slot in self._picked else self.ahead(slot)

    def picked(self, slots: list[int], valid_s: float) -> int:
        """The person picked keys in these home slots: arm their boards for ``valid_s`` (the
        time they have to touch a reason). Returns how many slots were newly asked for;
        beyond ``MAX_PICKED_SLOTS`` in one visit, none."""
        fresh = [s for s in dict.fromkeys(slots) if s not in self._picked]
        fresh = fresh[:max(0, MAX_PICKED_SLOTS - len(self._picked))]
        for slot in fresh:
            self._picked.add(slot)
            self.ahead(slot, valid_s)
        return len(fresh)

    @property
    def picked_any(self) -> bool:
        """Whether a pick in this visit asked for an arming (an intent that then fails to be
        logged puts every board back to its shortest time)."""
        return bool(self._picked)

    def forget(self) -> None:
        """The visit ended: no unlock after it may use an arming made for it."""
        self._picked.clear()
        disarm = self._disarm
        if disarm is None:
            return
        try:
            asyncio.get_running_loop().run_in_executor(self._bus, disarm)
        except RuntimeError:  # no loop, or the bus thread already stopped: do it here
            disarm()
