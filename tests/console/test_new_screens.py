"""The console's screens for reports on demand, bulk import and card enrolment by tapping
(issue 11), over HTTP on the real admin app: each runs the REST operation it mirrors, so the
checks and events are the API's; every refusal is shown beside its field or row, in zh
and en."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kiosk.scheduler import COUNT_JOB, Scheduler
from kiosk.services import alarms as alarm_service
from kiosk.services import tx
from kiosk.store.models import Card, Event, Key, Unit
from kiosk.store.models_auth import AccountRole
from kiosk.store.models_reports import Report
from tests.api.conftest import World, attached_cabinet
from tests.console.conftest import console_user

ERROR = re.compile(r'<span class="error" id="([a-z0-9_-]+)-error">([^<]+)</span>')
BLOB = re.compile(r'name="blob" value="([^"]+)"')


def _count(world: World, model: type) -> int:
    with Session(world.runtime.engine) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _events(world: World, type_: str) -> list[dict[str, Any]]:
    with Session(world.runtime.engine) as s:
        return [json.loads(e.payload) for e in
                s.scalars(select(Event).where(Event.type == type_).order_by(Event.seq))]


# ----------------------------------------------------------------------------- reports
def test_a_report_is_previewed_without_storing_then_issued_K9(world: World) -> None:
    supervisor = console_user(world, AccountRole.SUPERVISOR)
    assert supervisor.get("/console/reports/new").status_code == 200

    page = supervisor.get("/console/reports/new?kind=daily")
    assert page.status_code == 200, page.text
    assert 'id="report-preview"' in page.text and "预览（未保存）" in page.text
    pdf = supervisor.get("/console/reports/preview.pdf?kind=daily")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    csv = supervisor.get("/console/reports/preview.csv?kind=overdue&language=en")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert _count(world, Report) == 0  # a preview stores nothing

    issued = supervisor.post("/console/reports/new", {"kind": "daily", "language": "zh"})
    assert issued.status_code == 303, issued.text
    assert _count(world, Report) == 1
    detail = supervisor.get(issued.headers["location"])
    assert "报表已出具并保存" in detail.text
    acknowledged = supervisor.post(issued.headers["location"] + "/acknowledge", {"note": "已阅"})
    assert acknowledged.status_code == 303


HEADINGS = re.compile(r"<(?:dt|th scope=\"col\"|h3|h4)>([^<]+)</")
CELLS = re.compile(r'<td data-label="[^"]*">([^<]*)</td>')
RAW = re.compile(r"^[a-z]+(?:_[a-z]+)+$")  # an identifier such as counted_at or door_forced


def test_a_daily_report_reads_in_the_readers_language_not_in_field_names_K9(
        world: World) -> None:
    """K9: the stored daily report, with its count and a forced-door alarm, shown on its
    page: every field name and alarm kind in zh-CN or English, never ``counted_at``,
    ``keys_total`` or ``door_forced``."""
    runtime = world.runtime
    scheduler = Scheduler(runtime, presence=dict)
    now = dt.datetime.now(dt.UTC)
    count_job = next(job for job in scheduler.jobs if job.name == COUNT_JOB)
    assert scheduler.run_job(count_job, scheduler.local_today(now), now=now, catch_up=False)
    with tx.write(runtime.audit) as s:
        alarm_service.raise_alarm(s, runtime.audit, kind="door_forced", rule="K2", actors=[],
                                  message="the cabinet door was opened with no session",
                                  cabinet_id=scheduler.cabinet.id)
    supervisor = console_user(world, AccountRole.SUPERVISOR)
    # the dashboard shows that count and how many slots did not match (every key: no sensor
    # saw any), once: the event stores how many, not the list
    dashboard = supervisor.get("/console/")
    assert dashboard.status_code == 200, dashboard.text[-2000:]
    assert 'class="overdue"' in dashboard.text.split('id="h-count"')[1].split("</section>")[0]
    issued = supervisor.post("/console/reports/new", {"kind": "daily", "language": "zh"})
    assert issued.status_code == 303, issued.text
    for lang, words in (("zh", ("盘点时间", "钥匙总数", "应在柜", "柜门被强行打开", "待处理")),
                        ("en", ("Counted at", "Keys in total", "Expected in", "Door forced",
                                "Open"))):
        page = supervisor.get(issued.headers["location"] + f"?lang={lang}")
        assert page.status_code == 200, page.text
        content = page.text.split('id="h-content"')[1]
        headings = [h.strip() for h in HEADINGS.findall(content)]
        cells = [c.strip() for c in CELLS.findall(content)]
        assert headings and cells, content[:2000]
        raw = [x for x in headings + cells if RAW.match(x)]
        assert raw == [], f"{lang}: shown as identifiers: {raw}"
        for word in words:
            assert word in headings + cells, (lang, word, headings, cells)


def test_report_parameters_are_refused_beside_their_field_in_both_languages(
        world: World) -> None:
    custodian = console_user(world, AccountRole.CUSTODIAN)
    for lang, required in (("zh", "必填"), ("en", "Required")):
        page = custodian.get(f"/console/reports/new?kind=key&lang={lang}")
        assert page.status_code == 422
        assert dict(ERROR.findall(page.text)).get("gen-key_number") == required
        assert 'aria-describedby="gen-key_number-error"' in page.text
    bad_day = custodian.get("/console/reports/new?kind=daily&day=27.11.2026")
    assert "gen-day" in dict(ERROR.findall(bad_day.text))
    refused = custodian.post("/console/reports/new", {"kind": "person"})
    assert refused.status_code == 422 and "gen-staff_no" in dict(ERROR.findall(refused.text))
    assert _count(world, Report) == 0


def test_who_may_not_generate_is_refused_as_by_the_api(world: World) -> None:
    leader = console_user(world, AccountRole.DEPT_LEADER, dept="A")
    assert leader.get("/console/reports/new?kind=daily").status_code == 403
    auditor = console_user(world, AccountRole.AUDITOR)
    assert auditor.get("/console/reports/new?kind=daily").status_code == 200  # reads
    assert auditor.post("/console/reports/new", {"kind": "daily"}).status_code == 403
    assert _count(world, Report) == 0


# ------------------------------------------------------------------------------ import
UNITS_BAD = "房号 room_number,楼层 floor\r\nIMP-1,3\r\nIMP-1,3\r\n,4\r\n".encode("utf-8-sig")
UNITS_GOOD = "房号 room_number,楼层 floor\r\nIMP-1,3\r\nIMP-2,3\r\n".encode("utf-8-sig")


def test_import_preview_shows_each_rows_problem_beside_it_and_writes_nothing(
        world: World) -> None:
    supervisor = console_user(world, AccountRole.SUPERVISOR)
    assert supervisor.get("/console/imports?kind=units").status_code == 200
    xlsx = supervisor.get("/console/imports/units/template.xlsx")
    assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")
    units, events = _count(world, Unit), _count(world, Event)

    page = supervisor.post("/console/imports/units/preview",
                           files={"file": ("units.csv", UNITS_BAD, "text/csv")})
    assert page.status_code == 422, page.text
    row3 = page.text.split('id="row-3"')[1].split("</tr>")[0]
    assert "IMP-1" in row3 and "repeats row 2" in row3 and "重复" in row3  # zh and en
    row4 = page.text.split('id="row-4"')[1].split("</tr>")[0]
    assert "room_number" in row4
    assert "无问题" in page.text.split('id="row-2"')[1].split("</tr>")[0]
    assert 'name="blob"' not in page.text  # no import button while there are problems
    assert (_count(world, Unit), _count(world, Event)) == (units, events)


def test_import_applies_every_row_in_one_event(world: World) -> None:
    custodian = console_user(world, AccountRole.CUSTODIAN)
    page = custodian.post("/console/imports/units/preview",
                          files={"file": ("units.csv", UNITS_GOOD, "text/csv")})
    assert page.status_code == 200, page.text
    carried = BLOB.search(page.text)
    assert carried and base64.b64decode(carried.group(1)) == UNITS_GOOD

    done = custodian.post("/console/imports/units",
                          {"blob": carried.group(1), "filename": "units.csv"})
    assert done.status_code == 200, done.text
    assert 'id="import-done"' in done.text
    assert [e["created"] for e in _events(world, "import.applied")] == [
        {"units": ["IMP-1", "IMP-2"]}]
    # the same file again is refused whole: both rooms now exist; nothing more is written
    again = custodian.post("/console/imports/units",
                           {"blob": carried.group(1), "filename": "units.csv"})
    assert again.status_code == 422 and "导入被拒绝" in again.text
    assert len(_events(world, "import.applied")) == 1


def test_import_needs_imports_write_like_the_api(world: World) -> None:
    auditor = console_user(world, AccountRole.AUDITOR)
    assert auditor.get("/console/imports").status_code == 403
    refused = auditor.post("/console/imports/units",
                           {"blob": base64.b64encode(UNITS_GOOD).decode(), "filename": "u.csv"})
    assert refused.status_code == 403
    assert _count(world, Key) > 0 and _events(world, "import.applied") == []


# --------------------------------------------------------------------------- enrolment
def test_enrol_by_tapping_from_the_person_page(world: World) -> None:
    custodian = console_user(world, AccountRole.CUSTODIAN)
    person = world.ids["staff_a"]
    with attached_cabinet(world) as cabinet:
        assert "开始刷卡登记" in custodian.get(f"/console/people/{person}").text
        started = custodian.post(f"/console/people/{person}/cards/enrol")
        assert started.status_code == 303, started.text
        page = custodian.get(started.headers["location"])
        assert "请在钥匙柜刷新卡，剩余 60 秒" in page.text
        assert 'hx-trigger="every 1s"' in page.text
        assert cabinet.screen()["message"]["zh"] == "登记卡片：请刷新卡"

        world.client.portal.call(cabinet.tap, "E3C0D0E0")  # type: ignore[union-attr]
        state = custodian.get(started.headers["location"] + "/state?lang=en")
        assert "Card E3C0D0E0 is now" in state.text
        assert "hx-trigger" not in state.text  # the countdown stops with the outcome
    with Session(world.runtime.engine) as s:
        assert s.scalars(select(Card.person_id).where(Card.uid == "E3C0D0E0")).one() == person
    assert [e["uid"] for e in _events(world, "card.enrolled")] == ["E3C0D0E0"]


def test_enrol_without_a_cabinet_says_so(world: World) -> None:
    admin = console_user(world, AccountRole.ADMIN)
    person = world.ids["staff_a"]
    assert "开始刷卡登记" not in admin.get(f"/console/people/{person}").text
    refused = admin.post(f"/console/people/{person}/cards/enrol")
    assert refused.status_code == 503 and "钥匙柜未连接" in refused.text
