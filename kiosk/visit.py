"""What the cabinet holds about the person at the screen between two inputs.

The session (``kiosk/session.py``) knows the state and its deadline; the visit holds the
facts that go with it (who tapped, what they chose, which intents were written) and the
message on the screen. Both the cabinet, which changes them, and the screen snapshot,
which only reads them, use these types.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiosk import policy
from kiosk import session as flow


@dataclass
class DrawPlan:
    """One key chosen for a draw: the policy's decision on it and the reason given (K3)."""

    key: policy.KeyFacts
    decision: policy.Decision
    reason_code: str
    reason_text: str | None


@dataclass(frozen=True)
class PreparedDecision:
    """What a draw decision needs, read when the person's list was made (issue 15).

    ``head`` is the log's head when the context was read. Every change a decision depends on
    (a card, a right, an approval, a letter, a key, a loan) is written with an event, and on
    SQLite any commit at all moves ``mark``; while neither has moved the choice is decided
    from these, with the choice's own time, and the intent's transaction checks the head
    once more."""

    head: int
    context: policy.DrawContext
    facts: Any  # kiosk.cabinet.facts.Snapshot (kept here as Any: the visit imports no cabinet)
    mark: int | None = None
    """``CabinetFacts.commit_mark`` before the reads: on SQLite, any commit at all since
    (an edit without an event, by any process) sends the choice to fresh reads."""


@dataclass(frozen=True)
class DecidedFromList:
    """A draw decided from ``PreparedDecision`` facts, on its way to its intent.

    Its first intent goes onto ``head`` or not at all; if the log has moved, ``recheck``
    decides the same choice again from fresh reads before the intent is written without
    that condition. ``recheck`` returns when the choice still stands (the visit's plans
    renewed) and raises the cabinet's refusal, logged and on the screen, when it does not."""

    head: int
    recheck: Callable[[], None]


@dataclass
class Visit:
    """What the cabinet knows about the current visit beyond the session's state."""

    person: policy.PersonFacts | None = None
    card: policy.CardFacts | None = None
    first_tap_at: dt.datetime | None = None
    manager: policy.PersonFacts | None = None
    cosigner: policy.PersonFacts | None = None
    night: bool = False
    choices: list[policy.KeyView] = field(default_factory=list)
    """The keys shown to the person at the screen, each with why (policy.screen_keys)."""
    draws: dict[int, DrawPlan] = field(default_factory=dict)
    returning: policy.KeyFacts | None = None
    intake: dict[str, Any] | None = None
    intents: dict[int, int] = field(default_factory=dict)
    """Slot → sequence number of its intent event."""
    resolved: set[int] = field(default_factory=set)
    """Slots whose intent already has its outcome event."""
    remote_admins: tuple[str, ...] = ()
    """A remote unlock (K2): the two admin accounts that requested and confirmed it."""
    handover_id: uuid.UUID | None = None
    """H1: the handover this visit started and is waiting for the incoming keeper's tap."""
    drawn: dict[int, dt.datetime] = field(default_factory=dict)
    """Slot → due time of each loan recorded in this visit (told to the person at the end)."""
    stocking: dict[int, policy.KeyFacts] | None = None
    """K1/K2 stocking: released home slot → the imported key that goes in it."""
    stocked: list[int] = field(default_factory=list)
    """Stocking: the slots whose key was hung in this visit, in order."""
    returned_code: str | None = None
    """The K4/K5 decision code of the return recorded in this visit (returned_by_other...)."""
    pin_pending: flow.DrawChosen | None = None
    """A chosen draw waiting for the person's PIN (kiosk/cabinet/flows/pin.py)."""
    pin_causes: tuple[str, ...] = ()
    """Why it asks (key_group, role, after_hours: policy.pin_causes)."""
    pin_checked: bool = False
    """The PIN (or the duress PIN, indistinguishably) was given for this visit's draw."""
    prepared: PreparedDecision | None = None
    """The draw decision's inputs as of the person's list (``DrawFlow.load_choices``)."""
    decided: DecidedFromList | None = None
    """The draw about to open was decided from ``prepared`` (``kiosk.cabinet.opening``
    uses it once)."""


@dataclass
class Message:
    """What the screen says (a ``kiosk.messages`` code, in zh and en) until ``until``."""

    code: str
    level: str  # info | ok | error
    until: dt.datetime
    turn: int = 0
    """The input (tap, choice, tick) that said it: an ending keeps only this turn's refusal."""
    detail: tuple[str, str] | None = None
    """What exactly happened, in zh and en (which key, which slot, due when)."""
