"""The sensor supervisor (K2, K4, K9, K10, F1): every tick it reads each slot and the door,
feeds a key leaving or arriving to the session, and raises an alarm for what no session
explains (a key pulled from a locked slot, a key put where it does not belong, a slot or the
door left open, a forced door, an overdue key, a silent lock bus). At start it reconciles
the sensors with the records (``kiosk.reconcile``), or as soon as the bus answers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from drivers.errors import DriverError, PartialStatus
from drivers.locks.base import SlotState
from kiosk import policy, records
from kiosk import session as flow
from kiosk.audit import NewEvent
from kiosk.cabinet.contract import Core
from kiosk.errors import AuditError
from kiosk.reconcile import reconcile
from kiosk.services import alarms as alarm_service
from kiosk.services import tx
from kiosk.store.models import Key, Slot

log = logging.getLogger("kiosk.cabinet.sensors")
IDENTITY_SWEEP_EVERY = dt.timedelta(minutes=10)


def slot_check(present: bool | None, fob: str | None, expected_rom: str | None) -> str | None:
    """How a slot's key is known, in the K9 count's words (issue 13): ``identified`` (its
    receptor read the fob of the key the records put there), ``wrong_key`` (it read another
    fob), ``present_only`` (a key is there but which one is not known: a presence-only
    cabinet, an unpaired key, or a receptor that read nothing); None: no key seen."""
    if not present:
        return None
    if fob is not None and expected_rom is not None:
        return "identified" if fob == expected_rom else "wrong_key"
    return "present_only"


def wrong_key_text(slot: int, expected: policy.KeyFacts,
                   actual: policy.KeyFacts | None) -> tuple[str, str]:
    """What the screen says when the wrong key is hung: which key belongs in this slot and
    where the one in hand goes."""
    zh = f"格口 {slot} 应放 {expected.label}（{expected.key_number}）。"
    en = f"Slot {slot} is for {expected.key_number}. "
    if actual is None:
        zh += "您手中的钥匙无法识别，请取出并交给管理员。"
        en += "The key in your hand is not recognised: take it out and give it to staff."
    elif actual.home_slot is not None:
        zh += f"您手中的是 {actual.key_number}，请取出，它应放格口 {actual.home_slot}。"
        en += f"The one in your hand is {actual.key_number}: take it out; it goes in slot " \
              f"{actual.home_slot}."
    return zh, en


class SensorSupervisor:
    name = "sensors"

    def __init__(self, core: Core) -> None:
        self.core = core
        self.present: dict[int, bool] = {}
        self.unlocked_since: dict[int, dt.datetime] = {}
        self.slot_open_alarmed: set[int] = set()
        self.door_open_since: dt.datetime | None = None
        self.door_alarmed = False
        self.bus_down = False
        self.failed_boards: frozenset[int] = frozenset()
        """Boards the last partial status said were silent (their slots keep their last
        presence, so a dead board raises ``bus_fault``, never a false "key removed")."""
        self.reconcile_pending = False
        self.next_overdue_check: dt.datetime | None = None
        self.next_sweep: dt.datetime | None = None
        self.fobs: dict[int, str | None] = {}
        """Identity cabinets: the fob ROM each slot's receptor read at the last scan."""
        self.wrong_keys: dict[int, str] = {}
        """Slot → the key (number, or "?" for an unknown chip) hung in it by mistake during a
        return; ``wrong_slot`` is raised if it is still there when the return ends."""
        core.register_flow(self.name, self)
        core.on_tick(self.tick)

    async def start(self) -> dict[str, int]:
        """Scan every slot and the door and reconcile with the records.

        If the scan fails (lock bus silent), reconciliation waits for the first scan that
        succeeds (``scan``): resolved blind, a draw whose key was taken during the outage
        would be recorded as not taken and, once ``cabinet.reconciled`` is logged, never
        looked at again (K10; found by bench/crash_harness.py).
        """
        await self.sweep_identities(self.core.clock())
        status, full = await self.read()
        if status is None or not full:
            # K10: a partial status is no ground to resolve an intent either (a draw from a
            # slot of the silent board would be resolved "not taken").
            self.reconcile_pending = True
            summary = {"reconcile_pending": 1}
        else:
            summary = self._reconcile(status)
        if self.core.door_is_open is not None and self.core.door_is_open():
            self.door_open_since = self.core.clock()
        return summary

    @property
    def identity(self) -> bool:
        """The cabinet reads which key hangs in each slot (``[hardware.identity]``); else it
        is a presence-only cabinet and behaves as before."""
        return bool(self.core.runtime.settings.hardware.identity.enabled)

    def _reconcile(self, status: dict[int, SlotState]) -> dict[str, int]:
        summary = reconcile(self.core, status, identity=self.identity)
        self.present = {n: bool(st.key_present) for n, st in status.items()}
        self.fobs = {n: st.fob for n, st in status.items()}
        self.reconcile_pending = False
        return summary

    def last_scan(self) -> dict[int, bool]:
        return dict(self.present)

    def last_fobs(self) -> dict[int, str | None] | None:
        """Identity cabinets: slot → the fob ROM read at the last scan (None: empty or
        unreadable); presence-only cabinets: None (the daily count then compares presence)."""
        return dict(self.fobs) if self.identity else None

    def still_open(self, slots: Iterable[int]) -> list[int]:
        """Of ``slots``, those no scan has seen locked since the cabinet released them: a
        compartment the person has not pushed shut yet."""
        return [slot for slot in slots if slot in self.unlocked_since]

    def released(self, slot: int, now: dt.datetime) -> None:
        """A session unlocked ``slot`` now (the slot-left-open clock starts here)."""
        self.unlocked_since[slot] = now

    def live_status(self) -> dict[str, Any]:
        """The running cabinet as the admin API shows it: session state, door, lock bus, and
        per slot the last scan's key presence, the key whose home it is and whether it is out."""
        core = self.core
        with DbSession(core.engine) as s:
            numbers = sorted(s.scalars(select(Slot.number).where(Slot.cabinet_id == core.cabinet_id)))
            homes = {k.home_slot: k for k in records.cabinet_keys(s, cabinet_id=core.cabinet_id)}
            roms = records.expected_roms(s, cabinet_id=core.cabinet_id) if self.identity else {}
        slots = []
        for number in sorted(set(numbers) | set(self.present)):
            key = homes.get(number)
            fob = self.fobs.get(number) if self.identity else None
            slots.append({
                "number": number, "key_present": self.present.get(number),
                "key_number": key.key_number if key else None,
                "on_loan": key.on_loan if key else None,
                "fob": fob,
                "check": slot_check(self.present.get(number), fob,
                                    roms[number][1] if number in roms else None),
                "released": number in core.session.open_slots,
            })
        return {
            "cabinet": core.code,
            "state": core.session.state.value,
            "door_open": core.door_is_open() if core.door_is_open is not None else None,
            "lock_bus_ok": not self.bus_down and not self.failed_boards
            and bool(getattr(core.locks, "bus_ok", True)),
            "boards_down": sorted(self.failed_boards),
            "quarantined": sorted(getattr(core.locks, "quarantined", ()) or ()),
            "reconcile_pending": self.reconcile_pending,
            "identity": self.identity,
            "identity_faults": sorted(getattr(core.locks, "identity_faults", {}) or {}),
            "slots": slots,
        }

    async def sweep_identities(self, now: dt.datetime) -> None:
        """Identity cabinets: read every receptor afresh (``bank.sweep()``). A scan reads a
        receptor only when its key sensor changes, so a key swapped while the daemon was down
        (or between two scans) is seen only by a sweep: at start-up, and every
        ``IDENTITY_SWEEP_EVERY`` while idle, so the daily count (K9) compares identities
        that are at most that old."""
        sweep = getattr(self.core.locks, "sweep", None)
        if not self.identity or sweep is None:
            return
        self.next_sweep = now + IDENTITY_SWEEP_EVERY
        try:
            await self.core.driver(sweep)
        except DriverError as exc:
            log.warning("identity sweep failed: %s", exc)

    async def tick(self, now: dt.datetime) -> None:
        if self.identity and self.core.session.state == flow.State.IDLE \
                and (self.next_sweep is None or now >= self.next_sweep):
            await self.sweep_identities(now)
        await self.scan(now)
        self.check_wrong_keys()
        self.check_door(now)
        self.check_overdue(now)

    async def status(self) -> dict[int, SlotState] | None:
        """The slots the bus could read now (all of them, or the healthy boards' slots)."""
        status, _full = await self.read()
        return status

    async def read(self) -> tuple[dict[int, SlotState] | None, bool]:
        """One status read of the whole bus: (slot states, whether every board answered).

        K2: a silent bus raises ``bus_fault`` once; a partial status (some boards silent)
        raises it once per new set of silent boards and still returns the healthy boards'
        slots. ``lock.bus_restored`` is logged once every board answers again, with no
        restart (the driver reopens its port on its own).
        """
        core = self.core
        try:
            status: dict[int, SlotState] = await core.driver(core.locks.status)
        except PartialStatus as exc:
            failed = frozenset(exc.failed)
            if not failed <= self.failed_boards:
                core.alarm("bus_fault", f"lock boards {sorted(failed)} not answering: {exc}",
                           rule="K2", payload={"boards": sorted(failed),
                                               "reasons": {str(b): r for b, r in exc.failed.items()}})
            self.failed_boards = failed
            self.bus_went_down(None)
            return exc.status, False
        except DriverError as exc:
            self.bus_went_down(exc)
            return None, False
        if self.bus_down or self.failed_boards:
            was = sorted(self.failed_boards)
            self.bus_down, self.failed_boards = False, frozenset()
            core.log(NewEvent(type="lock.bus_restored", rules=["K2"],
                              payload={"boards_were_down": was}))
            core.changed()
        return status, True

    def bus_went_down(self, exc: Exception | None) -> None:
        """The whole bus is silent (``exc``), or ``None``: only some boards are (partial).
        One ``bus_fault`` alarm per outage, wherever it was noticed (a scan or an unlock)."""
        if exc is None or self.bus_down:
            return
        self.bus_down = True
        self.core.alarm("bus_fault", f"lock bus not answering: {exc}", rule="K2")

    async def scan(self, now: dt.datetime) -> None:
        status, full = await self.read()
        if status is None:
            return
        if self.reconcile_pending and full and self.core.session.state == flow.State.IDLE:
            self._reconcile(status)  # deferred by start(): the bus was silent or partial
            self.core.changed()
            return
        for slot, st in status.items():  # a silent board's slots keep their last presence
            present = bool(st.key_present)
            was = self.present.get(slot, present)
            self.present[slot] = present
            self.fobs[slot] = st.fob
            if was and not present:
                await self._key_left(slot, now)
            elif present and not was:
                await self._key_arrived(slot, st, now)
            self._check_slot_open(slot, st, now)

    async def _key_left(self, slot: int, now: dt.datetime) -> None:
        core = self.core
        if core.session.state == flow.State.RELEASING and slot in core.session.open_slots:
            await core.apply(core.session.handle(flow.KeyRemoved(now, slot)))
            return
        if slot in self.wrong_keys and slot in core.session.open_slots:
            del self.wrong_keys[slot]  # the wrong key taken back out of the open slot: good,
            await self.reopen(slot)  # and the slot stays open for the right one,
            await self.swapping(slot, now)  # with the full return time to hang it;
            core.say("put_back", "info", for_s=3600)  # "not this key" is done with: say what now
            return
        with DbSession(core.engine) as s:
            key = records.key_in_slot(s, cabinet_id=core.cabinet_id, slot=slot)
        core.alarm("key_removed_unauthorised",
                   f"a key left slot {slot}, which was not released", rule="K2", slot=slot,
                   key=key)

    async def _key_arrived(self, slot: int, st: SlotState, now: dt.datetime) -> None:
        core = self.core
        if core.session.state in (flow.State.RETURNING, flow.State.INTAKE, flow.State.STOCKING) \
                and slot in core.session.open_slots:
            if core.session.state == flow.State.RETURNING and self.identity \
                    and not await self._right_key(slot, st.fob):
                return
            if core.session.state == flow.State.STOCKING and self.identity \
                    and not await self._right_stock(slot, st.fob):
                return
            await core.apply(core.session.handle(flow.KeyInserted(now, slot)))
            return
        core.alarm("key_inserted_unexpectedly",
                   f"a key appeared in slot {slot} outside a return", rule="K4", slot=slot)

    async def _right_stock(self, slot: int, fob: str | None) -> bool:
        """Stocking on an identity cabinet: the stock flow tells whether it is the slot's key."""
        from kiosk.cabinet.flows.stock import StockFlow  # the stock flow imports this module

        return await self.core.lookup("stock", StockFlow).right_key(slot, fob)

    async def _right_key(self, slot: int, fob: str | None) -> bool:
        """Identity cabinets (issue 13): is the key hung in the open ``slot`` the one being
        returned? Presence is not enough: badge → 归还 for U606, U701 hung in its slot must
        never close U606's loan. A key of a group that may go back anywhere (``return_anywhere``)
        hung in a free slot is *its* return instead. Anything else keeps the slot open (it is
        released again), the screen says which key belongs there and where the one in hand
        goes, and ``wrong_slot`` follows if it is left (``check_wrong_keys``)."""
        core, v = self.core, self.core.visit
        expected = v.returning
        assert expected is not None
        read_slot = getattr(core.locks, "read_slot", None)
        if fob is None and read_slot is not None:
            try:  # a fob still being pushed in, or a receptor that failed once: read again
                rom = await core.driver(read_slot, slot)
                fob = None if rom is None else rom.hex
            except DriverError as exc:
                log.warning("identity of slot %s unreadable: %s", slot, exc)
        with DbSession(core.engine) as s:
            expected_rom = records.fob_rom_of(s, key_id=expected.id)
            actual = records.key_by_rom(s, cabinet_id=core.cabinet_id, rom=fob) if fob else None
            if fob is not None and actual is None and expected_rom is None:
                actual = expected  # an unpaired key's first return: its chip is paired now
            anywhere = actual is not None and actual.id != expected.id and actual.on_loan \
                and records.returns_anywhere(s, key_id=actual.id) \
                and records.key_in_slot(s, cabinet_id=core.cabinet_id, slot=slot) is None
        if actual is not None and actual.id == expected.id:
            if expected_rom is None and fob is not None:
                core.write(_pair_fob(core, expected, slot, fob), "key.fob_paired")
            return True
        if anywhere and actual is not None:
            v.returning = actual  # recorded as *its* return, in its new slot
            return True
        self.wrong_keys[slot] = actual.key_number if actual is not None else "?"
        core.log(NewEvent(
            type="return.wrong_key", slot=slot, key_number=expected.key_number, rules=["K4"],
            actors=[str(v.person.id)] if v.person else [],
            payload={"expected": expected.key_number, "fob_rom": fob,
                     "hung": actual.key_number if actual else None,
                     "its_slot": actual.home_slot if actual else None,
                     "intent_seq": v.intents.get(slot)}))
        core.say("wrong_key", "error", for_s=120, detail=wrong_key_text(slot, expected, actual))
        core.beep("deny")
        await self.reopen(slot)  # the wrong one can come out, the right one still go in
        await self.swapping(slot, core.clock())
        return False

    async def swapping(self, slot: int, now: dt.datetime) -> None:
        """The person is swapping a wrong key for the right one, as the screen asked: the
        return timer restarts (``flow.KeySwapping``), so the countdown they see gives them
        the whole return time for it rather than what was left of it."""
        core = self.core
        if core.session.state == flow.State.RETURNING and slot in core.session.open_slots:
            await core.apply(core.session.handle(flow.KeySwapping(now, slot)))
        core.changed()

    async def reopen(self, slot: int) -> None:
        """Release ``slot`` again during the return it was opened for (a latch that was
        pushed shut on a wrong key must not keep the right one out)."""
        core = self.core
        try:
            await core.driver(core.locks.unlock, slot)
            self.released(slot, core.clock())
        except DriverError as exc:
            log.warning("slot %s not re-opened for the right key: %s", slot, exc)

    def check_wrong_keys(self) -> None:
        """A wrong key left in a slot once its return (or stocking) ended is a ``wrong_slot``
        alarm (K4)."""
        core = self.core
        if not self.wrong_keys or core.session.state in (flow.State.RETURNING,
                                                          flow.State.STOCKING):
            return
        for slot, hung in sorted(self.wrong_keys.items()):
            with DbSession(core.engine) as s:
                key = records.key_by_number(s, cabinet_id=core.cabinet_id, key_number=hung) \
                    if hung != "?" else None
                home = records.key_in_slot(s, cabinet_id=core.cabinet_id, slot=slot)
            core.alarm("wrong_slot", f"key {hung} left in slot {slot}, home of "
                       f"{home.key_number if home else 'no key'}", rule="K4", slot=slot, key=key)
        self.wrong_keys.clear()

    def _check_slot_open(self, slot: int, st: SlotState, now: dt.datetime) -> None:
        """A slot still unlocked long after its session let go of it is a fault (K2)."""
        if st.locked:
            self.unlocked_since.pop(slot, None)
            self.slot_open_alarmed.discard(slot)
            return
        if slot in self.core.session.open_slots:
            return
        since = self.unlocked_since.setdefault(slot, now)
        if slot not in self.slot_open_alarmed and now - since >= self.core.options.slot_left_open:
            self.core.alarm("slot_left_open", f"slot {slot} is still open", rule="K2", slot=slot)
            self.slot_open_alarmed.add(slot)  # once per opening

    def check_door(self, now: dt.datetime) -> None:
        core = self.core
        if core.door_is_open is None:
            return
        if not core.door_is_open():
            self.door_open_since, self.door_alarmed = None, False
            return
        if self.door_open_since is None:
            self.door_open_since = now
            if core.session.state == flow.State.IDLE:
                core.alarm("door_forced", "the cabinet door was opened with no session", rule="K2")
                self.door_alarmed = True
        if not self.door_alarmed and now - self.door_open_since >= core.options.door_held_open:
            core.alarm("door_held_open", "the cabinet door is held open", rule="K2")
            self.door_alarmed = True

    def check_overdue(self, now: dt.datetime) -> None:
        core = self.core
        if self.next_overdue_check is not None and now < self.next_overdue_check:
            return
        self.next_overdue_check = now + core.options.overdue_every
        self._overdue_batch(now)

    def _overdue_batch(self, now: dt.datetime) -> None:
        """One batch of ``key_overdue`` alarms for the writer; the next batch is queued only
        once this one is written, so an intent posted meanwhile is not kept waiting behind
        hundreds of alarms (a cabinet started with many keys overdue; issue 15)."""
        core = self.core
        done = core.writer.post(lambda s: _raise_overdue(core, s, now), "key_overdue")
        loop = asyncio.get_running_loop()

        def more(future: concurrent.futures.Future[bool]) -> None:
            if not future.cancelled() and future.exception() is None and future.result():
                loop.call_soon_threadsafe(self._next_overdue_batch, now)

        done.add_done_callback(more)

    def _next_overdue_batch(self, now: dt.datetime) -> None:
        with contextlib.suppress(AuditError):  # the writer closed: the next check does it
            self._overdue_batch(now)


def _pair_fob(core: Core, key: policy.KeyFacts, slot: int,
              fob: str) -> Callable[[DbSession], None]:
    """Issue 13: an unpaired key's first return pairs its chip (a write for the writer)."""
    def work(s: DbSession) -> None:
        row = s.get(Key, key.id)
        assert row is not None
        row.fob_rom = fob
        tx.log(s, core.audit, NewEvent(
            type="key.fob_paired", slot=slot, key_number=key.key_number,
            rules=["K4"], payload={"fob_rom": fob, "at": "return"}))
    return work


OVERDUE_BATCH = 20


def _raise_overdue(core: Core, s: DbSession, now: dt.datetime) -> bool:
    """K9: one ``key_overdue`` alarm per overdue loan, at most ``OVERDUE_BATCH`` in one
    transaction (run by the writer thread); True if more may be waiting."""
    raised = 0
    for loan in records.loans_out(s, cabinet_id=core.cabinet_id):
        if raised >= OVERDUE_BATCH:
            return True
        if loan.due_at <= now and not records.has_open_alarm(
                s, kind="key_overdue", loan_id=loan.id):
            raised += 1
            alarm_service.raise_alarm(
                s, core.audit, kind="key_overdue", rule="K9", actors=[],
                cabinet_id=core.cabinet_id, key_id=loan.key_id, loan_id=loan.id,
                message=f"{loan.key.key_number} drawn by {loan.borrower.name} was due "
                        f"{loan.due_at.isoformat()}", at=now, owners=core.alarm_owners,
            )
    return False
