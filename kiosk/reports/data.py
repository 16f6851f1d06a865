"""The reports as data: frozen dataclasses built from the register, rendered elsewhere.

A report is computed once, frozen as canonical JSON (``content()``) and stored with its
SHA-256 (``kiosk.reports.store``); CSV and PDF are renderings of that JSON, so a report
downloaded a year later shows exactly what the supervisor was shown that evening (K9).
Times in the content are local ISO strings with their offset: a report is read by people.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from kiosk.errors import NotFound
from kiosk.store.models import (
    Alarm,
    AlarmState,
    Handover,
    HandoverState,
    Key,
    KeyStatus,
    Loan,
    Person,
    Slot,
)
from kiosk.store.models_reports import AlarmEscalation, JobRun

COUNT_JOB = "daily_count"


@dataclass(frozen=True)
class LoanLine:
    """One key out (or one past loan, in the histories)."""

    key_number: str
    label: str
    borrower: str
    staff_no: str
    reason: str
    drawn_at: str
    due_at: str
    returned_at: str | None = None
    overdue_hours: float = 0.0
    escalation: str | None = None
    duty_manager: str | None = None
    """K8: the duty manager who co-signed a draw after hours."""
    returned_by: str | None = None
    """Who put the key back (the borrower, or someone else: then ``returned_by_other``)."""
    returned_by_other: bool = False
    """K5: returned by someone other than the borrower."""


@dataclass(frozen=True)
class Mismatch:
    slot: int
    key_number: str | None
    problem: str  # "missing": records say in, sensor says empty; "unexpected": the reverse;
    # "wrong_key" (identity cabinets, ``WrongKey``): another fob hangs where this key should be


@dataclass(frozen=True)
class WrongKey(Mismatch):
    """Identity cabinets (issue 13): the slot holds a key, but not the one the records put
    there; ``found`` is the key whose fob was read (None: an unregistered fob)."""

    found: str | None = None


@dataclass(frozen=True)
class SlotCheck:
    """One slot of the count, as a person checking the cabinet reads it (issue 13): the key
    the records put there and how it was counted. ``check`` is ``identified`` (the slot's
    receptor read this key's own fob), ``present_only`` (a key is there but which one was
    not read: a presence-only cabinet, a key whose fob is not paired yet, or a receptor that
    could not read it), ``wrong_key``, ``missing`` or ``unexpected`` (as in ``Mismatch``)."""

    slot: int
    key_number: str | None
    check: str


@dataclass(frozen=True)
class CountResult:
    """K9 daily count: the sensors against the records and the open loans."""

    counted_at: str
    sensors_available: bool
    keys_total: int
    expected_in: int
    sensed_in: int | None
    open_loans: int
    mismatches: list[Mismatch] = field(default_factory=list)
    identity_checked: bool = False
    """The count compared which key hangs in each slot (identity cabinet), not presence only."""
    slots: list[SlotCheck] = field(default_factory=list)
    """Every slot the records or the sensors say holds a key, with how it was counted (empty
    for a count from the records alone, and in counts stored before issue 13)."""

    def tally(self, check: str) -> int:
        return sum(1 for x in self.slots if x.check == check)


@dataclass(frozen=True)
class AlarmLine:
    kind: str
    rule: str | None
    key_number: str | None
    message: str
    state: str
    raised_at: str


@dataclass(frozen=True)
class Movement:
    """One line of the day's movement log: a key drawn or put back, by whom, where."""

    at: str
    movement: str  # "draw" or "return"
    key_number: str
    label: str
    person: str
    """The borrower for a draw; whoever put the key back for a return."""
    staff_no: str
    borrower: str
    slot: int | None
    reason: str
    duty_manager: str | None = None
    returned_by_other: bool = False


@dataclass(frozen=True)
class DailyReport:
    """K9 当日钥匙当日点清: keys drawn today still out, the count, the day's movements and
    every alarm of the day or still open (all kinds, not only K9's)."""

    cabinet: str
    day: str
    as_of: str
    drawn_today: int
    returned_today: int
    out_from_today: list[LoanLine]
    out_from_earlier: list[LoanLine]
    count: CountResult | None
    alarms: list[AlarmLine]
    movements: list[Movement] = field(default_factory=list)
    kind: str = "daily"


@dataclass(frozen=True)
class OverdueReport:
    """Every key past its due time, longest first, with how far it has been escalated."""

    cabinet: str
    as_of: str
    long_overdue_days: int
    overdue: list[LoanLine]
    kind: str = "overdue"


@dataclass(frozen=True)
class KeyHistory:
    cabinet: str
    key_number: str
    label: str
    period_start: str
    period_end: str
    loans: list[LoanLine]
    alarms: list[AlarmLine]
    kind: str = "key"


@dataclass(frozen=True)
class PersonHistory:
    cabinet: str
    staff_no: str
    name: str
    period_start: str
    period_end: str
    loans: list[LoanLine]
    kind: str = "person"


@dataclass(frozen=True)
class OpenAlarmLine(AlarmLine):
    """An alarm not yet closed, with its latest follow-up note (H1: what is handed over)."""

    follow_up: str | None = None


@dataclass(frozen=True)
class Signature:
    """Who signed a handover and how: a badge tap (``card``) or a linked admin account."""

    name: str
    staff_no: str
    at: str
    card: str | None = None
    account: str | None = None


@dataclass(frozen=True)
class HandoverReport:
    """H1 交接班 "三清 / 三明": what happened in the shift, what is handed over, the counts.

    Frozen when the outgoing staff member starts the handover, so both sign the same
    content; ``incoming`` is filled in when the incoming staff member taps to accept.
    """

    cabinet: str
    handover: str
    period_start: str
    period_end: str
    outgoing: Signature
    drawn: int
    returned: int
    alarms_raised: list[AlarmLine]
    keys_out: list[LoanLine]
    open_alarms: list[OpenAlarmLine]
    count: CountResult
    overdue: int
    notes: str | None = None
    incoming: Signature | None = None
    kind: str = "handover"


AnyReport = DailyReport | OverdueReport | KeyHistory | PersonHistory | HandoverReport


def content(report: AnyReport) -> dict[str, Any]:
    """The report as a JSON-ready dict (what is stored, hashed and rendered)."""
    return dataclasses.asdict(report)


def canonical(data: dict[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8 kept: the same report always hashes the same."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------------------ helpers
def local_iso(value: dt.datetime | None, zone: ZoneInfo) -> str | None:
    return value.astimezone(zone).isoformat(timespec="seconds") if value else None


def day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants where a local day starts and ends (DST-safe: built from local midnights)."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def _escalations(session: Session, loan_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Highest escalation level reached per loan (through its key_overdue alarm)."""
    order = {"custodian": 1, "supervisor": 2, "long_overdue": 3}
    if not loan_ids:
        return {}
    rows = session.execute(
        select(Alarm.loan_id, AlarmEscalation.level)
        .join(AlarmEscalation, AlarmEscalation.alarm_id == Alarm.id)
        .where(Alarm.loan_id.in_(loan_ids))
    ).all()
    best: dict[uuid.UUID, str] = {}
    for loan_id, level in rows:
        if loan_id is not None and order[level] > order.get(best.get(loan_id, ""), 0):
            best[loan_id] = level
    return best


def names_of(session: Session, loans: Sequence[Loan]) -> dict[uuid.UUID, str]:
    """Names of the duty managers and returners of ``loans`` (one query, not one per loan)."""
    ids = {i for x in loans for i in (x.duty_manager_id, x.returned_by_id) if i is not None}
    if not ids:
        return {}
    return dict(session.execute(select(Person.id, Person.name).where(Person.id.in_(ids))).all())


def loan_line(
    loan: Loan, zone: ZoneInfo, *, as_of: dt.datetime, escalation: str | None = None,
    names: dict[uuid.UUID, str] | None = None,
) -> LoanLine:
    end = loan.returned_at if loan.returned_at and loan.returned_at <= as_of else as_of
    late = max(0.0, (end - loan.due_at).total_seconds() / 3600)
    names = names or {}
    back = loan.returned_at is not None and loan.returned_at <= as_of
    return LoanLine(
        key_number=loan.key.key_number,
        label=loan.key.label,
        borrower=loan.borrower.name,
        staff_no=loan.borrower.staff_no,
        reason=loan.reason_text or loan.reason_code,
        drawn_at=local_iso(loan.drawn_at, zone) or "",
        due_at=local_iso(loan.due_at, zone) or "",
        returned_at=local_iso(loan.returned_at, zone)
        if loan.returned_at and loan.returned_at <= as_of else None,
        overdue_hours=round(late, 1),
        escalation=escalation,
        duty_manager=names.get(loan.duty_manager_id) if loan.duty_manager_id else None,
        returned_by=(names.get(loan.returned_by_id) if loan.returned_by_id else None)
        if back else None,
        returned_by_other=bool(loan.returned_by_other) if back else False,
    )


def _alarm_line(alarm: Alarm, key_number: str | None, zone: ZoneInfo) -> AlarmLine:
    return AlarmLine(
        kind=alarm.kind, rule=alarm.rule, key_number=key_number, message=alarm.message,
        state=alarm.state.value, raised_at=local_iso(alarm.raised_at, zone) or "",
    )


def _loans(session: Session) -> Any:
    return select(Loan).options(selectinload(Loan.key), selectinload(Loan.borrower))


def _still_out(as_of: dt.datetime) -> Any:
    return (Loan.returned_at.is_(None)) | (Loan.returned_at > as_of)


# ------------------------------------------------------------------------------ builders
def build_daily(
    session: Session,
    *,
    cabinet_id: uuid.UUID,
    cabinet: str,
    day: dt.date,
    zone: ZoneInfo,
    now: dt.datetime,
) -> DailyReport:
    """K9 for ``day``, as of ``now`` (or the day's end, for a day already over)."""
    start, end = day_bounds(day, zone)
    as_of = min(now, end)
    mine = Loan.cabinet_id == cabinet_id
    drawn = session.scalars(
        _loans(session).where(mine, Loan.drawn_at >= start, Loan.drawn_at < as_of)
        .order_by(Loan.drawn_at)
    ).all()
    returned = session.scalars(
        _loans(session).where(mine, Loan.returned_at >= start, Loan.returned_at < as_of)
        .order_by(Loan.returned_at)
    ).all()
    earlier = session.scalars(
        _loans(session).where(mine, Loan.drawn_at < start, _still_out(as_of))
        .order_by(Loan.drawn_at)
    ).all()
    today_out = [x for x in drawn if x.returned_at is None or x.returned_at > as_of]
    esc = _escalations(session, [x.id for x in [*today_out, *earlier]])
    names = names_of(session, [*drawn, *returned, *earlier])
    count_row = session.scalars(
        select(JobRun).where(JobRun.job == COUNT_JOB, JobRun.day == day)
    ).one_or_none()
    count = count_from_json(json.loads(count_row.result)) if count_row else None
    alarms = session.execute(
        select(Alarm, Key.key_number)
        .outerjoin(Key, Alarm.key_id == Key.id)
        .where(
            (Alarm.cabinet_id == cabinet_id) | Alarm.cabinet_id.is_(None),
            # the count raises its alarms at the report's own tick, so "by now" includes
            # that instant; a finished day stops before the next day's first instant
            Alarm.raised_at <= as_of if as_of < end else Alarm.raised_at < end,
            # raised that day, or raised earlier and still not closed: nothing drops out
            (Alarm.raised_at >= start) | (Alarm.state != AlarmState.CLOSED),
        )
        # every kind, grouped by kind for the reader (F1: each one has someone to answer it)
        .order_by(Alarm.kind, Alarm.raised_at)
    ).all()
    return DailyReport(
        cabinet=cabinet,
        day=day.isoformat(),
        as_of=local_iso(as_of, zone) or "",
        drawn_today=len(drawn),
        returned_today=len(returned),
        out_from_today=[loan_line(x, zone, as_of=as_of, escalation=esc.get(x.id), names=names)
                        for x in today_out],
        out_from_earlier=[loan_line(x, zone, as_of=as_of, escalation=esc.get(x.id), names=names)
                          for x in earlier],
        count=count,
        alarms=[_alarm_line(a, k, zone) for a, k in alarms],
        movements=movements(session, drawn=drawn, returned=returned, zone=zone, names=names),
    )


def movements(
    session: Session, *, drawn: Sequence[Loan], returned: Sequence[Loan], zone: ZoneInfo,
    names: dict[uuid.UUID, str],
) -> list[Movement]:
    """The day's draws and returns in time order: who, which key, which slot, under whose
    co-signature (K8), and whether someone else put it back (K5)."""
    slot_ids = {i for x in [*drawn, *returned]
                for i in (x.key.home_slot_id, x.return_slot_id) if i is not None}
    slots = dict(session.execute(
        select(Slot.id, Slot.number).where(Slot.id.in_(slot_ids))).all()) if slot_ids else {}
    lines: list[tuple[dt.datetime, int, Movement]] = []
    for x in drawn:
        lines.append((x.drawn_at, 0, Movement(
            at=local_iso(x.drawn_at, zone) or "", movement="draw", key_number=x.key.key_number,
            label=x.key.label, person=x.borrower.name, staff_no=x.borrower.staff_no,
            borrower=x.borrower.name, slot=slots.get(x.key.home_slot_id)
            if x.key.home_slot_id else None, reason=x.reason_text or x.reason_code,
            duty_manager=names.get(x.duty_manager_id) if x.duty_manager_id else None,
        )))
    for x in returned:
        assert x.returned_at is not None
        who = names.get(x.returned_by_id) if x.returned_by_id else None
        lines.append((x.returned_at, 1, Movement(
            at=local_iso(x.returned_at, zone) or "", movement="return",
            key_number=x.key.key_number, label=x.key.label, person=who or "",
            staff_no="", borrower=x.borrower.name,
            slot=slots.get(x.return_slot_id) if x.return_slot_id else None,
            reason=x.reason_text or x.reason_code, returned_by_other=bool(x.returned_by_other),
        )))
    lines.sort(key=lambda t: (t[0], t[1]))
    return [m for _, _, m in lines]


def count_from_json(data: dict[str, Any]) -> CountResult:
    mismatches = [WrongKey(**m) if m.get("problem") == "wrong_key" else Mismatch(**m)
                  for m in data.get("mismatches", [])]
    slots = [SlotCheck(**x) for x in data.get("slots", [])]
    return CountResult(**{**data, "mismatches": mismatches, "slots": slots})


def build_overdue(
    session: Session, *, cabinet_id: uuid.UUID, cabinet: str, zone: ZoneInfo, now: dt.datetime,
    long_overdue_days: int,
) -> OverdueReport:
    rows = session.scalars(
        _loans(session).where(
            Loan.cabinet_id == cabinet_id, Loan.returned_at.is_(None), Loan.due_at <= now
        ).order_by(Loan.due_at)
    ).all()
    esc = _escalations(session, [x.id for x in rows])
    names = names_of(session, rows)
    return OverdueReport(
        cabinet=cabinet, as_of=local_iso(now, zone) or "", long_overdue_days=long_overdue_days,
        overdue=[loan_line(x, zone, as_of=now, escalation=esc.get(x.id), names=names)
                 for x in rows],
    )


def build_key_history(
    session: Session, *, cabinet: str, key_number: str, start: dt.date, end: dt.date,
    zone: ZoneInfo, now: dt.datetime,
) -> KeyHistory:
    key = session.scalars(select(Key).where(Key.key_number == key_number)).one_or_none()
    if key is None:
        raise NotFound(f"key {key_number} does not exist")
    lo, _ = day_bounds(start, zone)
    _, hi = day_bounds(end, zone)
    loans = session.scalars(
        _loans(session).where(Loan.key_id == key.id, Loan.drawn_at >= lo, Loan.drawn_at < hi)
        .order_by(Loan.drawn_at)
    ).all()
    names = names_of(session, loans)
    alarms = session.scalars(
        select(Alarm).where(Alarm.key_id == key.id, Alarm.raised_at >= lo, Alarm.raised_at < hi)
        .order_by(Alarm.raised_at)
    ).all()
    return KeyHistory(
        cabinet=cabinet, key_number=key.key_number, label=key.label,
        period_start=start.isoformat(), period_end=end.isoformat(),
        loans=[loan_line(x, zone, as_of=now, names=names) for x in loans],
        alarms=[_alarm_line(a, key.key_number, zone) for a in alarms],
    )


def build_person_history(
    session: Session, *, cabinet: str, staff_no: str, start: dt.date, end: dt.date,
    zone: ZoneInfo, now: dt.datetime,
) -> PersonHistory:
    person = session.scalars(select(Person).where(Person.staff_no == staff_no)).one_or_none()
    if person is None:
        raise NotFound(f"person with staff number {staff_no} does not exist")
    lo, _ = day_bounds(start, zone)
    _, hi = day_bounds(end, zone)
    loans = session.scalars(
        _loans(session).where(
            Loan.borrower_id == person.id, Loan.drawn_at >= lo, Loan.drawn_at < hi
        ).order_by(Loan.drawn_at)
    ).all()
    names = names_of(session, loans)
    return PersonHistory(
        cabinet=cabinet, staff_no=person.staff_no, name=person.name,
        period_start=start.isoformat(), period_end=end.isoformat(),
        loans=[loan_line(x, zone, as_of=now, names=names) for x in loans],
    )


def take_count(
    session: Session, *, cabinet_id: uuid.UUID, sensed: dict[int, bool] | None,
    zone: ZoneInfo, now: dt.datetime, fobs: dict[int, str | None] | None = None,
) -> CountResult:
    """K9/H1: the slot sensors against the records and the open loans, now.

    ``sensed`` is the cabinet's last scan (slot → key present), or None when no cabinet is
    attached (a count from the records alone, and the result says so). ``fobs`` (identity
    cabinets) is the fob ROM read in each slot: a slot holding another key than the one the
    records put there is a ``wrong_key`` mismatch, which presence alone cannot see (issue 13).
    """
    from kiosk import records  # the register's queries; imported late to keep data.py light

    expected = records.expected_presence(session, cabinet_id=cabinet_id)
    homes = dict(session.execute(
        select(Slot.number, Key.key_number).join(Key, Key.home_slot_id == Slot.id)
        .where(Slot.cabinet_id == cabinet_id, Key.status == KeyStatus.ACTIVE)
    ).all())
    open_loans = len(records.loans_out(session, cabinet_id=cabinet_id))
    roms = {number: rom for number, rom in records.expected_roms(
        session, cabinet_id=cabinet_id).values() if rom is not None} if fobs is not None else {}
    mismatches: list[Mismatch] = []
    checks: dict[int, SlotCheck] = {}
    if sensed is not None:
        for slot, key_number in sorted(expected.items()):
            read = fobs.get(slot) if fobs is not None else None
            if not sensed.get(slot, False):
                mismatches.append(Mismatch(slot, key_number, "missing"))
                checks[slot] = SlotCheck(slot, key_number, "missing")
            elif read is not None and key_number in roms and read != roms[key_number]:
                found = session.scalar(select(Key.key_number).where(Key.fob_rom == read))
                mismatches.append(WrongKey(slot, key_number, "wrong_key", found))
                checks[slot] = SlotCheck(slot, key_number, "wrong_key")
            elif read is not None and key_number in roms:
                checks[slot] = SlotCheck(slot, key_number, "identified")
            else:  # presence-only cabinet, fob not paired yet, or the receptor read nothing
                checks[slot] = SlotCheck(slot, key_number, "present_only")
        for slot, present in sorted(sensed.items()):
            if present and slot not in expected:
                mismatches.append(Mismatch(slot, homes.get(slot), "unexpected"))
                checks[slot] = SlotCheck(slot, homes.get(slot), "unexpected")
    return CountResult(
        counted_at=local_iso(now, zone) or "",
        sensors_available=sensed is not None,
        keys_total=len(homes),
        expected_in=len(expected),
        sensed_in=sum(1 for v in sensed.values() if v) if sensed is not None else None,
        open_loans=open_loans,
        mismatches=mismatches,
        identity_checked=fobs is not None and sensed is not None,
        slots=[checks[n] for n in sorted(checks)],
    )


def handover_period_start(
    session: Session, *, cabinet_id: uuid.UUID, zone: ZoneInfo, now: dt.datetime
) -> dt.datetime:
    """The shift being handed over began at the last accepted handover, or local midnight."""
    last = session.scalar(
        select(Handover.accepted_at)
        .where(Handover.cabinet_id == cabinet_id, Handover.state == HandoverState.ACCEPTED)
        .order_by(Handover.accepted_at.desc()).limit(1)
    )
    midnight, _ = day_bounds(now.astimezone(zone).date(), zone)
    return last if last is not None and last <= now else midnight


def build_handover(
    session: Session, *, cabinet_id: uuid.UUID, cabinet: str, handover_id: uuid.UUID,
    outgoing: Signature, since: dt.datetime, now: dt.datetime, zone: ZoneInfo,
    sensed: dict[int, bool] | None, notes: str | None,
    fobs: dict[int, str | None] | None = None,
) -> HandoverReport:
    """H1 for the shift ``since`` → ``now``: the three 清 — happened, handed over, counted."""
    mine = Loan.cabinet_id == cabinet_id
    drawn = session.scalar(
        select(func.count()).select_from(Loan)
        .where(mine, Loan.drawn_at >= since, Loan.drawn_at <= now)
    ) or 0
    returned = session.scalar(
        select(func.count()).select_from(Loan)
        .where(mine, Loan.returned_at >= since, Loan.returned_at <= now)
    ) or 0
    out = session.scalars(
        _loans(session).where(mine, Loan.returned_at.is_(None)).order_by(Loan.drawn_at)
    ).all()
    esc = _escalations(session, [x.id for x in out])
    keyed = (
        select(Alarm, Key.key_number).outerjoin(Key, Alarm.key_id == Key.id)
        .where((Alarm.cabinet_id == cabinet_id) | Alarm.cabinet_id.is_(None))
        .options(selectinload(Alarm.notes))
        .order_by(Alarm.raised_at)
    )
    raised = session.execute(keyed.where(Alarm.raised_at >= since, Alarm.raised_at <= now)).all()
    still_open = session.execute(keyed.where(Alarm.state != AlarmState.CLOSED)).all()
    return HandoverReport(
        cabinet=cabinet,
        handover=str(handover_id),
        period_start=local_iso(since, zone) or "",
        period_end=local_iso(now, zone) or "",
        outgoing=outgoing,
        drawn=drawn,
        returned=returned,
        alarms_raised=[_alarm_line(a, k, zone) for a, k in raised],
        keys_out=[loan_line(x, zone, as_of=now, escalation=esc.get(x.id)) for x in out],
        open_alarms=[
            OpenAlarmLine(**dataclasses.asdict(_alarm_line(a, k, zone)),
                          follow_up=a.notes[-1].text if a.notes else None)
            for a, k in still_open
        ],
        count=take_count(session, cabinet_id=cabinet_id, sensed=sensed, zone=zone, now=now,
                         fobs=fobs),  # an identity cabinet's handover counts identities too
        overdue=sum(1 for x in out if x.due_at <= now),
        notes=notes,
    )

