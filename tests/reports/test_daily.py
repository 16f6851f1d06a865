"""K9 daily count and end-of-day report: mismatches are alarms and listed; keys out listed."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.reports import render
from kiosk.reports.store import data_of
from kiosk.scheduler import Scheduler
from kiosk.store.models import Alarm, AlarmState, Event
from kiosk.store.models_reports import AlarmEscalation, Report
from tests.reports.tower import DAY, Clock, Tower, local


def _daily(tower: Tower) -> dict[str, Any]:
    with Session(tower.runtime.engine) as s:
        row = s.scalars(select(Report).where(Report.kind == "daily",
                                             Report.period_start == DAY)).one()
        return data_of(row)


def test_k9_missing_key_raises_count_mismatch_to_supervisor_and_daily_report_lists_it(
    tower: Tower,
) -> None:
    tower.presence[2] = False  # U602 is gone, but nobody drew it
    scheduler = Scheduler(tower.runtime, presence=lambda: dict(tower.presence),
                          clock=Clock(local(DAY, 18, 31)))
    scheduler.tick()
    with Session(tower.runtime.engine) as s:
        alarms = s.scalars(select(Alarm).where(Alarm.kind == "count_mismatch")).all()
        assert [(a.rule, a.state, a.slot_id is not None) for a in alarms] == [
            ("K9", AlarmState.OPEN, True)]
        assert alarms[0].owner_id == tower.ids["supervisor"]  # addressed to the supervisor
        escalation = s.scalars(select(AlarmEscalation)).one()
        assert (escalation.level, escalation.to_person_id) == ("supervisor",
                                                               tower.ids["supervisor"])
        count = s.scalars(select(Event).where(Event.type == "count.daily")).one()
        assert json.loads(count.rules) == ["K9"] and json.loads(count.payload)["mismatches"] == 1
    report = _daily(tower)
    assert report["count"]["mismatches"] == [
        {"slot": 2, "key_number": "U602", "problem": "missing"}]
    assert report["count"]["expected_in"] == 4 and report["count"]["sensed_in"] == 3
    assert [(a["kind"], a["rule"], a["key_number"]) for a in report["alarms"]] == [
        ("count_mismatch", "K9", "U602")]
    csv_text = render.render_csv(report, "zh").decode("utf-8-sig")
    assert "点数差异" in csv_text and "U602" in csv_text and "记录在柜，传感器为空" in csv_text


def test_k9_key_drawn_today_and_still_out_is_in_the_daily_report_with_its_borrower(
    tower: Tower,
) -> None:
    tower.draw("U601", "gao", at=local(DAY, 10, 5), hours=2, reason="repair")
    back = tower.draw("S-29F", "zhou", at=local(DAY, 11, 0), hours=1)
    tower.give_back(back, at=local(DAY, 11, 40), key="S-29F")
    scheduler = Scheduler(tower.runtime, presence=lambda: dict(tower.presence),
                          clock=Clock(local(DAY, 18, 31)))
    scheduler.tick()
    report = _daily(tower)
    assert report["drawn_today"] == 2 and report["returned_today"] == 1
    [out] = report["out_from_today"]
    assert (out["key_number"], out["borrower"], out["staff_no"]) == ("U601", "高军", "E1001")
    assert out["drawn_at"].startswith("2026-11-27T10:05") and out["due_at"].endswith("+08:00")
    assert out["escalation"] == "supervisor"  # due 12:05, 6 h late by 18:31
    assert report["count"]["mismatches"] == []  # the sensors agree with the records
    en = render.render_csv(report, "en").decode("utf-8-sig")
    assert "Keys drawn today still out" in en and "高军" in en and "Repair" in en
