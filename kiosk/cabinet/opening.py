"""From a decided opening to moved locks: the intents made durable first, then the locks.

The audit rule every opening keeps (draw, return, intake, stocking, remote unlock): one
intent event per slot is committed, by the writer thread and in one transaction, before any
lock moves; a lock that does not move is a fault recorded with an alarm, and the visit ends
saying so. This is the one path from a session's ``Unlock`` command to the lock bank, kept
out of the core (``core.py`` routes inputs to flows; this module owns the opening's
writes and its failures).

A draw decided from the facts read for the person's list (``DrawFlow``, issue 15) carries
the log's head those facts were read at (``Visit.decided``). Its first intent goes onto
that head or not at all (``HeadMoved``, checked in the intent's own write transaction).
If anything was logged in between, the same choice is decided once more from fresh reads
(``DecidedFromList.recheck``): it opens if it still stands, and is refused with its rule,
logged and said, if it does not. An unrelated event (a configuration change from the hub,
a refused tap) costs the draw a read, never the opening.

The first slot's unlock is sent by the writer thread the moment the intents commit, if the
lock bus is idle then (``kiosk.cabinet.bus``): no other thread is woken between the commit
and the lock (issue 15). Busy, the bus gets it from the loop, queued behind its work.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as DbSession

from drivers.errors import BusFault, DriverError, DutyCycleExceeded
from kiosk import session as flow
from kiosk.audit import AppendedEvent, HeadMoved, NewEvent
from kiosk.cabinet.options import CabinetError
from kiosk.cabinet.writer import Work
from kiosk.errors import AuditError
from kiosk.services import tx

if TYPE_CHECKING:
    from kiosk.cabinet.core import Cabinet

log = logging.getLogger("kiosk.cabinet")

@dataclass(eq=False)
class FirstUnlock:
    """The first slot of an opening, unlocked by the writer thread as its intent commits
    (``Opening.unlock_on_commit``). Read by the loop only once the commit is known, and
    written by the writer thread before it announces the commit."""

    slot: int
    opened: bool = False             # the unlock was sent, and the board took it
    fault: DriverError | None = None  # the unlock was sent, and the lock did not move


class Opening:
    """The intent-then-lock path of one cabinet (one per ``Cabinet``, on its loop)."""

    def __init__(self, core: Cabinet) -> None:
        self.core = core

    def intents(self, slots: tuple[int, ...]) -> list[NewEvent]:
        """One intent event per slot, built by the flow that owns the kind of opening, naming
        everyone who took part (the person, the duty manager, the co-signer, remote admins)."""
        core, v = self.core, self.core.visit
        actors = [str(p.id) for p in (v.person, v.manager, v.cosigner) if p is not None]
        actors += list(v.remote_admins)
        return [core.intent_builder(core.opening_kind(slot))(slot, list(actors))
                for slot in slots]

    def _record(self, events: list[NewEvent], after: int | None) -> Work[list[AppendedEvent]]:
        """The intents' write: ``events`` in one transaction, the first only onto head
        ``after`` if given (else ``HeadMoved``)."""
        audit = self.core.audit

        def record(s: DbSession) -> list[AppendedEvent]:
            return [tx.log(s, audit, event, after=after if i == 0 else None)
                    for i, event in enumerate(events)]
        return record

    def unlock_on_commit(self, first: FirstUnlock) -> None:
        """Writer thread, the moment the intents have committed: unlock the first slot here
        if the lock bus is idle (``LockBus.try_now``), else leave it to the loop. Called only
        after the commit, so the lock never moves before its intent is durable (K2)."""
        try:
            first.opened = self.core.bus.try_now(self.core.locks.unlock, first.slot)
        except DriverError as exc:
            first.fault = exc

    async def record_intents(self, slots: tuple[int, ...]) -> FirstUnlock | None:
        """Durable intent events, one per slot, committed before any lock moves; refused if
        not durable within ``intent_wait``. Raises ``CabinetError`` when a draw decided from
        the list's facts no longer stands once decided afresh (refusal logged and said).

        Returns what the writer thread did with the first slot as the intents committed
        (``unlock_on_commit``), or None if it was not asked to."""
        core, v = self.core, self.core.visit
        within_s = core.options.intent_wait.total_seconds()
        decided, v.decided = v.decided, None  # for this opening only
        first = FirstUnlock(slots[0]) if slots else None
        job = core.writer.submit_durable(
            self._record(self.intents(slots), decided.head if decided is not None else None),
            then=functools.partial(self.unlock_on_commit, first) if first is not None else None)
        try:
            stored = await core.writer.settle(job, within_s)
        except HeadMoved:  # not committed, so nothing opened
            if decided is None:
                raise
            decided.recheck()  # the log moved since the list: decided again, or refused
            first = None
            stored = await core.writer.durable(self._record(self.intents(slots), None),
                                               within_s=within_s, what="intent")
        for slot, appended in zip(slots, stored, strict=True):
            v.intents[slot] = appended.seq
        return first

    async def unlock(self, slots: tuple[int, ...]) -> bool:
        """Log the intents durably, then move the locks; False if the log or a lock failed
        (the visit is then ended, saying why).

        While the writer thread commits the intents, the bus thread arms the first slot's
        board (``kiosk.cabinet.arming``; a board armed when the key was picked hears nothing
        more); the writer thread then sends the first unlock itself as the commit lands, if
        the bus is idle by then (issue 15). A bus still busy (the arming, a sensor sweep)
        gets the unlock from here, queued behind that work, so the arming always precedes
        it."""
        core = self.core
        arming = core.arming.for_unlock(slots[0]) if slots else None
        try:
            first = await self.record_intents(slots)
        except (AuditError, SQLAlchemyError, CabinetError) as exc:
            # Disk full or database locked: no intent, so no lock may move, and nothing
            # more can be logged either (an intent already written for an earlier slot is
            # resolved from the sensors at the next start). Or the draw, decided again
            # because the log moved, is refused now: its refusal is logged and on screen.
            if arming is not None:
                await arming
            if arming is not None or core.arming.picked_any:
                await core.driver(core.locks.lock_all)  # the armed boards disarmed again
            core.visit.resolved.update(core.visit.intents)
            core.visit.intents.clear()
            if isinstance(exc, CabinetError):
                await core.apply(core.session.handle(flow.Cancelled(core.clock(), exc.code)))
                return False
            log.error("intent not durable, nothing unlocked: %s", exc)
            await core.apply(core.session.handle(flow.Cancelled(core.clock(), "storage_fault")))
            core.say("storage_fault", "error")
            core.beep("deny")
            return False
        sensors = core.sensors
        for i, slot in enumerate(slots):
            try:
                if i == 0 and first is not None and first.fault is not None:
                    raise first.fault
                if not (i == 0 and first is not None and first.opened):
                    await core.driver(core.locks.unlock, slot)
            except DriverError as exc:
                await self.lock_fault(slot, exc)
                return False
            sensors.released(slot, core.clock())
            core.light(slot, True)
        core.beep("ok")
        return True

    async def lock_fault(self, slot: int, exc: Exception) -> None:
        """The slot stays locked (fail-locked) and the visit ends saying why. A silent bus is
        a ``bus_fault`` (K2; ``lock.bus_restored`` follows from the scan once it answers), a
        coil in its duty-cycle cool-down is no fault at all: the person is told to retry."""
        core = self.core
        said, detail = "lock_fault", None  # "staff alerted": true only once it is recorded
        intent: dict[str, object] = {"intent_seq": core.visit.intents.get(slot)}
        try:
            if isinstance(exc, DutyCycleExceeded):
                wait_s = max(1, round(exc.retry_after_s))
                said, detail = "cooling_down", (f"格口 {slot} 正在冷却，请 {wait_s} 秒后再试",
                                                f"Slot {slot} is cooling down: retry in {wait_s} s")
                failed = core.outcome("unlock.failed", slot, rules=["K2"], detail=str(exc),
                                      cause="duty_cycle", retry_after_s=exc.retry_after_s)
                await core.writer.run(lambda s: tx.log(s, core.audit, failed), failed.type)
            else:
                kind = "bus_fault" if isinstance(exc, BusFault) else "lock_fault"
                raise_it = core.alarm_work(kind, f"slot {slot} did not unlock: {exc}",
                                           rule="K2", slot=slot, payload=intent)
                failed = core.outcome("unlock.failed", slot, rules=["K2"], detail=str(exc),
                                      cause=kind)

                def record(s: DbSession) -> None:
                    raise_it(s)
                    tx.log(s, core.audit, failed)

                # Awaited: the screen says "staff alerted" only once the alarm is recorded.
                await core.writer.run(record, f"alarm {kind}")
                core.changed()
                if kind == "bus_fault":
                    core.sensors.bus_down = True  # the alarm is raised; the scan logs the restore
        except (AuditError, SQLAlchemyError) as fault:
            log.error("lock fault on slot %s not recorded: %s", slot, fault)
            said = "lock_fault_unrecorded"
        core.visit.resolved.add(slot)
        await core.apply(core.session.handle(flow.Cancelled(core.clock(), "lock_fault")))
        core.say(said, "error", detail=detail)
        core.beep("deny")
