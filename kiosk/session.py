"""One person's visit to the cabinet as a pure state machine.

Events come in (a badge identified, a selection made, a key removed, a timer run out);
commands go out (unlock a slot, relock it, show a screen, record a loan). The transition
table below is the whole flow: a pair (state, event) not in it raises ``IllegalTransition``.
There is no I/O and no clock: the cabinet supplies ``now`` with every event and turns
deadlines into ``Timeout`` events, so every path, including every timeout, is unit-tested.

The cabinet (``kiosk.cabinet``) does the rest: it asks ``kiosk.policy`` before feeding an
event in (the session only sees decisions already made), writes the durable intent event
before performing an ``Unlock``, and records outcomes once the sensors confirm them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    IDLE = "idle"
    AWAIT_MANAGER = "await_manager"  # K8: after hours, waiting for the duty manager's tap
    CHOOSING = "choosing"  # identified: the screen lists drawable keys
    AWAIT_COSIGN = "await_cosign"  # K3: waiting for a custodian's badge
    RELEASING = "releasing"  # slot(s) unlocked, waiting for the key(s) to leave
    RETURNING = "returning"  # home slot unlocked, waiting for the key to come back
    INTAKE = "intake"  # K1: a free slot unlocked, waiting for the new key
    AWAIT_INCOMING = "await_incoming"  # H1: handover started, waiting for the incoming's tap
    AWAIT_RETURNER = "await_returner"  # K4: a key's fob was tapped; whose badge returns it?
    STOCKING = "stocking"  # K1/K2: a custodian hangs imported keys in their released home slots


SIGNED_IN = (State.CHOOSING, State.AWAIT_MANAGER)
"""H1: where a keeper who tapped in may start or accept a handover. After hours that is
before the duty manager's tap too: a handover opens no lock, and K8 is about opening."""


class IllegalTransition(Exception):
    """An event arrived that the current state does not accept."""


# ---------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Event:
    now: dt.datetime


@dataclass(frozen=True)
class Identified(Event):
    person_id: uuid.UUID
    night: bool = False
    """After hours: the duty manager must tap next (K8)."""


@dataclass(frozen=True)
class ManagerConfirmed(Event):
    manager_id: uuid.UUID


@dataclass(frozen=True)
class DrawChosen(Event):
    """The person picked keys and a reason; policy has allowed each one already."""

    slots: tuple[int, ...]
    needs_cosign: bool = False


@dataclass(frozen=True)
class Cosigned(Event):
    custodian_id: uuid.UUID


@dataclass(frozen=True)
class ReturnChosen(Event):
    slot: int


@dataclass(frozen=True)
class FobTapped(Event):
    """K4: a key's own fob at the reader with nobody signed in: the returner taps next."""

    slot: int


@dataclass(frozen=True)
class IntakeChosen(Event):
    slot: int


@dataclass(frozen=True)
class StockChosen(Event):
    """K1/K2: a custodian stocks a new cabinet: the home slots of the imported keys not yet
    in it are released together, each waiting for its own key."""

    slots: tuple[int, ...]


@dataclass(frozen=True)
class HandoverStarted(Event):
    """H1: the outgoing keeper started a handover; the incoming keeper taps next."""


@dataclass(frozen=True)
class HandoverAccepted(Event):
    """H1: the incoming keeper signed (tapped while the handover waited, or from their menu)."""

    incoming_id: uuid.UUID


@dataclass(frozen=True)
class KeyRemoved(Event):
    slot: int


@dataclass(frozen=True)
class KeyInserted(Event):
    slot: int


@dataclass(frozen=True)
class KeySwapping(Event):
    """Identity cabinets (issue 13): a wrong key was hung in the slot open for a return, or
    taken back out of it. The screen has just asked the person to take it out and hang the
    right one, so the return timer restarts: the swap must not run out of time halfway."""

    slot: int


@dataclass(frozen=True)
class Cancelled(Event):
    reason: str = "cancelled"


@dataclass(frozen=True)
class StillHere(Event):
    """The person is still using the screen (filling in a form): the choice timer restarts."""


@dataclass(frozen=True)
class Timeout(Event):
    """The cabinet sends this when ``Session.deadline`` has passed."""


# -------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class Command:
    pass


@dataclass(frozen=True)
class Unlock(Command):
    slots: tuple[int, ...]


@dataclass(frozen=True)
class Relock(Command):
    slots: tuple[int, ...]


@dataclass(frozen=True)
class Show(Command):
    screen: str


@dataclass(frozen=True)
class Taken(Command):
    """A key left its slot during a draw: record the loan now."""

    slot: int


@dataclass(frozen=True)
class Returned(Command):
    """A key came back into its slot: close the loan."""

    slot: int


@dataclass(frozen=True)
class Received(Command):
    """A new key was hung in its slot at intake (K1)."""

    slot: int


@dataclass(frozen=True)
class Stocked(Command):
    """A key was hung in its released home slot while stocking: record it (K1/K2)."""

    slot: int


@dataclass(frozen=True)
class NotTaken(Command):
    """The slot(s) were opened but nothing was taken in time: record it."""

    slots: tuple[int, ...]


@dataclass(frozen=True)
class Ended(Command):
    reason: str


# --------------------------------------------------------------------------- timeouts
@dataclass(frozen=True)
class Timeouts:
    choose: dt.timedelta = dt.timedelta(seconds=60)
    manager: dt.timedelta = dt.timedelta(seconds=60)
    cosign: dt.timedelta = dt.timedelta(seconds=60)
    take: dt.timedelta = dt.timedelta(seconds=20)
    put_back: dt.timedelta = dt.timedelta(seconds=30)
    incoming: dt.timedelta = dt.timedelta(seconds=120)
    returner: dt.timedelta = dt.timedelta(seconds=20)
    stock: dt.timedelta = dt.timedelta(minutes=10)
    """Stocking: how long after the last key hung (or the start) the session ends by itself."""


# ---------------------------------------------------------------------------- session
Handler = Callable[["Session", Event], list[Command]]


@dataclass
class Session:
    timeouts: Timeouts = field(default_factory=Timeouts)
    state: State = State.IDLE
    person_id: uuid.UUID | None = None
    manager_id: uuid.UUID | None = None
    custodian_id: uuid.UUID | None = None
    open_slots: tuple[int, ...] = ()
    """Slots released and still waiting for their key to leave (or arrive)."""
    pending_slots: tuple[int, ...] = ()
    """Slots chosen and waiting for a co-sign before they open."""
    deadline: dt.datetime | None = None
    started_at: dt.datetime | None = None

    def handle(self, event: Event) -> list[Command]:
        handler = TRANSITIONS.get((self.state, type(event)))
        if handler is None:
            raise IllegalTransition(f"{type(event).__name__} is not accepted in state {self.state}")
        return handler(self, event)

    def expired(self, now: dt.datetime) -> bool:
        return self.deadline is not None and now >= self.deadline

    # ----------------------------------------------------------------------- helpers
    def _to(self, state: State, now: dt.datetime, timeout: dt.timedelta | None) -> None:
        self.state = state
        self.deadline = now + timeout if timeout is not None else None

    def _end(self, reason: str) -> list[Command]:
        commands: list[Command] = []
        if self.open_slots:
            commands.append(Relock(self.open_slots))
        self.state = State.IDLE
        self.person_id = self.manager_id = self.custodian_id = None
        self.open_slots = self.pending_slots = ()
        self.deadline = self.started_at = None
        commands += [Show("idle"), Ended(reason)]
        return commands


# --------------------------------------------------------------------------- handlers
def _identified(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, Identified)
    s.person_id, s.started_at = e.person_id, e.now
    if e.night:
        s._to(State.AWAIT_MANAGER, e.now, s.timeouts.manager)
        return [Show("await_manager")]
    s._to(State.CHOOSING, e.now, s.timeouts.choose)
    return [Show("choose")]


def _manager_confirmed(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, ManagerConfirmed)
    s.manager_id = e.manager_id
    s._to(State.CHOOSING, e.now, s.timeouts.choose)
    return [Show("choose")]


def _release(s: Session, now: dt.datetime, slots: tuple[int, ...]) -> list[Command]:
    s.open_slots, s.pending_slots = slots, ()
    s._to(State.RELEASING, now, s.timeouts.take)
    return [Unlock(slots), Show("take_key")]


def _draw_chosen(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, DrawChosen)
    if not e.slots:
        raise IllegalTransition("a draw needs at least one slot")
    if e.needs_cosign:
        s.pending_slots = e.slots
        s._to(State.AWAIT_COSIGN, e.now, s.timeouts.cosign)
        return [Show("await_cosign")]
    return _release(s, e.now, e.slots)


def _cosigned(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, Cosigned)
    s.custodian_id = e.custodian_id
    return _release(s, e.now, s.pending_slots)


def _fob_tapped(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, FobTapped)
    s.pending_slots, s.started_at = (e.slot,), e.now
    s._to(State.AWAIT_RETURNER, e.now, s.timeouts.returner)
    return [Show("await_returner")]


def _return_chosen(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, ReturnChosen)
    s.open_slots, s.pending_slots = (e.slot,), ()
    s.started_at = s.started_at or e.now
    s._to(State.RETURNING, e.now, s.timeouts.put_back)
    return [Unlock((e.slot,)), Show("put_back")]


def _intake_chosen(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, IntakeChosen)
    s.open_slots = (e.slot,)
    s._to(State.INTAKE, e.now, s.timeouts.put_back)
    return [Unlock((e.slot,)), Show("intake_put")]


def _stock_chosen(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, StockChosen)
    if not e.slots:
        raise IllegalTransition("stocking needs at least one slot")
    s.open_slots, s.pending_slots = e.slots, ()
    s._to(State.STOCKING, e.now, s.timeouts.stock)
    return [Unlock(e.slots), Show("stock_put")]


def _key_stocked(s: Session, e: Event) -> list[Command]:
    """One key hung while stocking: its slot is done, the others stay released; the session
    ends once every released slot has its key (or the custodian ends it)."""
    assert isinstance(e, KeyInserted)
    if e.slot not in s.open_slots:
        raise IllegalTransition(f"slot {e.slot} was not released for stocking")
    s.open_slots = tuple(x for x in s.open_slots if x != e.slot)
    commands: list[Command] = [Relock((e.slot,)), Stocked(e.slot)]
    if not s.open_slots:
        return commands + s._end("stocked")
    s._to(State.STOCKING, e.now, s.timeouts.stock)
    return commands


def _handover_started(s: Session, e: Event) -> list[Command]:
    s._to(State.AWAIT_INCOMING, e.now, s.timeouts.incoming)
    return [Show("await_incoming")]


def _handover_accepted(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, HandoverAccepted)
    return s._end("handed_over")


def _key_removed(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, KeyRemoved)
    if e.slot not in s.open_slots:
        raise IllegalTransition(f"slot {e.slot} was not released in this session")
    s.open_slots = tuple(x for x in s.open_slots if x != e.slot)
    commands: list[Command] = [Relock((e.slot,)), Taken(e.slot)]
    if not s.open_slots:
        return commands + s._end("drawn")
    return commands


def _key_inserted(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, KeyInserted)
    if e.slot not in s.open_slots:
        raise IllegalTransition(f"slot {e.slot} was not opened for a return in this session")
    done: Command = Returned(e.slot) if s.state == State.RETURNING else Received(e.slot)
    s.open_slots = ()
    return [
        Relock((e.slot,)),
        done,
        *s._end("returned" if isinstance(done, Returned) else "received"),
    ]


def _key_swapping(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, KeySwapping)
    if e.slot not in s.open_slots:
        raise IllegalTransition(f"slot {e.slot} was not opened for a return in this session")
    s._to(s.state, e.now, s.timeouts.put_back)  # restarted, not stopped: walking away still ends it
    return []


def _cancelled(s: Session, e: Event) -> list[Command]:
    assert isinstance(e, Cancelled)
    return s._end(e.reason)


def _still_here(s: Session, e: Event) -> list[Command]:
    s._to(s.state, e.now, s.timeouts.choose)
    return []


def _timeout(s: Session, e: Event) -> list[Command]:
    if not s.expired(e.now):
        return []  # a stale timer: the deadline moved
    if s.state == State.RELEASING:
        slots = s.open_slots
        return [NotTaken(slots), *s._end("not_taken")]
    reason = {
        State.AWAIT_MANAGER: "manager_timeout",
        State.AWAIT_COSIGN: "cosign_timeout",
        State.CHOOSING: "choose_timeout",
        State.RETURNING: "return_timeout",
        State.INTAKE: "intake_timeout",
        State.AWAIT_INCOMING: "incoming_timeout",
        State.AWAIT_RETURNER: "returner_timeout",
        State.STOCKING: "stock_timeout",
    }[s.state]
    return s._end(reason)


_ANY_ACTIVE = (
    State.AWAIT_MANAGER,
    State.CHOOSING,
    State.AWAIT_COSIGN,
    State.RELEASING,
    State.RETURNING,
    State.INTAKE,
    State.AWAIT_INCOMING,
    State.AWAIT_RETURNER,
    State.STOCKING,
)

TRANSITIONS: dict[tuple[State, type[Event]], Handler] = {
    (State.IDLE, Identified): _identified,
    # K4: a fob tap with nobody signed in asks for the returner's badge first; the return
    # opens once they tap, or when they choose to return without one (flagged, K5)
    (State.IDLE, FobTapped): _fob_tapped,
    (State.AWAIT_RETURNER, ReturnChosen): _return_chosen,
    (State.AWAIT_MANAGER, ManagerConfirmed): _manager_confirmed,
    # H1 after hours: a handover opens no lock, so it needs no duty manager (K8 is for opening)
    (State.AWAIT_MANAGER, HandoverStarted): _handover_started,
    (State.AWAIT_MANAGER, HandoverAccepted): _handover_accepted,
    (State.CHOOSING, DrawChosen): _draw_chosen,
    (State.CHOOSING, ReturnChosen): _return_chosen,
    (State.CHOOSING, IntakeChosen): _intake_chosen,
    (State.CHOOSING, StillHere): _still_here,
    (State.CHOOSING, HandoverStarted): _handover_started,
    (State.CHOOSING, HandoverAccepted): _handover_accepted,  # accepted from the menu
    (State.AWAIT_INCOMING, HandoverAccepted): _handover_accepted,
    (State.AWAIT_COSIGN, Cosigned): _cosigned,
    (State.RELEASING, KeyRemoved): _key_removed,
    (State.RETURNING, KeyInserted): _key_inserted,
    (State.RETURNING, KeySwapping): _key_swapping,
    (State.INTAKE, KeyInserted): _key_inserted,
    (State.CHOOSING, StockChosen): _stock_chosen,
    (State.STOCKING, KeyInserted): _key_stocked,
    **{(state, Cancelled): _cancelled for state in _ANY_ACTIVE},
    **{(state, Timeout): _timeout for state in _ANY_ACTIVE},
}
"""The whole flow. Anything not listed is illegal."""
