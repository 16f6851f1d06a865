"""Who may open what, when: the access rules of docs/rules.md as pure functions.

Given who tapped, what they ask for, the time, the duty roster and the approval records,
each function returns a ``Decision`` naming the rule ids that allowed or denied it. There is
no I/O here: the cabinet gathers the facts (snapshots below) and acts on the decision, so
every rule can be read next to docs/rules.md and tested case by case.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import NamedTuple
from zoneinfo import ZoneInfo


class Need(StrEnum):
    """A further step a draw needs before the slot may open."""

    COSIGN = "cosign"  # K3: a custodian's badge confirms the draw
    DUTY_MANAGER = "duty_manager"  # K8: after hours, the rostered duty manager taps too


@dataclass(frozen=True)
class Decision:
    """The outcome of a rule check: allowed or not, why, and by which rule ids."""

    allowed: bool
    code: str
    """Machine-readable cause, e.g. ``card_lost``; the screen translates it."""
    reason: str
    """Plain English for the log and the API."""
    rules: tuple[str, ...]
    needs: frozenset[Need] = frozenset()
    approval_id: uuid.UUID | None = None
    authorization_id: uuid.UUID | None = None

    @classmethod
    def allow(cls, code: str, reason: str, *rules: str, **extra: object) -> Decision:
        return cls(True, code, reason, tuple(rules), **extra)  # type: ignore[arg-type]

    @classmethod
    def deny(cls, code: str, reason: str, *rules: str) -> Decision:
        return cls(False, code, reason, tuple(rules))


# ------------------------------------------------------------------------------ facts
@dataclass(frozen=True)
class Calendar:
    """Business hours in local time, with holidays and make-up working days."""

    zone: ZoneInfo
    start: dt.time
    end: dt.time
    weekdays: frozenset[int]
    holidays: frozenset[dt.date] = frozenset()
    extra_workdays: frozenset[dt.date] = frozenset()

    def is_workday(self, day: dt.date) -> bool:
        if day in self.holidays:
            return False
        return day in self.extra_workdays or day.isoweekday() in self.weekdays

    def is_business_time(self, now: dt.datetime) -> bool:
        local = now.astimezone(self.zone)
        return self.is_workday(local.date()) and self.start <= local.time() < self.end

    def end_of_business_day(self, now: dt.datetime) -> dt.datetime:
        """Today's closing time if today is open and not yet closed, else the next working
        day's opening (a key drawn at night is due when the office opens)."""
        local = now.astimezone(self.zone)
        if self.is_workday(local.date()) and self.start <= local.time() < self.end:
            return dt.datetime.combine(local.date(), self.end, self.zone)
        day = local.date() if local.time() < self.start else local.date() + dt.timedelta(days=1)
        for _ in range(366):
            if self.is_workday(day):
                return dt.datetime.combine(day, self.start, self.zone)
            day += dt.timedelta(days=1)
        raise ValueError("no working day within a year: check the business-hours calendar")


@dataclass(frozen=True)
class CardFacts:
    uid: str
    status: str  # active | lost | revoked
    kind: str  # staff | owner_proxy
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None


@dataclass(frozen=True)
class PersonFacts:
    id: uuid.UUID
    name: str
    roles: frozenset[str]
    active: bool = True
    department_id: uuid.UUID | None = None


@dataclass(frozen=True)
class KeyFacts:
    id: uuid.UUID
    key_number: str
    label: str
    group_id: uuid.UUID
    requires_cosign: bool
    loan_minutes: int | None
    status: str  # active | retired
    on_loan: bool
    home_slot: int | None
    unit_id: uuid.UUID | None = None
    special: bool = False
    floor: int | None = None
    """Floor of the key's room (basements negative); the screen groups keys by it."""


@dataclass(frozen=True)
class RightFacts:
    key_group_id: uuid.UUID
    person_id: uuid.UUID | None = None
    role: str | None = None
    weekdays: str = "1234567"
    start_time: dt.time | None = None
    end_time: dt.time | None = None
    valid_from: dt.datetime | None = None
    valid_to: dt.datetime | None = None


@dataclass(frozen=True)
class ApprovalFacts:
    id: uuid.UUID
    key_id: uuid.UUID
    requested_for_id: uuid.UUID
    status: str  # pending | approved | rejected | expired | used
    valid_until: dt.datetime


@dataclass(frozen=True)
class AuthorizationFacts:
    id: uuid.UUID
    proxy_id: uuid.UUID
    unit_ids: frozenset[uuid.UUID]
    valid_from: dt.datetime
    valid_to: dt.datetime
    revoked: bool
    requires_phone_confirmation: bool
    phone_confirmed: bool


@dataclass(frozen=True)
class ShiftFacts:
    person_id: uuid.UUID
    starts_at: dt.datetime
    ends_at: dt.datetime


@dataclass(frozen=True)
class DrawContext:
    """Everything a draw decision depends on, gathered by the cabinet."""

    person: PersonFacts
    card: CardFacts
    now: dt.datetime
    calendar: Calendar
    rights: Sequence[RightFacts] = ()
    approvals: Sequence[ApprovalFacts] = ()
    authorizations: Sequence[AuthorizationFacts] = ()
    phone_confirmation_required: bool = True
    extra: dict[str, object] = field(default_factory=dict)

    @cached_property
    def covered_groups(self) -> frozenset[uuid.UUID]:
        """The key groups this person's rights cover now (K3). Worked out once per context:
        the screen decides every key of the cabinet (2,000 on a large site) with the same
        person and time, so each right is weighed once, not once per key (issue 15)."""
        return frozenset(r.key_group_id for r in self.rights
                         if _right_applies(r, self.person, self.calendar, self.now))

    @cached_property
    def business_time(self) -> bool:
        """Whether ``now`` is within business hours (K8), worked out once per context."""
        return self.calendar.is_business_time(self.now)


# ---------------------------------------------------------------------- identification
def identify(card: CardFacts | None, person: PersonFacts | None, now: dt.datetime) -> Decision:
    """K3 starts with a badge: only a known, active, currently valid card of an active person."""
    if card is None or person is None:
        return Decision.deny("card_unknown", "card not registered", "K3")
    if card.status == "lost":
        return Decision.deny("card_lost", "card reported lost", "K3")
    if card.status == "revoked":
        return Decision.deny("card_revoked", "card revoked", "K3")
    if card.status != "active":
        return Decision.deny("card_inactive", f"card status {card.status}", "K3")
    if card.valid_from is not None and now < card.valid_from:
        return Decision.deny("card_not_yet_valid", "card not valid yet", "K3")
    if card.valid_to is not None and now >= card.valid_to:
        return Decision.deny("card_expired", "card expired", "K3")
    if not person.active:
        return Decision.deny("person_inactive", "person is no longer active", "K3")
    return Decision.allow("identified", f"identified {person.name}", "K3")


# ------------------------------------------------------------------------------- draws
def _right_applies(right: RightFacts, person: PersonFacts, cal: Calendar, now: dt.datetime) -> bool:
    """Whether ``right`` is this person's (theirs or their role's) and in force at ``now``."""
    if right.person_id is not None and right.person_id != person.id:
        return False
    if right.role is not None and right.role not in person.roles:
        return False
    if right.valid_from is not None and now < right.valid_from:
        return False
    if right.valid_to is not None and now >= right.valid_to:
        return False
    local = now.astimezone(cal.zone)
    if str(local.isoweekday()) not in right.weekdays:
        return False
    if right.start_time is not None and local.time() < right.start_time:
        return False
    return not (right.end_time is not None and local.time() >= right.end_time)


def decide_draw(ctx: DrawContext, key: KeyFacts) -> Decision:
    """May ``ctx.person`` draw ``key`` now (K3, K6, K7, K10), and what else is needed (K3 co-sign,
    K8 duty manager)? Denials name the first rule that stops the draw."""
    return _decide_draw(ctx, key, key.on_loan)


def _decide_draw(ctx: DrawContext, key: KeyFacts, on_loan: bool) -> Decision:
    """``decide_draw`` as if the key's being out were ``on_loan`` (the screen asks both)."""
    if key.status != "active":
        return Decision.deny("key_retired", f"key {key.key_number} is retired", "K2")
    if on_loan:
        return Decision.deny("key_out", f"key {key.key_number} is already out", "K10")
    if key.home_slot is None:
        return Decision.deny("key_no_slot", f"key {key.key_number} has no slot", "K2")

    authorization_id = None
    if ctx.card.kind == "owner_proxy":
        auth = _proxy_authorization(ctx, key)
        if isinstance(auth, Decision):
            return auth
        authorization_id = auth.id
        rules = ["K6"]
    else:
        if key.group_id not in ctx.covered_groups:
            return Decision.deny(
                "no_access_right", f"{ctx.person.name} may not draw {key.key_number} now", "K3"
            )
        rules = ["K3"]

    approval_id = None
    if key.special:
        approval = _valid_approval(ctx, key)
        if approval is None:
            return Decision.deny(
                "approval_required",
                f"{key.key_number} is a special room: a department leader's approval is needed",
                "K7",
            )
        approval_id = approval.id
        rules.append("K7")

    needs: set[Need] = set()
    if key.requires_cosign:
        needs.add(Need.COSIGN)
        rules.append("K3")
    if not ctx.business_time:
        needs.add(Need.DUTY_MANAGER)
        rules.append("K8")
    return Decision(
        True,
        "allowed",
        f"{ctx.person.name} may draw {key.key_number}",
        tuple(dict.fromkeys(rules)),
        frozenset(needs),
        approval_id,
        authorization_id,
    )


def _proxy_authorization(ctx: DrawContext, key: KeyFacts) -> AuthorizationFacts | Decision:
    """K6: a proxy draws only the owner's unit keys, under a valid letter of authorization,
    after the phone confirmation with the owner where policy asks for one."""
    if key.unit_id is None:
        return Decision.deny(
            "proxy_not_unit_key", "a proxy may draw only an owner's unit key", "K6"
        )
    covering = [
        a
        for a in ctx.authorizations
        if a.proxy_id == ctx.person.id and key.unit_id in a.unit_ids and not a.revoked
    ]
    if not covering:
        return Decision.deny(
            "no_authorization", f"no letter of authorization for {key.label}", "K6"
        )
    current = [a for a in covering if a.valid_from <= ctx.now < a.valid_to]
    if not current:
        return Decision.deny(
            "authorization_expired", "the letter of authorization is not valid now", "K6"
        )
    for auth in current:
        needs_call = ctx.phone_confirmation_required and auth.requires_phone_confirmation
        if not needs_call or auth.phone_confirmed:
            return auth
    return Decision.deny(
        "phone_confirmation_required", "the owner's phone confirmation is not on record", "K6"
    )


def _valid_approval(ctx: DrawContext, key: KeyFacts) -> ApprovalFacts | None:
    for approval in ctx.approvals:
        if (
            approval.key_id == key.id
            and approval.requested_for_id == ctx.person.id
            and approval.status == "approved"
            and ctx.now < approval.valid_until
        ):
            return approval
    return None


KEEPER_ROLES = frozenset({"custodian", "duty_manager", "supervisor"})
"""Who keeps the register: they see every key, and who holds the ones out."""

HIDDEN_FROM_PROXY = ("proxy_not_unit_key", "no_authorization")
"""K6: the keys of other owners' units and master keys; a proxy never sees them."""


@dataclass(frozen=True)
class Holder:
    """Who has a key out, and until when (shown to keepers only)."""

    person_id: uuid.UUID
    name: str
    due_at: dt.datetime


class KeyView(NamedTuple):
    """One key as the screen shows it to this person.

    ``decision`` is why they may or may not draw it now; ``listed``: shown in the floor lists
    (otherwise found only by searching its room, with the reason); ``mine``: out to this
    person; ``holder``: who has it out, for a keeper only. Keys of the same standing share
    one decision (``screen_keys``): its code, rules and needs are each key's, its reason's
    wording names the first of them (the screen shows the code). A named tuple, not a frozen
    dataclass: the screen makes one per key of the cabinet at every badge tap, and on a
    2,000-key cabinet the dataclass's construction alone was 3 ms of the 5 ms the tap may
    take (issue 15)."""

    key: KeyFacts
    decision: Decision
    listed: bool
    mine: bool = False
    holder: Holder | None = None


def standing(key: KeyFacts) -> tuple[object, ...]:
    """Everything ``_decide_draw`` reads of a key but its number, label and being out: keys
    of the same standing get the same verdict for a given person at a given time."""
    return (key.status, key.home_slot is None, key.group_id, key.unit_id, key.special,
            key.id if key.special else None, key.requires_cosign)


@dataclass(frozen=True)
class Standings:
    """A cabinet's keys grouped by standing, worked out once per change of the keys.

    Why: a badge tap decides every key of the cabinet for the person at the screen. On a
    2,000-key cabinet building and hashing each key's standing (its group, unit and key ids
    are UUIDs, hashed in Python) took most of the 5 ms the tap may take (issue 15), though
    the keys change only when a key is drawn, returned, stocked or edited. The cabinet's
    facts (kiosk/cabinet/facts.py) group them when they load, and every tap then decides
    one key of each standing and reuses the verdict for the others."""

    keys: tuple[KeyFacts, ...]
    classes: tuple[int, ...]
    """The index in ``firsts`` of each key's standing, in the order of ``keys``."""
    firsts: tuple[KeyFacts, ...]
    """The first key of each standing: the one its verdict is worked out with."""


def standings(keys: Iterable[KeyFacts]) -> Standings:
    """Group ``keys`` by standing (see ``Standings``), keeping their order."""
    index: dict[tuple[object, ...], int] = {}
    listed = tuple(keys)
    firsts: list[KeyFacts] = []
    classes = []
    for key in listed:
        group = index.setdefault(standing(key), len(firsts))
        if group == len(firsts):
            firsts.append(key)
        classes.append(group)
    return Standings(listed, tuple(classes), tuple(firsts))


def screen_keys(ctx: DrawContext, keys: Iterable[KeyFacts] | Standings,
                holders: Mapping[uuid.UUID, Holder]) -> list[KeyView]:
    """The keys this person is shown, each with why (the screen never hides why).

    A keeper (custodian, duty manager, supervisor) sees every key, and who holds those out.
    A proxy (K6) sees only the keys of the units their letters name, never another owner's
    unit or a master key, with the reason one cannot be drawn now (the owner's phone
    confirmation, an expired letter, out to them). Staff see in their lists the keys they
    may draw, those waiting for a leader's approval (K7) and their own keys out; any other
    key is found by searching its room, with the reason it cannot be drawn; a key out to
    someone else says only that it is out.

    Keys of the same standing share one decision (``Standings``): its code, rules and
    needs are each key's, its reason's wording names the first of them (the screen shows
    the code)."""
    grouped = keys if isinstance(keys, Standings) else standings(keys)
    keeper = bool(ctx.person.roles & KEEPER_ROLES)
    proxy = ctx.card.kind == "owner_proxy"
    # per standing: the verdict were the key in, and whether such a key is hidden (K6) or
    # listed when it is in; the verdict when out is worked out with its first key out
    ins = [_decide_draw(ctx, key, False) for key in grouped.firsts]
    hidden = [proxy and d.code in HIDDEN_FROM_PROXY for d in ins]
    listed_in = [keeper or proxy or d.allowed or d.code == "approval_required" for d in ins]
    # per standing, the verdict when out (K10, or retired), worked out at its first key out:
    # a busy cabinet has hundreds of keys out, all of a few standings
    outs: list[Decision | None] = [None] * len(ins)
    views: list[KeyView] = []
    add = views.append
    for key, group in zip(grouped.keys, grouped.classes, strict=True):
        if hidden[group]:
            continue
        underlying = ins[group]
        if not key.on_loan:
            add(KeyView(key, underlying, listed_in[group]))
            continue
        holder = holders.get(key.id)
        mine = holder is not None and holder.person_id == ctx.person.id
        if mine or keeper or underlying.allowed or underlying.code == "approval_required":
            decision = outs[group]
            if decision is None:
                decision = outs[group] = _decide_draw(ctx, key, True)
        else:
            decision = underlying  # out, but theirs to draw anyway never: say why not
        # A key out can be drawn by no one, so it concerns a colleague only if it is theirs.
        add(KeyView(
            key, decision, listed=keeper or proxy or mine, mine=mine,
            holder=holder if keeper else None,
        ))
    return views


def drawable(ctx: DrawContext, keys: Iterable[KeyFacts]) -> list[tuple[KeyFacts, Decision]]:
    """The keys a person may draw now or once a leader approves (K7), each with its decision."""
    return [(v.key, v.decision) for v in screen_keys(ctx, keys, {})
            if v.decision.allowed or v.decision.code == "approval_required"]


# ------------------------------------------------------------------------ co-signing
def decide_cosign(borrower: PersonFacts, custodian: PersonFacts, identified: Decision) -> Decision:
    """K3: where the key group asks for a human issuer, a custodian other than the borrower."""
    if not identified.allowed:
        return identified
    if "custodian" not in custodian.roles:
        return Decision.deny(
            "cosigner_not_custodian", f"{custodian.name} is not a key custodian", "K3"
        )
    if custodian.id == borrower.id:
        return Decision.deny(
            "cosigner_is_borrower", "the borrower cannot co-sign their own draw", "K3"
        )
    return Decision.allow("cosigned", f"co-signed by {custodian.name}", "K3")


# -------------------------------------------------------------------- night opening
def decide_night_pair(
    *,
    employee: PersonFacts,
    manager: PersonFacts,
    manager_identified: Decision,
    first_tap_at: dt.datetime,
    second_tap_at: dt.datetime,
    window: dt.timedelta,
    roster: Sequence[ShiftFacts],
) -> Decision:
    """K8: after hours the rostered duty manager and the employee tap together: two different
    people, the second tap within ``window`` of the first."""
    if not manager_identified.allowed:
        return Decision.deny(
            manager_identified.code, manager_identified.reason, "K8", *manager_identified.rules
        )
    if manager.id == employee.id:
        return Decision.deny(
            "same_person_twice", "the same person tapped twice; two people are needed", "K8"
        )
    if second_tap_at - first_tap_at > window:
        return Decision.deny(
            "second_tap_too_late",
            f"the duty manager tapped after the {int(window.total_seconds())} s window",
            "K8",
        )
    on_duty = any(
        s.person_id == manager.id and s.starts_at <= second_tap_at < s.ends_at for s in roster
    )
    if not on_duty:
        return Decision.deny(
            "not_on_duty", f"{manager.name} is not the rostered duty manager now", "K8"
        )
    return Decision.allow("night_pair", f"opened with duty manager {manager.name}", "K8")


# ----------------------------------------------------------------------------- returns
def decide_return(*, borrower_id: uuid.UUID, returner_id: uuid.UUID | None) -> Decision:
    """K4/K5: any return is accepted (a key belongs in the cabinet), but a return by someone
    other than the borrower is recorded as such and flagged."""
    if returner_id is not None and returner_id == borrower_id:
        return Decision.allow("returned", "returned by the borrower", "K4")
    if returner_id is None:
        return Decision(
            True,
            "returned_unidentified",
            "returned with a fob tap: the returner is not known",
            ("K4", "K5"),
        )
    return Decision(
        True, "returned_by_other", "returned by someone other than the borrower", ("K4", "K5")
    )


def due_at(key: KeyFacts, drawn_at: dt.datetime, calendar: Calendar) -> dt.datetime:
    """When a loan is due back: the key group's loan time, else the end of the business day."""
    if key.loan_minutes:
        return drawn_at + dt.timedelta(minutes=key.loan_minutes)
    return calendar.end_of_business_day(drawn_at)


# -------------------------------------------------------------------- returner (K4)
def decide_returner(card: CardFacts | None, person: PersonFacts | None,
                    now: dt.datetime) -> Decision:
    """K4: a return records who returned the key, so the badge tapped after a key's fob must
    identify someone (any valid badge: a return by another person is recorded, flagged K5)."""
    identified = identify(card, person, now)
    if not identified.allowed:
        return Decision.deny(identified.code, identified.reason, "K4", *identified.rules)
    assert person is not None  # identified
    return Decision.allow("returner", f"returned by {person.name}", "K4")


# ----------------------------------------------------------------------- handover (H1)
HANDOVER_ROLES = frozenset({"custodian", "duty_manager", "supervisor"})
"""Who keeps the key register across a shift change and so may sign a handover."""


def decide_handover_signer(
    person: PersonFacts, identified: Decision, *, outgoing: PersonFacts | None = None
) -> Decision:
    """H1: a handover is signed by two different keepers of the register.

    ``outgoing`` is None when ``person`` starts the handover, and the outgoing signer when
    ``person`` taps to accept it.
    """
    if not identified.allowed:  # a handover signature is a badge that identifies someone
        return Decision.deny(identified.code, identified.reason, "H1", *identified.rules)
    if not person.active:
        return Decision.deny("person_inactive", f"{person.name} is not active", "H1")
    if not person.roles & HANDOVER_ROLES:
        return Decision.deny(
            "handover_not_keeper",
            f"{person.name} is not a custodian, duty manager or supervisor", "H1",
        )
    if outgoing is not None and person.id == outgoing.id:
        return Decision.deny(
            "handover_same_person", "the incoming staff member must be someone else", "H1"
        )
    return Decision.allow("handover_signer", f"{person.name} may sign the handover", "H1")


# ------------------------------------------------------------- PIN as a second factor
PIN_MAX_TRIES = 5
"""Wrong PINs in a row that lock the card (the ``[pin]`` settings may change it)."""
PIN_LOCKOUT = dt.timedelta(minutes=15)
"""How long a card stays locked after ``PIN_MAX_TRIES`` wrong PINs."""
PIN_MIN_DIGITS = 4
PIN_MAX_DIGITS = 8


@dataclass(frozen=True)
class PinRule:
    """When a draw asks for the person's PIN: a key of one of ``key_groups``, a person with
    one of ``roles``, or after hours when ``after_hours`` is set (README "PIN and duress")."""

    key_groups: frozenset[uuid.UUID] = frozenset()
    roles: frozenset[str] = frozenset()
    after_hours: bool = False
    max_tries: int = PIN_MAX_TRIES
    lockout: dt.timedelta = PIN_LOCKOUT


def pin_causes(rule: PinRule, person: PersonFacts, keys: Iterable[KeyFacts], *,
               business_time: bool) -> tuple[str, ...]:
    """Why this draw needs a PIN (``key_group``, ``role``, ``after_hours``); empty: it
    needs none. The badge is the first factor of K3's borrower confirmation, the PIN the
    second: it guards the opening, so it is asked once the keys are known."""
    causes = []
    if any(key.group_id in rule.key_groups for key in keys):
        causes.append("key_group")
    if person.roles & rule.roles:
        causes.append("role")
    if rule.after_hours and not business_time:
        causes.append("after_hours")
    return tuple(causes)


def pin_locked(locked_until: dt.datetime | None, now: dt.datetime) -> bool:
    """A card locked by wrong PINs stays locked until ``locked_until`` (exclusive)."""
    return locked_until is not None and now < locked_until


@dataclass(frozen=True)
class PinTry:
    """A card's wrong-PIN count after one try, and the lock it earned (if any)."""

    failures: int
    locked_until: dt.datetime | None = None

    @property
    def locked_now(self) -> bool:
        return self.locked_until is not None


def after_pin_try(rule: PinRule, *, failures: int, correct: bool, now: dt.datetime) -> PinTry:
    """A right PIN (or the duress PIN) clears the count; the ``max_tries``-th wrong one in a
    row locks the card for ``lockout`` and starts the count again for after the lock."""
    if correct:
        return PinTry(0)
    failures += 1
    if failures >= rule.max_tries:
        return PinTry(0, now + rule.lockout)
    return PinTry(failures)


def pin_tries_left(rule: PinRule, failures: int) -> int:
    return max(0, rule.max_tries - failures)


def _too_simple(pin: str) -> bool:
    """One digit repeated (0000) or a run up or down (1234, 9876): the first guesses."""
    steps = {int(b) - int(a) for a, b in itertools.pairwise(pin)}
    return len(steps) == 1 and abs(steps.pop()) <= 1


def pin_problem(pin: str, duress: str | None = None) -> str | None:
    """What is wrong with a new PIN (and duress PIN), as a message code; None if nothing.
    4 to 8 digits, not one digit repeated or a run; the duress PIN differs from the PIN."""
    for value in [v for v in (pin, duress) if v is not None]:
        if not (value.isascii() and value.isdigit()) \
                or not PIN_MIN_DIGITS <= len(value) <= PIN_MAX_DIGITS:
            return "pin_format"
        if _too_simple(value):
            return "pin_too_simple"
    if duress is not None and duress == pin:
        return "duress_same_as_pin"
    return None
