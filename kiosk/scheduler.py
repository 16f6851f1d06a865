"""The daemon's K9 scheduler: daily count, end-of-day report, overdue escalation.

Restart-safe by construction. A daily job is keyed by (job name, local date) and its
``job_runs`` row is written in the same transaction as the job's result (alarms, report,
events), under a unique constraint: either both commit or neither does, so a job never
runs twice for a day and never half-runs. At start-up the scheduler catches up what a
stopped daemon missed, for yesterday and today only: an older count cannot be taken any
more (the sensors show now, not then: yesterday's missed count is not taken late, and
yesterday's report says no count was taken) and reports for older days can still be made
by hand (``kiosk report daily --date``).

Each tick ends by signing the audit log's head when it moved and, every
``[audit] export_every_min``, copying the checkpoints to ``[audit] export_path``
(``kiosk.services.checkpoints.CheckpointUpkeep``).

Overdue escalation is not a daily job but an idempotent sweep on every tick: each overdue
loan's ``key_overdue`` alarm is escalated to the custodian at its due time, to the
supervisor after ``escalate_supervisor_after_h`` hours and flagged 长期未归 after
``long_overdue_after_days`` days, each level once (unique per alarm and level).

The scheduler is an asyncio task of the daemon. Its database work is short and runs on the
loop like the cabinet's own, so the two never write concurrently from one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kiosk import records
from kiosk.audit import NewEvent
from kiosk.reports import data as report_data
from kiosk.reports import store as report_store
from kiosk.runtime import Runtime
from kiosk.services import alarms as alarm_service
from kiosk.services import handovers, tx
from kiosk.services.checkpoints import CheckpointUpkeep
from kiosk.store.models import (
    Alarm,
    AlarmState,
    Cabinet,
    Key,
    Person,
    PersonRole,
    Role,
)
from kiosk.store.models_reports import AlarmEscalation, JobRun
from kiosk.store.types import utcnow

log = logging.getLogger("kiosk.scheduler")

Clock = Callable[[], dt.datetime]
Presence = Callable[[], dict[int, bool]]
Identities = Callable[[], dict[int, str | None] | None]
AlarmSounder = Callable[[str], None]
"""Identity cabinets: the fob ROM read in each slot at the last scan (None: presence only)."""
ACTOR = "scheduler"
COUNT_JOB = report_data.COUNT_JOB
REPORT_JOB = "daily_report"
CATCH_UP_DAYS = 1
"""Yesterday and today: what a daemon that was down overnight still owes."""


@dataclass(frozen=True)
class DailyJob:
    """A job due once per local day at ``at``; ``run`` works inside the job's transaction."""

    name: str
    at: dt.time
    run: Callable[[Session, dt.date, dt.datetime], dict[str, Any]]
    past_days: bool = True
    """False for the count: sensors show the cabinet now, so yesterday's count cannot be
    taken late; yesterday's report then says honestly that no count was taken."""


class Scheduler:
    """The jobs of one cabinet; ``tick`` does whatever is due at the clock's time."""

    def __init__(
        self, runtime: Runtime, *, presence: Presence | None = None, clock: Clock = utcnow,
        identities: Identities | None = None, on_alarm: AlarmSounder | None = None,
    ) -> None:
        self.runtime = runtime
        self.on_alarm = on_alarm
        """Called with each alarm's kind once it is committed: the daemon sounds the cabinet's
        buzzer and refreshes the idle screen's banner, as for an alarm the cabinet raised."""
        self.options = runtime.settings.schedule
        self.zone = runtime.settings.zone
        self.presence = presence
        self.identities = identities
        """Identity cabinets: slot → fob ROM from the last scan; the count compares keys."""
        self.clock = clock
        self.cabinet = runtime.ensure_cabinet()
        self.jobs = [
            DailyJob(COUNT_JOB, self.options.daily_count_at, self._daily_count, past_days=False),
            DailyJob(REPORT_JOB, self.options.daily_report_at, self._daily_report),
        ]
        self._done: set[tuple[str, dt.date]] = set()
        """(job, day) pairs known to have run, for the days a tick still looks at (today and
        the ``CATCH_UP_DAYS`` before it); older ones are dropped by ``tick``, or a daemon that
        runs for years would keep two entries a day for ever."""
        self.upkeep = CheckpointUpkeep(runtime.audit, runtime.settings.audit)

    # ------------------------------------------------------------------------ driving
    @property
    def days_remembered(self) -> set[dt.date]:
        """The days whose jobs this scheduler remembers as done (at most today and the
        ``CATCH_UP_DAYS`` before it, once it has ticked)."""
        return {day for _, day in self._done}

    def local_today(self, now: dt.datetime) -> dt.date:
        return now.astimezone(self.zone).date()

    def due_at(self, job: DailyJob, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, job.at, tzinfo=self.zone)

    def start_up(self) -> list[tuple[str, dt.date]]:
        """Catch up jobs missed while the daemon was down (yesterday and today at most)."""
        return self.tick(catch_up=True)

    def tick(self, *, catch_up: bool = False) -> list[tuple[str, dt.date]]:
        """Sweep overdue loans, then run every daily job that is due and not yet done.

        The sweep goes first so the end-of-day report shows how far each key was escalated.
        """
        now = self.clock()
        today = self.local_today(now)
        ran: list[tuple[str, dt.date]] = []
        oldest = today - dt.timedelta(days=CATCH_UP_DAYS)
        self._done = {done for done in self._done if done[1] >= oldest}
        self.escalate(now)
        self.lapse_handovers(now)
        self.remind_due_soon(now)
        for back in range(CATCH_UP_DAYS, -1, -1):
            day = today - dt.timedelta(days=back)
            for job in self.jobs:
                if (job.name, day) in self._done or now < self.due_at(job, day):
                    continue
                if self.before_registration(self.due_at(job, day)):
                    continue
                if back > 0 and not job.past_days:
                    continue
                if self.run_job(job, day, now=now, catch_up=catch_up or back > 0):
                    ran.append((job.name, day))
        self.upkeep.tick(now)  # last, so the signed head covers what this tick logged
        return ran

    def before_registration(self, due: dt.datetime) -> bool:
        """True for a job due before this cabinet was registered (``cabinets.registered_at``,
        set when its first slots were): on a fresh install the catch-up would otherwise take
        today's count of a cabinet that did not exist at the count's time, on an empty
        register, and the dashboard would say 应在柜 0 把 all day.

        Why registration and not the first key on record: the cabinet's registration is one
        recorded moment, while keys arrive over hours (imported, then stocked); a count due
        after the cabinet existed but before its keys did is a true count of what was there
        and is taken. NULL (a cabinet registered before this was recorded): no limit."""
        registered = self.cabinet.registered_at
        if registered is None:
            with tx.read(self.runtime.audit) as session:
                registered = session.scalar(
                    select(Cabinet.registered_at).where(Cabinet.id == self.cabinet.id))
            if registered is None:
                return False
            self.cabinet.registered_at = registered
        return due < registered

    def remind_due_soon(self, now: dt.datetime) -> list[Any]:
        """One ``loan.due_soon`` reminder per loan due within ``due_reminder_min``."""
        from kiosk.notify.reminders import any_due_soon, remind_due_soon

        within = dt.timedelta(minutes=self.options.due_reminder_min)
        with tx.read(self.runtime.audit) as session:
            if not any_due_soon(session, cabinet_id=self.cabinet.id, now=now, within=within):
                return []
        with tx.write(self.runtime.audit) as session:
            return remind_due_soon(session, self.runtime.audit, cabinet_id=self.cabinet.id,
                                   now=now, within=within)

    def lapse_handovers(self, now: dt.datetime) -> int:
        """H1: a handover nobody accepted in time is closed and logged, not left hanging."""
        with tx.write(self.runtime.audit) as session:
            return handovers.lapse_expired(session, self.runtime.audit,
                                           cabinet_id=self.cabinet.id, now=now)

    def run_job(self, job: DailyJob, day: dt.date, *, now: dt.datetime, catch_up: bool) -> bool:
        """Run ``job`` for ``day`` unless a ``job_runs`` row says it already ran; True if it ran."""
        try:
            with tx.write(self.runtime.audit) as session:
                if session.scalar(
                    select(JobRun.id).where(JobRun.job == job.name, JobRun.day == day)
                ) is not None:
                    self._done.add((job.name, day))
                    return False
                result = job.run(session, day, now)
                session.add(JobRun(job=job.name, day=day, ran_at=now, catch_up=catch_up,
                                   result=report_data.canonical(result)))
                session.flush()
        except IntegrityError:
            # Another process committed the same (job, day) first: its run stands.
            self._done.add((job.name, day))
            return False
        self._done.add((job.name, day))
        log.info("K9 job %s for %s done%s", job.name, day, " (catch-up)" if catch_up else "")
        return True

    # --------------------------------------------------------------------- daily count
    def _people_with(self, session: Session, role: Role) -> list[Person]:
        return list(session.scalars(
            select(Person).join(PersonRole).where(PersonRole.role == role, Person.active.is_(True))
            .order_by(Person.staff_no)
        ))

    def _daily_count(self, session: Session, day: dt.date, now: dt.datetime) -> dict[str, Any]:
        """K9: sensors vs records vs open loans; each mismatched slot is an alarm to the supervisor."""
        cabinet_id = self.cabinet.id
        sensed = dict(self.presence()) if self.presence is not None else None
        fobs = self.identities() if self.identities is not None else None
        count = report_data.take_count(session, cabinet_id=cabinet_id, sensed=sensed,
                                       zone=self.zone, now=now, fobs=fobs)
        mismatches, open_loans = count.mismatches, count.open_loans
        supervisors = self._people_with(session, Role.SUPERVISOR)
        supervisor = supervisors[0] if supervisors else None
        raised = []
        for m in mismatches:
            slot_id = records.slot_id(session, cabinet_id=cabinet_id, number=m.slot)
            if records.has_open_alarm(session, kind="count_mismatch", slot=slot_id):
                continue  # still open from an earlier count: one alarm per discrepancy
            key_id = session.scalar(select(Key.id).where(Key.key_number == m.key_number)) \
                if m.key_number else None
            problem = {"missing": "records say the key is in, the slot is empty",
                       "wrong_key": "the slot holds another key "
                                    f"({getattr(m, 'found', None) or 'unregistered'})",
                       }.get(m.problem, "the slot holds a key the records say is out")
            alarm = alarm_service.raise_alarm(
                session, self.runtime.audit, kind="count_mismatch", rule="K9",
                message=f"K9 daily count {day}: slot {m.slot} ({m.key_number or 'no key'}): "
                        f"{problem}",
                actors=[ACTOR], cabinet_id=cabinet_id, slot_id=slot_id, key_id=key_id,
                owner_id=supervisor.id if supervisor else None, at=now,
            )
            self._escalate_alarm(session, alarm, "supervisor", supervisor, now=now,
                                 extra={"slot": m.slot, "problem": m.problem})
            raised.append(str(alarm.id))
        tx.log(session, self.runtime.audit, NewEvent(
            type="count.daily", actors=[ACTOR], rules=["K9"],
            payload={"day": day.isoformat(), "expected_in": count.expected_in,
                     "sensed_in": count.sensed_in, "open_loans": open_loans,
                     "mismatches": len(mismatches), "alarms": raised,
                     "compared": "identity" if count.identity_checked else "presence",
                     # issue 13: how many slots' keys were identified, how many only present
                     "identified": count.tally("identified"),
                     "present_only": count.tally("present_only")},
        ))
        return dataclasses.asdict(count)

    # -------------------------------------------------------------------- daily report
    def _daily_report(self, session: Session, day: dt.date, now: dt.datetime) -> dict[str, Any]:
        """K9: the end-of-day report, stored (never deleted) in the configured language."""
        report = report_data.build_daily(
            session, cabinet_id=self.cabinet.id, cabinet=self.cabinet.name, day=day,
            zone=self.zone, now=now,
        )
        row = report_store.save(session, self.runtime.audit, report=report,
                                language=self.options.report_language, now=now,
                                site=self.runtime.settings.site)
        return {"report": str(row.id), "sha256": row.sha256,
                "out_from_today": len(report.out_from_today),
                "out_from_earlier": len(report.out_from_earlier)}

    # ---------------------------------------------------------------------- escalation
    def _escalate_alarm(
        self, session: Session, alarm: Alarm, level: str, person: Person | None, *,
        now: dt.datetime, extra: dict[str, Any] | None = None,
    ) -> None:
        to_role = "custodian" if level == "custodian" else "supervisor"
        row = AlarmEscalation(alarm_id=alarm.id, level=level, to_role=to_role,
                              to_person_id=person.id if person else None, at=now)
        session.add(row)
        session.flush()
        stored = tx.log(session, self.runtime.audit, NewEvent(
            type="alarm.escalated", actors=[ACTOR], rules=["K9", "F1"],
            key_number=session.scalar(select(Key.key_number).where(Key.id == alarm.key_id))
            if alarm.key_id else None,
            payload={"alarm": str(alarm.id), "kind": alarm.kind, "level": level,
                     "to_role": to_role, "to_person": str(person.id) if person else None,
                     "to_name": person.name if person else None, **(extra or {})},
        ))
        row.event_seq = stored.seq

    def escalate(self, now: dt.datetime | None = None) -> int:
        """Escalate every overdue loan's alarm as far as its lateness calls for; returns how many steps."""
        now = now or self.clock()
        supervisor_after = dt.timedelta(hours=self.options.escalate_supervisor_after_h)
        long_after = dt.timedelta(days=self.options.long_overdue_after_days)
        steps = 0
        raised: list[str] = []
        with tx.write(self.runtime.audit) as session:
            overdue = [x for x in records.loans_out(session, cabinet_id=self.cabinet.id)
                       if x.due_at <= now]
            if not overdue:
                return 0
            custodians = self._people_with(session, Role.CUSTODIAN)
            supervisors = self._people_with(session, Role.SUPERVISOR)
            for loan in overdue:
                alarm = session.scalars(
                    select(Alarm).where(Alarm.kind == "key_overdue", Alarm.loan_id == loan.id,
                                        Alarm.state != AlarmState.CLOSED)
                    .order_by(Alarm.raised_at.desc())
                ).first()
                if alarm is None:
                    alarm = alarm_service.raise_alarm(
                        session, self.runtime.audit, kind="key_overdue", rule="K9",
                        message=f"{loan.key.key_number} drawn by {loan.borrower.name} was due "
                                f"{loan.due_at.isoformat()}",
                        actors=[ACTOR], cabinet_id=self.cabinet.id, key_id=loan.key_id,
                        loan_id=loan.id, at=now, owners=self.runtime.settings.alarms.table(),
                    )
                    raised.append(alarm.kind)
                have = set(session.scalars(
                    select(AlarmEscalation.level).where(AlarmEscalation.alarm_id == alarm.id)
                ))
                late = now - loan.due_at
                wanted = [("custodian", custodians)]
                if late >= supervisor_after:
                    wanted.append(("supervisor", supervisors))
                if late >= long_after:
                    wanted.append(("long_overdue", supervisors))
                for level, people in wanted:
                    if level in have:
                        continue
                    self._escalate_alarm(
                        session, alarm, level, people[0] if people else None, now=now,
                        extra={"loan": str(loan.id),
                               "overdue_hours": round(late.total_seconds() / 3600, 1)},
                    )
                    steps += 1
        for kind in raised:  # after the commit: nothing sounds for an alarm that was not stored
            self._sound(kind)
        return steps

    def _sound(self, kind: str) -> None:
        if self.on_alarm is None:
            return
        try:
            self.on_alarm(kind)
        except Exception:  # a buzzer fault must not undo or repeat the escalation
            log.exception("sounding the %s alarm at the cabinet failed", kind)


async def run_scheduler(
    runtime: Runtime,
    *,
    presence: Presence | None,
    stop: asyncio.Event,
    clock: Clock = utcnow,
    identities: Identities | None = None,
    on_alarm: AlarmSounder | None = None,
) -> None:
    """The daemon's scheduler task: catch up at start, then tick every ``poll_s`` until ``stop``.

    A failing tick is logged and retried at the next one: a database hiccup must not end
    K9 reporting for the rest of the daemon's life.
    """
    if not runtime.settings.schedule.enabled:
        await stop.wait()
        return
    scheduler = Scheduler(runtime, presence=presence, clock=clock, identities=identities,
                          on_alarm=on_alarm)
    first = True
    while not stop.is_set():
        try:
            scheduler.tick(catch_up=first)
        except Exception:
            log.exception("K9 scheduler tick failed; retrying in %ss",
                          runtime.settings.schedule.poll_s)
        first = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=runtime.settings.schedule.poll_s)

