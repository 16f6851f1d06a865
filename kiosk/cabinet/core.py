"""The cabinet core: the loop, the visit and the drivers; every flow is a handler on it.

Everything runs on one asyncio loop. Taps (from a reader thread or the simulator), screen
choices and the sensor scan are serialised by one lock, so the session state machine only
ever sees one event at a time. Driver calls run in a single worker thread (a serial bus is
one conversation). The audit rule is: the intent event is committed before a lock moves,
and the outcome (loan recorded, loan closed, key registered) is committed after the
sensors confirm it.

What a person does is not here but in the flows (``kiosk.cabinet.flows``: draw, return,
intake, handover, night pairing, remote unlock, and the sensor supervisor). Like a printer
object in Klipper, each flow is constructed with the core, registers itself by name
(``register_flow``; another flow finds it with ``lookup``; see ``registry.py``) and tells
the core which inputs it handles: the tap in a session state, a session command
(``Taken``, ``Returned``...), the timeout of a state, the intent event of a kind of
opening, a job each tick, how a visit that ended well is told. The core only routes; one
flow owns each step, and ``kiosk.records`` owns each kind of fact.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import Session as DbSession

from drivers.errors import DriverError
from drivers.locks.base import LockBank
from kiosk import cabinet_screen, policy, records
from kiosk import session as flow
from kiosk.audit import NewEvent
from kiosk.cabinet.arming import Arming
from kiosk.cabinet.bus import LockBus
from kiosk.cabinet.contract import Core
from kiosk.cabinet.facts import CabinetFacts
from kiosk.cabinet.flows import (
    DEFAULT_FLOWS,
    DrawFlow,
    HandoverFlow,
    IntakeFlow,
    PinFlow,
    RemoteUnlockFlow,
    ReturnFlow,
    SensorSupervisor,
    StockFlow,
)
from kiosk.cabinet.opening import Opening
from kiosk.cabinet.options import CabinetError, CabinetOptions, Indicators
from kiosk.cabinet.registry import Registry
from kiosk.cabinet.writer import Writer
from kiosk.heap import collections_paused
from kiosk.runtime import Runtime
from kiosk.services import alarms as alarm_service
from kiosk.services import tx
from kiosk.store.types import utcnow
from kiosk.visit import Message, Visit

log = logging.getLogger("kiosk.cabinet")

T = TypeVar("T")

ENDED_WELL = ("drawn", "returned", "received", "handed_over", "stocked")


class Cabinet(Registry):
    """The core: owns the loop, the visit, the session, the drivers and the screen message,
    and routes every input to the flow registered for it. Flows see it as a
    ``kiosk.cabinet.contract.Core``."""

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
        flows: Iterable[Callable[[Core], object]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.audit = runtime.audit
        self.engine = runtime.engine
        self.locks = locks
        self.calendar = calendar
        self.options = options or CabinetOptions()
        self.alarm_owners: Mapping[str, str] = runtime.settings.alarms.table()
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
        self.turn_no = 0
        self.bus = LockBus()  # the drivers' calls, in order; an idle bus lends the writer a turn
        self.arming = Arming(locks, self.bus)
        self.writer = Writer(runtime.audit, name=f"writer-{self.code}")
        self.facts = CabinetFacts(self.engine, self.audit, self.cabinet_id)
        self.opening = Opening(self)
        self._stopping = asyncio.Event()
        Registry.__init__(self)
        for make in DEFAULT_FLOWS if flows is None else flows:
            make(self)

    @property
    def sensors(self) -> SensorSupervisor:
        return self.lookup("sensors", SensorSupervisor)

    # ------------------------------------------------------------------- lifecycle
    async def start(self) -> dict[str, int]:
        """Relock everything, then the sensor supervisor scans and reconciles (K10)."""
        await self.driver(self.locks.lock_all)
        self.log(NewEvent(type="cabinet.started", payload={"slots": len(self.locks.slots)}))
        summary = await self.sensors.start()
        await self.writer.drain(self.options.write_wait.total_seconds())
        self.changed()
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

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for (the screen's long-poll ends on it)."""
        return self._stopping.is_set()

    def last_scan(self) -> dict[int, bool]:
        """Key presence per slot from the latest sensor scan (the K9 daily count reads it)."""
        return self.sensors.last_scan()

    def last_fobs(self) -> dict[int, str | None] | None:
        """Identity cabinets: the fob ROM per slot from the latest scan (the K9 daily count
        compares identities); None on a presence-only cabinet."""
        return self.sensors.last_fobs()

    def live_status(self) -> dict[str, Any]:
        """The running cabinet as the admin API shows it (kiosk/cabinet/flows/sensors.py)."""
        return self.sensors.live_status()

    def request_stop(self) -> None:
        """Ask ``run()`` to return (from a signal handler); ``stop()`` then secures the locks."""
        self._stopping.set()

    async def stop(self) -> None:
        self._stopping.set()
        async with self.turn():
            if self.session.state != flow.State.IDLE:
                await self.apply(self.session.handle(flow.Cancelled(self.clock(), "shutdown")))
        await self.driver(self.locks.lock_all)
        self.log(NewEvent(type="cabinet.stopped"))
        await self.writer.aclose()
        self.facts.close()
        self.bus.shutdown(wait=True)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """One input at a time (a tap, a choice, a tick); each is a numbered turn, so a
        refusal shown in an earlier turn does not hide how a later one ended."""
        async with self._lock:
            self.turn_no += 1
            try:
                yield
            finally:
                # What the turn queued has normally landed before the next input is taken;
                # with the database busy it lands later, in order, and the loop goes on.
                await self.writer.drain(self.options.write_wait.total_seconds())

    @contextlib.asynccontextmanager
    async def input(self) -> AsyncIterator[None]:
        """A turn that always tells the screen something may have changed."""
        async with self.turn():
            try:
                yield
            finally:
                self.changed()

    # ---------------------------------------------------------------- what people do
    # The screen's verbs; each is one turn handed to the flow that owns it.
    async def tap(self, uid: str) -> None:
        """A card or a key fob was read at the reader."""
        async with self.turn():
            await self._tap(uid.strip().upper())
            self.changed()

    async def choose_draw(self, key_numbers: list[str], reason_code: str,
                          reason_text: str | None = None) -> None:
        # from the choice to the unlock with no garbage collection (kiosk.heap, issue 15)
        with collections_paused():
            async with self.input():
                await self.lookup("draw", DrawFlow).choose(key_numbers, reason_code,
                                                           reason_text)

    async def pick(self, key_numbers: list[str]) -> int:
        """The person picked keys on the screen and is choosing a reason: arm their boards
        now (``kiosk.cabinet.arming``); how many slots were newly armed."""
        async with self.turn():
            return self.lookup("draw", DrawFlow).pick(key_numbers)

    async def acknowledge_alarms(self) -> int:
        """F1: the keeper signed in by their badge acknowledges the cabinet's open alarms."""
        async with self.input():
            person = self.visit.person
            if (self.session.state != flow.State.CHOOSING or person is None
                    or not person.roles & policy.KEEPER_ROLES):
                raise CabinetError("not_keeper", "only a keeper acknowledges alarms here")
            done = await self.writer.run(
                lambda s: alarm_service.acknowledge_at_cabinet(
                    s, self.audit, cabinet_id=self.cabinet_id, keeper_id=person.id,
                    keeper_name=person.name, cabinet=self.code), "alarms.acknowledged")
            self.say("alarms_acknowledged", "ok")
            return len(done)

    async def enter_pin(self, pin: str) -> None:
        """The PIN typed on the pad for a draw waiting for it (kiosk/cabinet/flows/pin.py)."""
        async with self.input():
            await self.lookup("pin", PinFlow).enter(pin)

    async def change_pin(self, old: str | None, new: str, duress: str | None) -> None:
        """Set or change the PIN of the person at the screen (badge + the current PIN)."""
        async with self.input():
            await self.lookup("pin", PinFlow).change(old, new, duress)

    async def request_approval(self, key_number: str) -> None:
        """K7: the person asks their department leader for a special-room key."""
        async with self.input():
            await self.lookup("draw", DrawFlow).request_approval(key_number)

    async def choose_return(self, key_number: str, slot: int | None = None) -> None:
        async with self.input():
            await self.lookup("return", ReturnFlow).choose(key_number, slot)

    async def return_without_badge(self) -> None:
        """K5: the returner has no badge with them: the return opens and is flagged."""
        async with self.input():
            await self.lookup("return", ReturnFlow).without_badge()

    async def check_intake(self, **details: Any) -> dict[str, Any]:
        """The intake form's first step: key number and room checked before the rest."""
        async with self.turn():
            return self.lookup("intake", IntakeFlow).check(details)

    async def choose_intake(self, **details: Any) -> int:
        async with self.input():
            return await self.lookup("intake", IntakeFlow).choose(details)

    async def start_stock(self) -> list[int]:
        """K1/K2: a custodian stocks the cabinet with the keys imported for it
        (kiosk/cabinet/flows/stock.py); the home slots released."""
        async with self.input():
            return await self.lookup("stock", StockFlow).start()

    async def finish_stock(self) -> None:
        async with self.input():
            await self.lookup("stock", StockFlow).finish()

    async def start_handover(self, notes: str | None = None) -> None:
        """H1: the keeper at the screen hands over; the incoming keeper taps next."""
        async with self.input():
            await self.lookup("handover", HandoverFlow).start(notes)

    async def accept_handover(self) -> None:
        """H1: the keeper at the screen (identified by their tap) accepts a waiting handover."""
        async with self.input():
            await self.lookup("handover", HandoverFlow).accept(self.visit.person, self.visit.card)

    def check_remote_draw(self, key_number: str, person_id: uuid.UUID, reason_code: str,
                          reason_text: str | None) -> tuple[policy.KeyFacts, policy.PersonFacts]:
        """Whether a remote unlock could be carried out now (kiosk/cabinet/flows/remote.py)."""
        return self.lookup("remote", RemoteUnlockFlow).check(
            key_number, person_id, reason_code, reason_text)

    async def remote_draw(self, key_number: str, person_id: uuid.UUID, reason_code: str,
                          reason_text: str | None, admins: tuple[str, str]) -> int:
        """Release a key's slot for ``person_id`` on two different admins' word (K2, K8)."""
        async with self.input():
            return await self.lookup("remote", RemoteUnlockFlow).draw(
                key_number, person_id, reason_code, reason_text, admins)

    async def still_here(self) -> None:
        """The person touched the screen while choosing: give them the full choice time again
        (a custodian filling in the intake form must not lose it to the 60 s timer)."""
        async with self.turn():
            if self.session.state == flow.State.CHOOSING:
                self.session.handle(flow.StillHere(self.clock()))
                self.changed()

    async def cancel(self) -> None:
        async with self.turn():
            on_cancel = self._cancels.get(self.session.state)
            if on_cancel is not None:
                on_cancel()
            if self.session.state != flow.State.IDLE:
                await self.apply(self.session.handle(flow.Cancelled(self.clock())))
            self.changed()

    async def tick(self) -> None:
        async with self.turn():
            now = self.clock()
            if self.session.expired(now):
                on_timeout = self._timeouts.get(self.session.state)
                if on_timeout is not None:
                    on_timeout(now)
                await self.apply(self.session.handle(flow.Timeout(now)))
            for job in self._tickers:
                await job(now)
            if self.message and now >= self.message.until:
                self.message = None
                self.changed()

    # ------------------------------------------------------------------------- taps
    async def _tap(self, uid: str) -> None:
        now = self.clock()
        with DbSession(self.engine) as s:
            card, person = records.card_holder(s, uid=uid)
        fob_key = None if card else self.facts.by_fob(uid)
        state = self.session.state
        if fob_key is not None and state in (flow.State.CHOOSING, flow.State.IDLE) \
                and self._fob is not None:
            await self._fob(fob_key, state)
            return
        if fob_key is not None and state == flow.State.AWAIT_RETURNER:
            return  # the same fob again is ignored: the badge is what is asked for
        if state == flow.State.IDLE:
            await self._identify(uid, card, person, now)
            return
        handler = self._taps.get(state)
        if handler is not None:
            await handler(uid, card, person, now)
        elif state == flow.State.CHOOSING and person is not None and self.visit.person is not None \
                and person.id == self.visit.person.id:
            self.load_choices(now)  # a second tap by the same person refreshes the list
        else:
            self.say("busy", "info")

    async def _identify(self, uid: str, card: policy.CardFacts | None,
                        person: policy.PersonFacts | None, now: dt.datetime) -> None:
        """A badge at the idle screen starts a visit (after hours: one that waits for the
        duty manager, K8), unless a flow claims the tap first."""
        if any(guard(uid, card, person, now) for guard in self._idle_guards):
            return
        decision = policy.identify(card, person, now)
        if not decision.allowed:
            self.deny(decision, uid=uid, person=person)
            return
        assert person is not None and card is not None
        night = not self.calendar.is_business_time(now)
        self.visit = Visit(person=person, card=card, first_tap_at=now, night=night)
        if not night:
            self.load_choices(now)
        await self.apply(self.session.handle(flow.Identified(now, person.id, night)))

    def load_choices(self, now: dt.datetime) -> None:
        """The keys the person at the screen may draw now (the draw flow's choice list)."""
        self.lookup("draw", DrawFlow).load_choices(now)

    # ------------------------------------------------------------------- commands
    async def apply(self, commands: list[flow.Command]) -> None:
        """Carry out the session's commands: locks and lights here, facts in the flows."""
        if commands:
            self.changed()  # the screen's long-poll wakes on every step, timers and sensors too
        for command in commands:
            if isinstance(command, flow.Unlock):
                if not await self.opening.unlock(command.slots):
                    return  # the fault handling already ended the session
            elif isinstance(command, flow.Relock):
                for slot in command.slots:
                    self.light(slot, False)
            elif isinstance(command, flow.NotTaken):
                for slot in command.slots:
                    self.log(self.outcome("draw.not_taken", slot, rules=["K3"]))
                    self.visit.resolved.add(slot)
            elif isinstance(command, flow.Ended):
                self._ended(command.reason)
            elif isinstance(command, flow.Show):
                if command.screen not in ("idle", "choose"):
                    self.say(command.screen, "info", for_s=3600)
            else:
                done = self._commands[type(command)](command)
                if inspect.isawaitable(done):
                    await done

    def opening_kind(self, slot: int) -> str:
        """What the visit opened ``slot`` for: draw, return, stock or intake."""
        if slot in self.visit.draws:
            return "draw"
        if self.visit.stocking is not None:
            return "stock"
        return "return" if self.visit.returning is not None else "intake"

    def outcome(self, type_: str, slot: int, *, rules: list[str], **payload: Any) -> NewEvent:
        """The outcome event of an opening, pointing back to its intent (``intent_seq``)."""
        v = self.visit
        key = v.draws[slot].key if slot in v.draws else \
            (v.stocking or {}).get(slot) or v.returning
        return NewEvent(
            type=type_, slot=slot, key_number=key.key_number if key else None, rules=rules,
            actors=[str(v.person.id)] if v.person else [],
            payload={"intent_seq": v.intents.get(slot), **payload},
        )

    def _ended(self, reason: str) -> None:
        try:
            self._log_unfinished(reason)
        finally:  # whatever the log could take, the screen ends the visit and says why
            level = "ok" if reason in ENDED_WELL else "info"
            refused_now = (self.message is not None and self.message.level == "error"
                           and self.message.turn == self.turn_no)
            if reason not in ("lock_fault",) and not refused_now:
                self._tell(reason, level)
            self.visit = Visit()
            self.arming.forget()
            # Behind the visit's last writes and seconds before the next person's list:
            # the WAL folded and started over now, not in the next intent (kiosk.store.wal).
            self.writer.checkpoint_wal()

    def _tell(self, reason: str, level: str) -> None:
        """Say how the visit ended, in full: what the flow that ended it has to tell (which
        key, which slot, due when; a return flagged under K5), or, when a compartment it
        opened is still open after a cancel or a timeout, to shut it (with the buzzer)."""
        still_open = [] if reason in ENDED_WELL else self.sensors.still_open(self.visit.intents)
        if still_open:
            numbers = sorted(still_open)
            self.say("close_slot", "error", detail=(
                f"请关好格口 {'、'.join(map(str, numbers))}",
                f"Please shut slot {', '.join(map(str, numbers))}"))
            self.beep("reminder")
            return
        tell = self._endings.get(reason)
        code, detail = tell() if tell is not None else (reason, None)
        self.say(code, level, detail=detail)

    def _log_unfinished(self, reason: str) -> None:
        """What the visit opened and did not finish: each slot released and not resolved."""
        for slot in self.visit.intents:
            self.light(slot, False)
            if slot in self.visit.resolved:
                continue
            kind = self.opening_kind(slot)
            rules = {"draw": ["K3"], "return": ["K4"], "intake": ["K1"],
                     "stock": ["K1", "K2"]}[kind]
            self.log(self.outcome(f"{kind}.abandoned", slot, rules=rules, reason=reason))
        returning = self.visit.returning
        if returning is not None and not self.visit.intents and reason != "storage_fault":
            # K4: a fob was tapped but no returner came forward; the key stays on loan and
            # the log says so (a key seen at the cabinet and not put back is worth knowing).
            # After a storage fault nothing can be logged: the fault itself is the record.
            self.log(NewEvent(
                type="return.abandoned", slot=returning.home_slot,
                key_number=returning.key_number, rules=["K4"],
                actors=[str(self.visit.person.id)] if self.visit.person else [],
                payload={"reason": reason, "opened": False},
            ))

    # ------------------------------------------------------------- shared services
    def deny(self, decision: policy.Decision, *, uid: str | None = None,
             person: policy.PersonFacts | None = None, key: policy.KeyFacts | None = None,
             employee: policy.PersonFacts | None = None, state: str | None = None,
             **extra: Any) -> None:
        """Every denial is logged with its rule ids and cause, and shown plainly."""
        actors = [str(p.id) for p in (employee, person) if p is not None]
        self.log(NewEvent(
            type="access.denied", actors=actors, decision="deny", rules=list(decision.rules),
            key_number=key.key_number if key else None, slot=key.home_slot if key else None,
            payload={"code": decision.code, "reason": decision.reason, "card": uid,
                     "state": state or self.session.state.value, **extra},
        ))
        self.say(decision.code, "error")
        self.beep("deny")

    def alarm(self, kind: str, message: str, *, rule: str | None = None, slot: int | None = None,
              key: policy.KeyFacts | None = None, payload: dict[str, object] | None = None,
              beep: bool = True) -> None:
        """Raise an alarm through the alarm service, owned as the settings say (F1); the
        writer thread records it (queued in order, retried while the database is busy)."""
        self.writer.post(self.alarm_work(kind, message, rule=rule, slot=slot, key=key,
                                          payload=payload), f"alarm {kind}")
        if beep:
            self.beep("alarm")
        self.changed()

    def alarm_work(self, kind: str, message: str, *, rule: str | None = None,
                    slot: int | None = None, key: policy.KeyFacts | None = None,
                    payload: dict[str, object] | None = None) -> Callable[[DbSession], None]:
        """The alarm as a write for the writer thread; its time is when it was seen."""
        at, key_id = self.clock(), key.id if key else None

        def work(s: DbSession) -> None:
            alarm_service.raise_alarm(
                s, self.audit, kind=kind, message=message, rule=rule, actors=[],
                cabinet_id=self.cabinet_id, key_id=key_id,
                slot_id=records.slot_id(s, cabinet_id=self.cabinet_id, number=slot)
                if slot is not None else None, payload=payload, at=at,
                owners=self.alarm_owners,
            )
        return work

    def log(self, event: NewEvent) -> None:
        """Queue ``event`` for the log (the writer thread appends it, in order)."""
        self.writer.post(lambda s: tx.log(s, self.audit, event), event.type)

    def write(self, work: Callable[[DbSession], Any], what: str) -> None:
        """Queue a write of a flow's (a loan, a return...) for the writer thread."""
        self.writer.post(work, what)

    async def driver(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.on_bus(fn, *args)

    def on_bus(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` on the bus thread now (drivers' calls run there, in order)."""
        return asyncio.get_running_loop().run_in_executor(self.bus, fn, *args)

    def light(self, slot: int, on: bool) -> None:
        if self.indicators is not None:
            try:
                self.indicators.slot_light(slot, on)
            except DriverError:
                log.warning("slot LED %s failed", slot)

    def beep(self, pattern: str) -> None:
        if self.indicators is not None:
            try:
                self.indicators.beep(pattern)
            except DriverError:
                log.warning("buzzer failed")

    def sound_alarm(self, kind: str) -> None:
        """An alarm raised outside the cabinet's own flows (the scheduler's overdue key, K9):
        the same buzzer pattern as the cabinet's own alarms, and a new screen version so the
        idle banner lists it at once rather than at the next visit."""
        log.info("sounding %s alarm", kind)
        self.beep("alarm")
        self.changed()

    def say(self, code: str, level: str, *, for_s: float | None = None,
            detail: tuple[str, str] | None = None) -> None:
        duration = dt.timedelta(seconds=for_s) if for_s else self.options.message_for
        self.message = Message(code, level, self.clock() + duration, turn=self.turn_no,
                               detail=detail)

    def changed(self) -> None:
        self.version += 1

    def busy(self, what: str) -> CabinetError:
        return CabinetError("busy", f"no {what} in state {self.session.state}")

    # ------------------------------------------------------------------------- screen
    def screen(self) -> dict[str, Any]:
        """Everything the kiosk page shows, in one JSON-able snapshot (kiosk/cabinet_screen.py);
        ``simulated``: the page marks every screen 模拟 SIMULATION."""
        data = cabinet_screen.snapshot(
            visit=self.visit, session=self.session, message=self.message, now=self.clock(),
            version=self.version, engine=self.engine, cabinet_id=self.cabinet_id,
            calendar=self.calendar, identity=self.sensors.identity,
            present=self.sensors.last_scan(),
        )
        data["simulated"] = self.runtime.settings.simulate
        pin = self.runtime.settings.pin
        if not (pin.key_groups or pin.roles or pin.after_hours):
            data["pin"] = None  # this site asks for no PIN: the screen offers none to set
        data["identity"] = self.sensors.identity  # the screen says which mode the cabinet is in
        data["stock"] = self.lookup("stock", StockFlow).panel()  # 上架: kiosk/cabinet/flows/stock.py
        return data
