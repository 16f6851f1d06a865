"""The cabinet: the one place that ties drivers, session, policy and store together.

Everything runs on one asyncio loop. Taps (from a reader thread or the simulator), screen
choices and the sensor scan are serialised by one lock, so the session state machine only
ever sees one event at a time. Driver calls run in a single worker thread (a serial bus is
one conversation). The audit rule is: the intent event is committed before a lock moves,
and the outcome (loan recorded, loan closed, key registered) is committed after the
sensors confirm it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session as DbSession

from drivers.errors import DriverError
from drivers.locks.base import LockBank, SlotState
from kiosk import cabinet_screen, policy, records
from kiosk import session as flow
from kiosk.audit import AppendedEvent, NewEvent
from kiosk.config import Settings
from kiosk.errors import AuditError, Conflict, InvalidRequest
from kiosk.messages import REASONS
from kiosk.policy import Decision
from kiosk.reconcile import reconcile
from kiosk.runtime import Runtime
from kiosk.services import alarms as alarm_service
from kiosk.services import handovers, tx
from kiosk.store.db import write_session
from kiosk.store.models import Cabinet as CabinetRow
from kiosk.store.models import IntakeRecord, Key, KeyCategory, KeyGroup, Loan, Person, Slot, Unit
from kiosk.store.types import utcnow
from kiosk.visit import DrawPlan, Message, Visit

log = logging.getLogger("kiosk.cabinet")


class Indicators(Protocol):
    """Slot LEDs and the buzzer; optional hardware."""

    def slot_light(self, slot: int, on: bool) -> None: ...
    def beep(self, pattern: str) -> None: ...


@dataclass(frozen=True)
class CabinetOptions:
    night_window: dt.timedelta = dt.timedelta(seconds=60)
    timeouts: flow.Timeouts = field(default_factory=flow.Timeouts)
    door_held_open: dt.timedelta = dt.timedelta(seconds=120)
    slot_left_open: dt.timedelta = dt.timedelta(seconds=30)
    overdue_every: dt.timedelta = dt.timedelta(seconds=60)
    message_for: dt.timedelta = dt.timedelta(seconds=6)
    phone_confirmation_required: bool = True
    handover_valid_for: dt.timedelta = dt.timedelta(minutes=30)
    report_language: str = "zh"
    scan_interval: dt.timedelta = dt.timedelta(seconds=0.1)


def calendar_from(settings: Settings) -> policy.Calendar:
    hours = settings.business_hours
    return policy.Calendar(
        zone=settings.zone, start=hours.start, end=hours.end, weekdays=frozenset(hours.weekdays),
        holidays=frozenset(hours.holidays), extra_workdays=frozenset(hours.extra_workdays),
    )


def options_from(settings: Settings) -> CabinetOptions:
    c = settings.cabinet
    return CabinetOptions(
        night_window=dt.timedelta(seconds=c.night_window_s),
        timeouts=flow.Timeouts(
            choose=dt.timedelta(seconds=c.choose_timeout_s),
            manager=dt.timedelta(seconds=c.night_window_s),
            cosign=dt.timedelta(seconds=c.cosign_timeout_s),
            take=dt.timedelta(seconds=c.take_timeout_s),
            put_back=dt.timedelta(seconds=c.return_timeout_s),
            incoming=dt.timedelta(seconds=c.handover_tap_timeout_s),
            returner=dt.timedelta(seconds=c.returner_tap_timeout_s),
        ),
        door_held_open=dt.timedelta(seconds=c.door_held_open_s),
        slot_left_open=dt.timedelta(seconds=c.slot_left_open_s),
        phone_confirmation_required=c.phone_confirmation_required,
        handover_valid_for=dt.timedelta(minutes=c.handover_valid_min),
        report_language=settings.schedule.report_language,
        scan_interval=dt.timedelta(seconds=c.scan_interval_s),
    )


class CabinetError(Exception):
    """A screen request that cannot be carried out; ``code`` is a messages.py key."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


class Cabinet:
    def __init__(
        self,
        runtime: Runtime,
        locks: LockBank,
        *,
        calendar: policy.Calendar,
        options: CabinetOptions | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        door_is_open: Callable[[], bool] | None = None,
        indicators: Indicators | None = None,
    ) -> None:
        self.runtime = runtime
        self.audit = runtime.audit
        self.locks = locks
        self.calendar = calendar
        self.options = options or CabinetOptions()
        self.clock = clock
        self.door_is_open = door_is_open
        self.indicators = indicators
        self.session = flow.Session(self.options.timeouts)
        self.visit = Visit()
        self.message: Message | None = None
        self.version = 0
        self.code = runtime.settings.cabinet_id
        with DbSession(runtime.engine) as s:
            self.cabinet_id: uuid.UUID = records.cabinet_row(s, code=self.code).id
        self._lock = asyncio.Lock()
        self._turn_no = 0
        self._bus = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lockbus")
        self._present: dict[int, bool] = {}
        self._unlocked_since: dict[int, dt.datetime] = {}
        self._slot_open_alarmed: set[int] = set()
        self._door_open_since: dt.datetime | None = None
        self._door_alarmed = False
        self._bus_down = False
        self._reconcile_pending = False
        self._next_overdue_check: dt.datetime | None = None
        self._stopping = asyncio.Event()

    # ------------------------------------------------------------------- lifecycle
    async def start(self) -> dict[str, int]:
        """Relock everything, scan every slot and the door, reconcile with the records.

        If the scan fails (lock bus silent), reconciliation waits for the first scan that
        succeeds (``_scan``): resolved blind, a draw whose key was taken during the outage
        would be recorded as not taken and, once ``cabinet.reconciled`` is logged, never
        looked at again (K10; found by bench/crash_harness.py).
        """
        await self._driver(self.locks.lock_all)
        self._log(NewEvent(type="cabinet.started", payload={"slots": len(self.locks.slots)}))
        status = await self._status()
        if status is None:
            self._reconcile_pending = True
            summary = {"reconcile_pending": 1}
        else:
            summary = self._reconcile(status)
        if self.door_is_open is not None and self.door_is_open():
            self._door_open_since = self.clock()
        self._changed()
        return summary

    def _reconcile(self, status: dict[int, SlotState]) -> dict[str, int]:
        summary = reconcile(self, status)
        self._present = {n: bool(st.key_present) for n, st in status.items()}
        self._reconcile_pending = False
        return summary

    async def run(self) -> None:
        """Scan sensors and timers every ``scan_interval`` until ``stop()``."""
        poll_s = self.options.scan_interval.total_seconds()
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:  # a scan must never kill the loop; the fault is logged
                log.exception("cabinet tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), poll_s)

    def last_scan(self) -> dict[int, bool]:
        """Key presence per slot from the latest sensor scan (the K9 daily count reads it)."""
        return dict(self._present)

    def live_status(self) -> dict[str, Any]:
        """The running cabinet as the admin API shows it: session state, door, lock bus, and
        per slot the last scan's key presence, the key whose home it is and whether it is out."""
        with DbSession(self.runtime.engine) as s:
            numbers = sorted(s.scalars(select(Slot.number).where(Slot.cabinet_id == self.cabinet_id)))
            homes = {k.home_slot: k for k in records.cabinet_keys(s, cabinet_id=self.cabinet_id)}
        slots = []
        for number in sorted(set(numbers) | set(self._present)):
            key = homes.get(number)
            slots.append({
                "number": number, "key_present": self._present.get(number),
                "key_number": key.key_number if key else None,
                "on_loan": key.on_loan if key else None,
                "released": number in self.session.open_slots,
            })
        return {
            "cabinet": self.code,
            "state": self.session.state.value,
            "door_open": self.door_is_open() if self.door_is_open is not None else None,
            "lock_bus_ok": not self._bus_down,
            "reconcile_pending": self._reconcile_pending,
            "slots": slots,
        }

    def request_stop(self) -> None:
        """Ask ``run()`` to return (from a signal handler); ``stop()`` then secures the locks."""
        self._stopping.set()

    async def stop(self) -> None:
        self._stopping.set()
        async with self._turn():
            if self.session.state != flow.State.IDLE:
                await self._apply(self.session.handle(flow.Cancelled(self.clock(), "shutdown")))
        await self._driver(self.locks.lock_all)
        self._log(NewEvent(type="cabinet.stopped"))
        self._bus.shutdown(wait=True)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One input at a time (a tap, a choice, a tick); each is a numbered turn, so a
        refusal shown in an earlier turn does not hide how a later one ended."""
        async with self._lock:
            self._turn_no += 1
            yield

    # ---------------------------------------------------------------- what people do
    async def tap(self, uid: str) -> None:
        """A card or a key fob was read at the reader."""
        async with self._turn():
            await self._tap(uid.strip().upper())
            self._changed()

    async def choose_draw(self, key_numbers: list[str], reason_code: str,
                          reason_text: str | None = None) -> None:
        async with self._turn():
            try:
                await self._choose_draw(key_numbers, reason_code, reason_text)
            finally:
                self._changed()

    async def choose_return(self, key_number: str) -> None:
        async with self._turn():
            try:
                await self._choose_return(key_number)
            finally:
                self._changed()

    async def choose_intake(self, **details: Any) -> int:
        async with self._turn():
            try:
                return await self._choose_intake(details)
            finally:
                self._changed()

    async def start_handover(self, notes: str | None = None) -> None:
        """H1: the keeper at the screen hands over; the incoming keeper taps next."""
        async with self._turn():
            try:
                await self._start_handover(notes)
            finally:
                self._changed()

    async def accept_handover(self) -> None:
        """H1: the keeper at the screen (identified by their tap) accepts a waiting handover."""
        async with self._turn():
            try:
                await self._accept_handover(self.visit.person, self.visit.card)
            finally:
                self._changed()

    async def still_here(self) -> None:
        """The person touched the screen while choosing: give them the full choice time again
        (a custodian filling in the intake form must not lose it to the 60 s timer)."""
        async with self._turn():
            if self.session.state == flow.State.CHOOSING:
                self.session.handle(flow.StillHere(self.clock()))
                self._changed()

    async def cancel(self) -> None:
        async with self._turn():
            if self.session.state == flow.State.AWAIT_INCOMING and self.visit.handover_id:
                self._cancel_handover(self.visit.handover_id)
            if self.session.state != flow.State.IDLE:
                await self._apply(self.session.handle(flow.Cancelled(self.clock())))
            self._changed()

    async def tick(self) -> None:
        async with self._turn():
            now = self.clock()
            if self.session.expired(now):
                await self._apply(self.session.handle(flow.Timeout(now)))
            await self._scan(now)
            self._check_door(now)
            self._check_overdue(now)
            if self.message and now >= self.message.until:
                self.message = None
                self._changed()

    # ------------------------------------------------------------------------- taps
    async def _tap(self, uid: str) -> None:
        now = self.clock()
        with DbSession(self.runtime.engine) as s:
            card, person = records.card_holder(s, uid=uid)
            fob_key = None if card else records.key_by_fob(s, cabinet_id=self.cabinet_id, fob=uid)
        state = self.session.state
        if fob_key is not None and state == flow.State.CHOOSING:
            await self._start_return(fob_key, returner=self.visit.person)
            return
        if fob_key is not None and state == flow.State.IDLE:
            await self._ask_returner(fob_key)
            return
        if state == flow.State.AWAIT_RETURNER:
            if fob_key is None:  # the same fob again is ignored: the badge is what is asked for
                await self._returner_tap(uid, card, person, now)
            return
        if state == flow.State.IDLE:
            decision = policy.identify(card, person, now)
            if not decision.allowed:
                self._deny(decision, uid=uid, person=person)
                return
            assert person is not None and card is not None
            night = not self.calendar.is_business_time(now)
            self.visit = Visit(person=person, card=card, first_tap_at=now, night=night)
            if not night:
                self._load_choices(now)
            await self._apply(self.session.handle(flow.Identified(now, person.id, night)))
        elif state == flow.State.AWAIT_MANAGER:
            await self._manager_tap(uid, card, person, now)
        elif state == flow.State.AWAIT_COSIGN:
            decision = policy.decide_cosign(
                self.visit.person,  # type: ignore[arg-type]
                person or policy.PersonFacts(uuid.uuid4(), "?", frozenset()),
                policy.identify(card, person, now),
            )
            if not decision.allowed:
                self._deny(decision, uid=uid, person=person, end=False)
                return
            self.visit.cosigner = person
            await self._apply(self.session.handle(flow.Cosigned(now, person.id)))  # type: ignore[union-attr]
        elif state == flow.State.AWAIT_INCOMING:
            await self._accept_handover(person, card, uid=uid)
        elif state == flow.State.CHOOSING and person is not None and self.visit.person is not None \
                and person.id == self.visit.person.id:
            self._load_choices(now)  # a second tap by the same person refreshes the list
        else:
            self._say("busy", "info")

    async def _manager_tap(self, uid: str, card: policy.CardFacts | None,
                           person: policy.PersonFacts | None, now: dt.datetime) -> None:
        employee = self.visit.person
        assert employee is not None and self.visit.first_tap_at is not None
        with DbSession(self.runtime.engine) as s:
            roster = records.roster_at(s, at=now)
        decision = policy.decide_night_pair(
            employee=employee,
            manager=person or policy.PersonFacts(uuid.uuid4(), uid, frozenset()),
            manager_identified=policy.identify(card, person, now),
            first_tap_at=self.visit.first_tap_at,
            second_tap_at=now,
            window=self.options.night_window,
            roster=roster,
        )
        if not decision.allowed:
            self._deny(decision, uid=uid, person=person, employee=employee)
            await self._apply(self.session.handle(flow.Cancelled(now, decision.code)))
            self._say(decision.code, "error")
            return
        assert person is not None
        self.visit.manager = person
        self._log(NewEvent(type="night.pair", actors=[str(employee.id), str(person.id)],
                           decision="allow", rules=list(decision.rules),
                           payload={"employee": employee.name, "duty_manager": person.name,
                                    "seconds": (now - self.visit.first_tap_at).total_seconds()}))
        self._load_choices(now)
        await self._apply(self.session.handle(flow.ManagerConfirmed(now, person.id)))

    def _draw_context(self, s: DbSession, now: dt.datetime) -> policy.DrawContext:
        person, card = self.visit.person, self.visit.card
        assert person is not None and card is not None
        return policy.DrawContext(
            person=person, card=card, now=now, calendar=self.calendar,
            rights=records.rights_for(s, person=person),
            approvals=records.approvals_for(s, person_id=person.id),
            authorizations=records.authorizations_for(s, person_id=person.id),
            phone_confirmation_required=self.options.phone_confirmation_required,
        )

    def _load_choices(self, now: dt.datetime) -> None:
        with DbSession(self.runtime.engine) as s:
            ctx = self._draw_context(s, now)
            keys = records.cabinet_keys(s, cabinet_id=self.cabinet_id)
        self.visit.choices = policy.drawable(ctx, keys)

    # --------------------------------------------------------------------- handover
    async def _start_handover(self, notes: str | None) -> None:
        person, card = self.visit.person, self.visit.card
        if self.session.state not in flow.SIGNED_IN or person is None or card is None:
            raise CabinetError("busy", f"no handover can start in state {self.session.state}")
        decision = policy.decide_handover_signer(person, Decision.allow("identified", ""))
        if not decision.allowed:
            self._deny(decision, uid=card.uid, person=person)
            raise CabinetError(decision.code)
        now = self.clock()
        try:
            with tx.write(self.audit) as s:
                row = handovers.start(
                    s, self.audit, cabinet=s.get_one(CabinetRow, self.cabinet_id),
                    outgoing_id=person.id, card=card.uid, zone=self.calendar.zone,
                    sensed=self.last_scan() or None, notes=notes, now=now,
                    valid_for=self.options.handover_valid_for,
                )
                self.visit.handover_id = row.id
        except Conflict as exc:
            raise CabinetError("handover_pending", str(exc)) from None
        await self._apply(self.session.handle(flow.HandoverStarted(now)))

    async def _accept_handover(self, person: policy.PersonFacts | None,
                               card: policy.CardFacts | None, *, uid: str | None = None) -> None:
        """The incoming keeper's badge signs: tapped while waiting, or from their own menu."""
        now = self.clock()
        state = self.session.state
        if state not in (flow.State.AWAIT_INCOMING, *flow.SIGNED_IN):
            raise CabinetError("busy", f"no handover can be accepted in state {state}")
        identified = policy.identify(card, person, now)
        with DbSession(self.runtime.engine) as s:
            waiting = handovers.pending(s, cabinet_id=self.cabinet_id, now=now)
            outgoing = records.person_facts(waiting.outgoing) if waiting is not None else None
        if waiting is None or outgoing is None:
            raise CabinetError("handover_none")
        decision = policy.decide_handover_signer(
            person or policy.PersonFacts(uuid.uuid4(), uid or "?", frozenset()), identified,
            outgoing=outgoing,
        )
        if not decision.allowed:
            self._deny(decision, uid=uid or (card.uid if card else None), person=person,
                       end=False)
            if state in flow.SIGNED_IN:
                raise CabinetError(decision.code)
            return  # keep waiting for the right person's tap
        assert person is not None and card is not None
        try:
            with tx.write(self.audit) as s:
                handovers.accept(
                    s, self.audit, cabinet_id=self.cabinet_id, incoming_id=person.id,
                    card=card.uid, zone=self.calendar.zone,
                    language=self.options.report_language, handover_id=waiting.id, now=now,
                )
        except (Conflict, InvalidRequest) as exc:
            raise CabinetError("handover_none", str(exc)) from None
        self._beep("ok")
        await self._apply(self.session.handle(flow.HandoverAccepted(now, person.id)))

    def _cancel_handover(self, handover_id: uuid.UUID) -> None:
        person = self.visit.person
        with contextlib.suppress(Conflict), tx.write(self.audit) as s:
            handovers.cancel(s, self.audit, handover_id=handover_id,
                             actors=[str(person.id)] if person else [],
                             reason="cancelled_at_kiosk", now=self.clock())

    # ------------------------------------------------------------------------ draws
    async def _choose_draw(self, key_numbers: list[str], reason_code: str,
                           reason_text: str | None) -> None:
        if self.session.state != flow.State.CHOOSING:
            raise CabinetError("busy", f"no draw can be chosen in state {self.session.state}")
        if reason_code not in REASONS or (reason_code == "other" and not (reason_text or "").strip()):
            raise CabinetError("reason_required")
        if not key_numbers or len(set(key_numbers)) != len(key_numbers) or len(key_numbers) > 5:
            raise CabinetError("key_unknown", "choose one to five different keys")
        now = self.clock()
        plans: dict[int, DrawPlan] = {}
        needs: set[policy.Need] = set()
        with DbSession(self.runtime.engine) as s:
            ctx = self._draw_context(s, now)
            for number in key_numbers:
                key = records.key_by_number(s, cabinet_id=self.cabinet_id, key_number=number)
                if key is None:
                    raise CabinetError("key_unknown", number)
                decision = policy.decide_draw(ctx, key)
                if not decision.allowed:
                    self._deny(decision, person=self.visit.person, key=key, end=False)
                    raise CabinetError(decision.code, decision.reason)
                assert key.home_slot is not None
                plans[key.home_slot] = DrawPlan(key, decision, reason_code, reason_text)
                needs |= decision.needs
        if policy.Need.DUTY_MANAGER in needs and self.visit.manager is None:
            raise CabinetError("await_manager")  # cannot happen: night visits start there
        self.visit.draws = plans
        event = flow.DrawChosen(now, tuple(plans), needs_cosign=policy.Need.COSIGN in needs)
        await self._apply(self.session.handle(event))

    def _record_intents(self, slots: tuple[int, ...]) -> None:
        """Durable intent events, one per slot, committed before any lock moves."""
        v = self.visit
        for slot in slots:
            actors = [str(p.id) for p in (v.person, v.manager, v.cosigner) if p is not None]
            actors += list(v.remote_admins)
            if slot in v.draws:
                plan = v.draws[slot]
                event = NewEvent(
                    type="draw.intent", actors=actors, slot=slot, key_number=plan.key.key_number,
                    decision="allow", rules=list(plan.decision.rules),
                    payload={
                        "borrower": str(v.person.id) if v.person else None,
                        "duty_manager": str(v.manager.id) if v.manager else None,
                        "issuer": str(v.cosigner.id) if v.cosigner else None,
                        "reason_code": plan.reason_code, "reason_text": plan.reason_text,
                        "approval": str(plan.decision.approval_id) if plan.decision.approval_id else None,
                        "authorization": str(plan.decision.authorization_id)
                        if plan.decision.authorization_id else None,
                        **({"remote_admins": list(v.remote_admins)} if v.remote_admins else {}),
                    },
                )
            elif v.returning is not None:
                event = NewEvent(type="return.intent", actors=actors, slot=slot,
                                 key_number=v.returning.key_number, rules=["K4"],
                                 payload={"returner": str(v.person.id) if v.person else None})
            else:
                event = NewEvent(type="intake.intent", actors=actors, slot=slot,
                                 key_number=(v.intake or {}).get("key_number"), rules=["K1"],
                                 payload={k: str(val) for k, val in (v.intake or {}).items()})
            v.intents[slot] = self._log(event).seq

    # --------------------------------------------------------------- remote unlock
    def check_remote_draw(self, key_number: str, person_id: uuid.UUID, reason_code: str,
                          reason_text: str | None) -> tuple[policy.KeyFacts, policy.PersonFacts]:
        """Whether a remote unlock of ``key_number`` for ``person_id`` could be carried out
        now, the session aside: raises ``CabinetError`` if not. Reads only."""
        if reason_code not in REASONS or (reason_code == "other" and not (reason_text or "").strip()):
            raise CabinetError("reason_required")
        with DbSession(self.runtime.engine) as s:
            key = records.key_by_number(s, cabinet_id=self.cabinet_id, key_number=key_number)
            person = s.get(Person, person_id)
            facts = records.person_facts(person) if person is not None else None
        if key is None:
            raise CabinetError("key_unknown", key_number)
        if key.status != "active":
            raise CabinetError("key_retired", key_number)
        if key.home_slot is None:
            raise CabinetError("key_no_slot", key_number)
        if key.on_loan:
            raise CabinetError("key_out", key_number)
        if not self._present.get(key.home_slot, False):
            raise CabinetError("key_not_in_slot", f"the sensor of slot {key.home_slot} sees no key")
        if facts is None:
            raise CabinetError("person_unknown", str(person_id))
        if not facts.active:
            raise CabinetError("person_inactive", facts.name)
        return key, facts

    async def remote_draw(self, key_number: str, person_id: uuid.UUID, reason_code: str,
                          reason_text: str | None, admins: tuple[str, str]) -> int:
        """Release a key's slot for ``person_id`` on two different admins' word (K2), logged
        like a night opening (K8): the intent names both admins, then the normal flow records
        the loan when the key leaves, or ``draw.not_taken``. Refused (``CabinetError``) unless
        the cabinet is idle and the key is in and active. Returns the slot number."""
        async with self._turn():
            try:
                return await self._remote_draw(key_number, person_id, reason_code, reason_text,
                                               admins)
            finally:
                self._changed()

    async def _remote_draw(self, key_number: str, person_id: uuid.UUID, reason_code: str,
                           reason_text: str | None, admins: tuple[str, str]) -> int:
        if self.session.state != flow.State.IDLE:
            raise CabinetError("busy", f"the cabinet is in use ({self.session.state})")
        if len(set(admins)) != 2:
            raise CabinetError("same_person_twice", "a remote unlock needs two different admins")
        key, person = self.check_remote_draw(key_number, person_id, reason_code, reason_text)
        assert key.home_slot is not None
        now = self.clock()
        decision = policy.Decision.allow(
            "remote_unlock", f"remote unlock confirmed by {admins[0]} and {admins[1]}", "K2", "K8")
        self.visit = Visit(person=person, first_tap_at=now, remote_admins=tuple(admins))
        self.visit.draws = {key.home_slot: DrawPlan(key, decision, reason_code, reason_text)}
        await self._apply(self.session.handle(flow.Identified(now, person.id)))
        await self._apply(self.session.handle(flow.DrawChosen(now, (key.home_slot,))))
        if self.session.state != flow.State.RELEASING:
            raise CabinetError("lock_fault", f"slot {key.home_slot} did not unlock")
        return key.home_slot

    # ---------------------------------------------------------------------- returns
    async def _choose_return(self, key_number: str) -> None:
        if self.session.state not in (flow.State.CHOOSING, flow.State.IDLE):
            raise CabinetError("busy")
        with DbSession(self.runtime.engine) as s:
            key = records.key_by_number(s, cabinet_id=self.cabinet_id, key_number=key_number)
        if key is None:
            raise CabinetError("key_unknown", key_number)
        if self.session.state == flow.State.IDLE:
            await self._ask_returner(key)  # nobody signed in: who is returning it?
        else:
            await self._start_return(key, returner=self.visit.person)

    async def _ask_returner(self, key: policy.KeyFacts) -> None:
        """K4: a return records who returned the key, so a fob tap with nobody signed in asks
        for the returner's badge before the slot opens (or an explicit "without badge")."""
        if not key.on_loan or key.home_slot is None:
            self._say("not_on_loan", "error")
            return
        self.visit = Visit(returning=key)
        await self._apply(self.session.handle(flow.FobTapped(self.clock(), key.home_slot)))

    async def _returner_tap(self, uid: str, card: policy.CardFacts | None,
                            person: policy.PersonFacts | None, now: dt.datetime) -> None:
        decision = policy.decide_returner(card, person, now)
        if not decision.allowed:
            self._deny(decision, uid=uid, person=person, end=False)
            return  # still waiting for a badge that identifies someone
        assert person is not None and self.visit.returning is not None
        self.visit.person, self.visit.card = person, card
        await self._start_return(self.visit.returning, returner=person)

    async def return_without_badge(self) -> None:
        """K5: the returner has no badge with them: the return opens and is flagged."""
        async with self._turn():
            try:
                if self.session.state != flow.State.AWAIT_RETURNER or self.visit.returning is None:
                    raise CabinetError("busy", f"nothing to return in state {self.session.state}")
                await self._start_return(self.visit.returning, returner=None)
            finally:
                self._changed()

    async def _start_return(self, key: policy.KeyFacts, returner: policy.PersonFacts | None) -> None:
        if not key.on_loan or key.home_slot is None:
            self._say("not_on_loan", "error")
            return
        if self.session.state == flow.State.IDLE:
            self.visit = Visit(person=returner)
        self.visit.returning = key
        await self._apply(self.session.handle(flow.ReturnChosen(self.clock(), key.home_slot)))

    # ----------------------------------------------------------------------- intake
    async def _choose_intake(self, details: dict[str, Any]) -> int:
        person = self.visit.person
        if self.session.state != flow.State.CHOOSING or person is None:
            raise CabinetError("busy")
        if "custodian" not in person.roles:
            self._deny(policy.Decision.deny("intake_not_custodian", "intake needs a custodian", "K1"),
                       person=person, end=False)
            raise CabinetError("intake_not_custodian")
        required = ("key_number", "label", "delivered_by", "delivered_by_department", "group_code")
        missing = [k for k in required if not str(details.get(k) or "").strip()]
        if missing:
            raise CabinetError("intake_incomplete", f"missing: {', '.join(missing)}")
        key_count = int(details.get("key_count") or 1)
        if not 1 <= key_count <= 99:
            raise CabinetError("intake_incomplete", "key_count must be 1..99")
        with DbSession(self.runtime.engine) as s:
            if s.query(Key).filter(Key.key_number == details["key_number"]).first():
                raise CabinetError("duplicate_key_number", str(details["key_number"]))
            if s.query(KeyGroup).filter(KeyGroup.code == details["group_code"]).first() is None:
                raise CabinetError("intake_incomplete", f"unknown key group {details['group_code']}")
            free = records.free_slots(s, cabinet_id=self.cabinet_id)
        if not free:
            raise CabinetError("no_free_slot")
        slot = int(details.get("slot") or free[0])
        if slot not in free:
            raise CabinetError("no_free_slot", f"slot {slot} is not free")
        self.visit.intake = {**details, "key_count": key_count}
        await self._apply(self.session.handle(flow.IntakeChosen(self.clock(), slot)))
        return slot

    # ------------------------------------------------------------------- commands
    async def _apply(self, commands: list[flow.Command]) -> None:
        if commands:
            self._changed()  # the screen's long-poll wakes on every step, timers and sensors too
        for command in commands:
            if isinstance(command, flow.Unlock):
                if not await self._unlock(command.slots):
                    return  # the fault handling already ended the session
            elif isinstance(command, flow.Relock):
                for slot in command.slots:
                    self._light(slot, False)
            elif isinstance(command, flow.Taken):
                self._record_loan(command.slot)
            elif isinstance(command, flow.Returned):
                self._close_loan(command.slot)
            elif isinstance(command, flow.Received):
                self._register_key(command.slot)
            elif isinstance(command, flow.NotTaken):
                for slot in command.slots:
                    self._log(self._outcome("draw.not_taken", slot, rules=["K3"]))
                    self.visit.resolved.add(slot)
            elif isinstance(command, flow.Ended):
                self._ended(command.reason)
            elif isinstance(command, flow.Show) and command.screen not in ("idle", "choose"):
                self._say(command.screen, "info", for_s=3600)

    async def _unlock(self, slots: tuple[int, ...]) -> bool:
        """Log the intents durably, then move the locks; False if the log or a lock failed."""
        try:
            self._record_intents(slots)
        except (AuditError, SQLAlchemyError) as exc:
            # Disk full, database locked: no intent, so no lock may move. Nothing more can
            # be logged either; an intent already written for an earlier slot is resolved
            # from the sensors at the next start.
            log.error("intent not durable, nothing unlocked: %s", exc)
            self.visit.resolved.update(self.visit.intents)
            self.visit.intents.clear()
            await self._apply(self.session.handle(flow.Cancelled(self.clock(), "storage_fault")))
            self._say("storage_fault", "error")
            self._beep("deny")
            return False
        for slot in slots:
            try:
                await self._driver(self.locks.unlock, slot)
            except DriverError as exc:
                await self._lock_fault(slot, exc)
                return False
            self._unlocked_since[slot] = self.clock()
            self._light(slot, True)
        self._beep("ok")
        return True

    async def _lock_fault(self, slot: int, exc: Exception) -> None:
        said = "lock_fault"  # "staff alerted": true only once the alarm is recorded
        try:
            with tx.write(self.audit) as s:
                alarm_service.raise_alarm(
                    s, self.audit, kind="lock_fault", message=f"slot {slot} did not unlock: {exc}",
                    rule="K2", actors=[], cabinet_id=self.cabinet_id,
                    slot_id=records.slot_id(s, cabinet_id=self.cabinet_id, number=slot),
                    payload={"intent_seq": self.visit.intents.get(slot)}, at=self.clock(),
                )
            self._log(self._outcome("unlock.failed", slot, rules=["K2"], detail=str(exc)))
        except (AuditError, SQLAlchemyError) as fault:
            log.error("lock fault on slot %s not recorded: %s", slot, fault)
            said = "lock_fault_unrecorded"
        self.visit.resolved.add(slot)
        await self._apply(self.session.handle(flow.Cancelled(self.clock(), "lock_fault")))
        self._say(said, "error")
        self._beep("deny")

    def _outcome(self, type_: str, slot: int, *, rules: list[str], **payload: Any) -> NewEvent:
        v = self.visit
        key = v.draws[slot].key if slot in v.draws else v.returning
        return NewEvent(
            type=type_, slot=slot, key_number=key.key_number if key else None, rules=rules,
            actors=[str(v.person.id)] if v.person else [],
            payload={"intent_seq": v.intents.get(slot), **payload},
        )

    def _record_loan(self, slot: int) -> None:
        plan = self.visit.draws[slot]
        v = self.visit
        assert v.person is not None
        now = self.clock()
        with write_session(self.runtime.engine) as s:
            loan = Loan(
                key_id=plan.key.id, cabinet_id=self.cabinet_id, borrower_id=v.person.id,
                issuer_id=v.cosigner.id if v.cosigner else None,
                duty_manager_id=v.manager.id if v.manager else None,
                approval_id=plan.decision.approval_id,
                authorization_id=plan.decision.authorization_id,
                reason_code=plan.reason_code, reason_text=plan.reason_text,
                drawn_at=now, due_at=policy.due_at(plan.key, now, self.calendar),
            )
            s.add(loan)
            s.flush()
            if plan.decision.approval_id:
                records.consume_approval(s, approval_id=plan.decision.approval_id, loan_id=loan.id)
            event = self.audit.append_in(s, NewEvent(
                type="key.drawn", slot=slot, key_number=plan.key.key_number, decision="allow",
                rules=list(plan.decision.rules),
                actors=[str(p.id) for p in (v.person, v.manager, v.cosigner) if p],
                payload={"loan": str(loan.id), "intent_seq": v.intents.get(slot),
                         "due_at": loan.due_at.isoformat(), "reason_code": plan.reason_code,
                         "reason_text": plan.reason_text, "borrower_name": v.person.name,
                         "issuer": v.cosigner.name if v.cosigner else "cabinet",
                         **({"remote_admins": list(v.remote_admins)} if v.remote_admins else {})},
            ))
            loan.draw_event_seq = event.seq
        self.visit.resolved.add(slot)
        self.audit.notify_committed(event)

    def _close_loan(self, slot: int) -> None:
        key = self.visit.returning
        assert key is not None
        returner = self.visit.person
        now = self.clock()
        with tx.write(self.audit) as s:
            loan = records.open_loan(s, key_id=key.id)
            self.visit.resolved.add(slot)
            if loan is None:  # closed meanwhile by a start-up resolution: nothing to close
                return
            decision = policy.decide_return(borrower_id=loan.borrower_id,
                                            returner_id=returner.id if returner else None)
            loan.returned_at = max(now, loan.drawn_at)  # a Pi without RTC may step back in time
            loan.returned_by_id = returner.id if returner else None
            loan.returned_by_other = decision.code != "returned"
            loan.return_slot_id = records.slot_id(s, cabinet_id=self.cabinet_id, number=slot)
            event = tx.log(s, self.audit, NewEvent(
                type="key.returned", slot=slot, key_number=key.key_number, decision="allow",
                rules=list(decision.rules), actors=[str(returner.id)] if returner else [],
                payload={"loan": str(loan.id), "intent_seq": self.visit.intents.get(slot),
                         "returned_by_other": loan.returned_by_other, "code": decision.code,
                         "overdue": now > loan.due_at},
            ))
            loan.return_event_seq = event.seq
            if loan.returned_by_other:
                alarm_service.raise_alarm(
                    s, self.audit, kind="returned_by_other", rule="K5", message=decision.reason,
                    actors=[str(returner.id)] if returner else [], cabinet_id=self.cabinet_id,
                    slot_id=loan.return_slot_id, key_id=key.id, loan_id=loan.id, at=now,
                )

    def _register_key(self, slot: int) -> None:
        details = self.visit.intake or {}
        custodian = self.visit.person
        assert custodian is not None
        try:
            with write_session(self.runtime.engine) as s:
                group = s.query(KeyGroup).filter(KeyGroup.code == details["group_code"]).one()
                room = str(details.get("room_number") or "").strip()
                unit = s.query(Unit).filter(Unit.room_number == room).first() if room else None
                key = Key(
                    key_number=str(details["key_number"]), label=str(details["label"]),
                    group_id=group.id, unit_id=unit.id if unit else None,
                    category=KeyCategory(details.get("category") or "unit"),
                    copies=int(details.get("key_count") or 1),
                    fob_tag=str(details["fob_tag"]).upper() if details.get("fob_tag") else None,
                    home_slot_id=records.slot_id(s, cabinet_id=self.cabinet_id, number=slot),
                )
                s.add(key)
                s.flush()
                event = self.audit.append_in(s, NewEvent(
                    type="key.intake", slot=slot, key_number=key.key_number, decision="allow",
                    rules=["K1"], actors=[str(custodian.id)],
                    payload={"delivered_by": details["delivered_by"],
                             "delivered_by_department": details["delivered_by_department"],
                             "room_number": room, "key_count": key.copies,
                             "received_by": custodian.name, "intent_seq": self.visit.intents.get(slot)},
                ))
                s.add(IntakeRecord(
                    key_id=key.id, delivered_by_name=str(details["delivered_by"]),
                    delivered_by_department=str(details["delivered_by_department"]),
                    room_number=room or "-", key_count=key.copies,
                    deliverer_confirmed=bool(details.get("deliverer_confirmed", True)),
                    custodian_id=custodian.id, slot_id=key.home_slot_id,
                    note=details.get("note"), event_seq=event.seq,
                ))
        except IntegrityError as exc:
            self._log(self._outcome("intake.failed", slot, rules=["K1"], detail=str(exc.orig)))
            self.visit.resolved.add(slot)
            self._say("duplicate_key_number", "error")
            return
        self.visit.resolved.add(slot)
        self.audit.notify_committed(event)

    def _ended(self, reason: str) -> None:
        try:
            self._log_unfinished(reason)
        finally:  # whatever the log could take, the screen ends the visit and says why
            level = "ok" if reason in ("drawn", "returned", "received", "handed_over") else "info"
            refused_now = (self.message is not None and self.message.level == "error"
                           and self.message.turn == self._turn_no)
            if reason not in ("lock_fault",) and not refused_now:
                self._say(reason, level)
            self.visit = Visit()

    def _log_unfinished(self, reason: str) -> None:
        """What the visit opened and did not finish: each slot released and not resolved."""
        for slot in self.visit.intents:
            self._light(slot, False)
            if slot in self.visit.resolved:
                continue
            kind = "draw" if slot in self.visit.draws else (
                "return" if self.visit.returning is not None else "intake")
            rules = {"draw": ["K3"], "return": ["K4"], "intake": ["K1"]}[kind]
            self._log(self._outcome(f"{kind}.abandoned", slot, rules=rules, reason=reason))
        returning = self.visit.returning
        if returning is not None and not self.visit.intents and reason != "storage_fault":
            # K4: a fob was tapped but no returner came forward; the key stays on loan and
            # the log says so (a key seen at the cabinet and not put back is worth knowing).
            # After a storage fault nothing can be logged: the fault itself is the record.
            self._log(NewEvent(
                type="return.abandoned", slot=returning.home_slot,
                key_number=returning.key_number, rules=["K4"],
                actors=[str(self.visit.person.id)] if self.visit.person else [],
                payload={"reason": reason, "opened": False},
            ))

    # ------------------------------------------------------------------------ denials
    def _deny(self, decision: policy.Decision, *, uid: str | None = None,
              person: policy.PersonFacts | None = None, key: policy.KeyFacts | None = None,
              employee: policy.PersonFacts | None = None, end: bool = True) -> None:
        """Every denial is logged with its rule ids and cause, and shown plainly."""
        actors = [str(p.id) for p in (employee, person) if p is not None]
        self._log(NewEvent(
            type="access.denied", actors=actors, decision="deny", rules=list(decision.rules),
            key_number=key.key_number if key else None, slot=key.home_slot if key else None,
            payload={"code": decision.code, "reason": decision.reason, "card": uid,
                     "state": self.session.state.value},
        ))
        self._say(decision.code, "error")
        self._beep("deny")

    # ------------------------------------------------------------------------ sensors
    async def _status(self) -> dict[int, SlotState] | None:
        try:
            status = await self._driver(self.locks.status)
        except DriverError as exc:
            if not self._bus_down:
                self._bus_down = True
                self._alarm("bus_fault", f"lock bus not answering: {exc}", rule="K2")
            return None
        if self._bus_down:
            self._bus_down = False
            self._log(NewEvent(type="lock.bus_restored"))
        return status

    async def _scan(self, now: dt.datetime) -> None:
        status = await self._status()
        if status is None:
            return
        if self._reconcile_pending and self.session.state == flow.State.IDLE:
            self._reconcile(status)  # deferred by start(): the bus was silent then
            self._changed()
            return
        for slot, st in status.items():
            present = bool(st.key_present)
            was = self._present.get(slot, present)
            self._present[slot] = present
            if was and not present:
                await self._key_left(slot, now)
            elif present and not was:
                await self._key_arrived(slot, st, now)
            self._check_slot_open(slot, st, now)

    async def _key_left(self, slot: int, now: dt.datetime) -> None:
        if self.session.state == flow.State.RELEASING and slot in self.session.open_slots:
            await self._apply(self.session.handle(flow.KeyRemoved(now, slot)))
            return
        with DbSession(self.runtime.engine) as s:
            key = records.key_in_slot(s, cabinet_id=self.cabinet_id, slot=slot)
        self._alarm("key_removed_unauthorised",
                    f"a key left slot {slot}, which was not released", rule="K2", slot=slot,
                    key=key)

    async def _key_arrived(self, slot: int, st: SlotState, now: dt.datetime) -> None:
        if self.session.state in (flow.State.RETURNING, flow.State.INTAKE) \
                and slot in self.session.open_slots:
            with DbSession(self.runtime.engine) as s:
                expected = records.key_in_slot(s, cabinet_id=self.cabinet_id, slot=slot)
            if st.fob and expected is not None and self.session.state == flow.State.RETURNING:
                with DbSession(self.runtime.engine) as s:
                    fob_key = records.key_by_fob(s, cabinet_id=self.cabinet_id, fob=st.fob)
                if fob_key is not None and fob_key.id != expected.id:
                    self._alarm("wrong_slot", f"key {fob_key.key_number} put in slot {slot}, "
                                f"home of {expected.key_number}", rule="K4", slot=slot, key=fob_key)
                    return
            await self._apply(self.session.handle(flow.KeyInserted(now, slot)))
            return
        self._alarm("key_inserted_unexpectedly", f"a key appeared in slot {slot} outside a return",
                    rule="K4", slot=slot)

    def _check_slot_open(self, slot: int, st: SlotState, now: dt.datetime) -> None:
        """A slot still unlocked long after its session let go of it is a fault (K2)."""
        if st.locked:
            self._unlocked_since.pop(slot, None)
            self._slot_open_alarmed.discard(slot)
            return
        if slot in self.session.open_slots:
            return
        since = self._unlocked_since.setdefault(slot, now)
        if slot not in self._slot_open_alarmed and now - since >= self.options.slot_left_open:
            self._alarm("slot_left_open", f"slot {slot} is still open", rule="K2", slot=slot)
            self._slot_open_alarmed.add(slot)  # once per opening

    def _check_door(self, now: dt.datetime) -> None:
        if self.door_is_open is None:
            return
        is_open = self.door_is_open()
        if not is_open:
            self._door_open_since, self._door_alarmed = None, False
            return
        if self._door_open_since is None:
            self._door_open_since = now
            if self.session.state == flow.State.IDLE:
                self._alarm("door_forced", "the cabinet door was opened with no session", rule="K2")
                self._door_alarmed = True
        if not self._door_alarmed and now - self._door_open_since >= self.options.door_held_open:
            self._alarm("door_held_open", "the cabinet door is held open", rule="K2")
            self._door_alarmed = True

    def _check_overdue(self, now: dt.datetime) -> None:
        if self._next_overdue_check is not None and now < self._next_overdue_check:
            return
        self._next_overdue_check = now + self.options.overdue_every
        with tx.write(self.audit) as s:
            for loan in records.loans_out(s, cabinet_id=self.cabinet_id):
                if loan.due_at <= now and not records.has_open_alarm(s, kind="key_overdue", loan_id=loan.id):
                    alarm_service.raise_alarm(
                        s, self.audit, kind="key_overdue", rule="K9", actors=[],
                        cabinet_id=self.cabinet_id, key_id=loan.key_id, loan_id=loan.id,
                        message=f"{loan.key.key_number} drawn by {loan.borrower.name} was due "
                                f"{loan.due_at.isoformat()}", at=now,
                    )

    # ------------------------------------------------------------------------ helpers
    def _alarm(self, kind: str, message: str, *, rule: str | None = None, slot: int | None = None,
               key: policy.KeyFacts | None = None) -> None:
        with tx.write(self.audit) as s:
            alarm_service.raise_alarm(
                s, self.audit, kind=kind, message=message, rule=rule, actors=[],
                cabinet_id=self.cabinet_id, key_id=key.id if key else None,
                slot_id=records.slot_id(s, cabinet_id=self.cabinet_id, number=slot)
                if slot is not None else None, at=self.clock(),
            )
        self._beep("alarm")
        self._changed()

    def _log(self, event: NewEvent) -> AppendedEvent:
        return self.audit.append(event)

    async def _driver(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._bus, fn, *args)

    def _light(self, slot: int, on: bool) -> None:
        if self.indicators is not None:
            try:
                self.indicators.slot_light(slot, on)
            except DriverError:
                log.warning("slot LED %s failed", slot)

    def _beep(self, pattern: str) -> None:
        if self.indicators is not None:
            try:
                self.indicators.beep(pattern)
            except DriverError:
                log.warning("buzzer failed")

    def _say(self, code: str, level: str, *, for_s: float | None = None) -> None:
        duration = dt.timedelta(seconds=for_s) if for_s else self.options.message_for
        self.message = Message(code, level, self.clock() + duration, turn=self._turn_no)

    def _changed(self) -> None:
        self.version += 1

    # ------------------------------------------------------------------------- screen
    def screen(self) -> dict[str, Any]:
        """Everything the kiosk page shows, in one JSON-able snapshot (kiosk/cabinet_screen.py)."""
        return cabinet_screen.snapshot(
            visit=self.visit, session=self.session, message=self.message, now=self.clock(),
            version=self.version, engine=self.runtime.engine, cabinet_id=self.cabinet_id,
        )
