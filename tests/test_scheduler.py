"""K9 scheduler: once per (job, local day), across restarts; catch-up; overdue escalation."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kiosk.config import Settings, load_settings
from kiosk.demo import register_simulated_slots
from kiosk.errors import ConfigError
from kiosk.scheduler import COUNT_JOB, REPORT_JOB, Scheduler, run_scheduler
from kiosk.store.models import Alarm, Event
from kiosk.store.models_reports import AlarmEscalation, JobRun, Report
from tests.reports.tower import DAY, Clock, Tower, build_tower, local, open_runtime


@pytest.fixture
def tower(tmp_path: Path, db_url: str) -> Iterator[Tower]:
    runtime = open_runtime(tmp_path, db_url)
    yield build_tower(runtime)
    runtime.close()


def _runs(engine: Engine) -> list[tuple[str, dt.date, bool]]:
    with Session(engine) as s:
        return [(r.job, r.day, r.catch_up) for r in s.scalars(select(JobRun).order_by(JobRun.job))]


def test_k9_job_does_not_run_twice_for_the_same_day_across_a_restart(
    tmp_path: Path, db_url: str
) -> None:
    runtime = open_runtime(tmp_path, db_url)
    tower = build_tower(runtime)
    clock = Clock(local(DAY, 18, 31))
    first = Scheduler(runtime, presence=lambda: dict(tower.presence), clock=clock)
    yesterday = DAY - dt.timedelta(days=1)
    assert first.tick() == [(REPORT_JOB, yesterday), (COUNT_JOB, DAY), (REPORT_JOB, DAY)]
    assert first.tick() == []  # same process, later tick
    runtime.close()

    runtime = open_runtime(tmp_path, db_url)  # the daemon restarts the same evening
    clock.set(DAY, 20, 0)
    again = Scheduler(runtime, presence=lambda: dict(tower.presence), clock=clock)
    assert again.start_up() == []
    assert sorted((j, d) for j, d, _ in _runs(runtime.engine)) == [
        (COUNT_JOB, DAY), (REPORT_JOB, yesterday), (REPORT_JOB, DAY)]
    with Session(runtime.engine) as s:
        assert s.scalar(select(func.count()).select_from(Report)) == 2
    runtime.close()


def test_k9_job_row_is_unique_per_day_even_if_two_schedulers_race(tower: Tower) -> None:
    clock = Clock(local(DAY, 18, 31))
    a = Scheduler(tower.runtime, presence=lambda: dict(tower.presence), clock=clock)
    b = Scheduler(tower.runtime, presence=lambda: dict(tower.presence), clock=clock)
    job = a.jobs[0]
    assert a.run_job(job, DAY, now=clock(), catch_up=False) is True
    assert b.run_job(job, DAY, now=clock(), catch_up=False) is False


def test_k9_missed_jobs_run_at_start_up_for_yesterday_and_today_only(tower: Tower) -> None:
    # The daemon was off from the 25th until the 28th at 19:00.
    clock = Clock(local(DAY + dt.timedelta(days=1), 19, 0))
    scheduler = Scheduler(tower.runtime, presence=lambda: dict(tower.presence), clock=clock)
    ran = scheduler.start_up()
    tomorrow = DAY + dt.timedelta(days=1)
    # yesterday's count cannot be taken late (the sensors show now); its report can
    assert ran == [(REPORT_JOB, DAY), (COUNT_JOB, tomorrow), (REPORT_JOB, tomorrow)]
    assert all(catch_up for _, _, catch_up in _runs(tower.runtime.engine))
    with Session(tower.runtime.engine) as s:
        late = s.scalars(select(Report).where(Report.period_start == DAY)).one()
        assert json.loads(late.content)["count"] is None  # says no count was taken


def test_k9_fresh_install_does_not_count_a_cabinet_that_did_not_exist_yet(
    tmp_path: Path, db_url: str
) -> None:
    """A cabinet installed at 19:00 (``kiosk run --empty``) after the day's count (18:15) and
    report (18:30) were due: the start-up catch-up takes neither for a cabinet that did not
    exist then (the dashboard would show 应在柜 0 把 all day, K9). The next day's jobs run at
    their times as usual."""
    runtime = open_runtime(tmp_path, db_url)
    try:
        runtime.ensure_cabinet()
        register_simulated_slots(runtime, 4, now=local(DAY, 19, 0))
        clock = Clock(local(DAY, 19, 5))
        scheduler = Scheduler(runtime, presence=lambda: {}, clock=clock)
        assert scheduler.start_up() == []
        assert scheduler.tick() == []  # nor at a later tick of the same evening
        with Session(runtime.engine) as s:
            assert s.scalar(select(func.count()).select_from(JobRun)) == 0
            assert s.scalar(select(func.count()).select_from(Event)
                            .where(Event.type == "count.daily")) == 0
        clock.set(DAY + dt.timedelta(days=1), 18, 31)
        tomorrow = DAY + dt.timedelta(days=1)
        assert scheduler.tick() == [(COUNT_JOB, tomorrow), (REPORT_JOB, tomorrow)]
    finally:
        runtime.close()


def test_k9_jobs_wait_for_their_local_time(tower: Tower) -> None:
    clock = Clock(local(DAY, 18, 20))  # count (18:15) due, report (18:30) not yet
    scheduler = Scheduler(tower.runtime, presence=lambda: dict(tower.presence), clock=clock)
    ran = scheduler.tick()
    assert (COUNT_JOB, DAY) in ran and (REPORT_JOB, DAY) not in ran
    assert scheduler.tick() == []
    clock.set(DAY, 18, 30)
    assert scheduler.tick() == [(REPORT_JOB, DAY)]


def test_k9_overdue_escalates_custodian_then_supervisor_after_n_hours_then_long_overdue(
    tmp_path: Path, db_url: str
) -> None:
    runtime = open_runtime(tmp_path, db_url, escalate_supervisor_after_h=3,
                           long_overdue_after_days=2)
    tower = build_tower(runtime)
    loan = tower.draw("U601", "gao", at=local(DAY, 9, 0), hours=2)  # due 11:00
    clock = Clock(local(DAY, 10, 59))
    scheduler = Scheduler(runtime, presence=None, clock=clock)

    def levels() -> list[tuple[str, str]]:
        with Session(runtime.engine) as s:
            rows = s.execute(select(AlarmEscalation.level, AlarmEscalation.to_role)
                             .join(Alarm, Alarm.id == AlarmEscalation.alarm_id)
                             .where(Alarm.loan_id == loan).order_by(AlarmEscalation.at)).all()
            return [(a, b) for a, b in rows]

    assert scheduler.escalate() == 0 and levels() == []
    clock.set(DAY, 11, 0)
    assert scheduler.escalate() == 1
    assert levels() == [("custodian", "custodian")]
    clock.set(DAY, 13, 59)
    assert scheduler.escalate() == 0
    clock.set(DAY, 14, 0)  # 3 h overdue
    assert scheduler.escalate() == 1
    assert levels() == [("custodian", "custodian"), ("supervisor", "supervisor")]
    clock.set(DAY + dt.timedelta(days=2), 11, 0)
    assert scheduler.escalate() == 1
    assert scheduler.escalate() == 0
    assert [lvl for lvl, _ in levels()] == ["custodian", "supervisor", "long_overdue"]
    with Session(runtime.engine) as s:
        alarms = s.scalars(select(Alarm).where(Alarm.loan_id == loan)).all()
        assert [(a.kind, a.rule) for a in alarms] == [("key_overdue", "K9")]  # one alarm, escalated
        events = s.scalars(select(Event).where(Event.type == "alarm.escalated")
                           .order_by(Event.seq)).all()
        payloads = [json.loads(e.payload) for e in events]
        assert [p["level"] for p in payloads] == ["custodian", "supervisor", "long_overdue"]
        assert payloads[1]["to_name"] == "王建国"
        assert all(json.loads(e.rules) == ["K9", "F1"] for e in events)
    runtime.close()


async def test_k9_run_scheduler_catches_up_at_start_and_stops_on_request(tower: Tower) -> None:
    stop = asyncio.Event()
    clock = Clock(local(DAY, 23, 0))
    task = asyncio.create_task(run_scheduler(tower.runtime, presence=lambda: dict(tower.presence),
                                             stop=stop, clock=clock))
    for _ in range(100):
        if len(_runs(tower.runtime.engine)) == 3:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert {(j, d) for j, d, _ in _runs(tower.runtime.engine)} >= {(COUNT_JOB, DAY),
                                                                  (REPORT_JOB, DAY)}


def test_schedule_settings_have_bounds(tmp_path: Path) -> None:
    assert Settings().schedule.daily_report_at == dt.time(18, 30)
    bad = tmp_path / "kiosk.toml"
    bad.write_text("[schedule]\nescalate_supervisor_after_h = 0\nlong_overdue = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(bad)
    assert "schedule.escalate_supervisor_after_h" in str(info.value)
    assert "schedule.long_overdue" in str(info.value)  # strict section: unknown option
    late = tmp_path / "late.toml"
    late.write_text('[schedule]\ndaily_count_at = "19:00"\n')
    with pytest.raises(ConfigError, match="daily_count_at"):
        load_settings(late)


def test_k9_a_scheduler_that_runs_for_days_remembers_only_the_days_it_still_checks(
    tower: Tower,
) -> None:
    # A cabinet's daemon runs for years: what it remembers of the jobs it ran must not grow
    # by two entries a day (issue 15, item 4), and forgetting must not make a job run twice.
    clock = Clock(local(DAY, 19, 0))
    scheduler = Scheduler(tower.runtime, presence=lambda: dict(tower.presence), clock=clock)
    days = [DAY + dt.timedelta(days=n) for n in range(6)]
    for day in days:
        clock.set(day, 19, 0)
        ran = scheduler.tick()
        assert (COUNT_JOB, day) in ran and (REPORT_JOB, day) in ran
        clock.set(day, 21, 0)
        assert scheduler.tick() == []  # the same day later: nothing runs again (K9)
        assert scheduler.days_remembered <= {day - dt.timedelta(days=1), day}
    assert sorted(d for j, d, _ in _runs(tower.runtime.engine) if j == COUNT_JOB) == days
