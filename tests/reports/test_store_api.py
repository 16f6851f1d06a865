"""K9 reports are never deleted; a supervisor acknowledges one, once, and it is logged."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.errors import Conflict
from kiosk.reports import store as report_store
from kiosk.scheduler import Scheduler
from kiosk.services import tx
from kiosk.store.models import Event, Role
from kiosk.store.models_auth import AccountRole
from kiosk.store.models_reports import Report
from tests.api.conftest import World
from tests.reports.tower import DAY, Clock, local, need_font

V1 = "/api/v1"


def _daily_report(world: World) -> uuid.UUID:
    gao = world.ids["staff_a"]
    world.loan("U1201", gao, drawn_hours_ago=3, due_in_hours=-1, now=local(DAY, 18, 0))
    Scheduler(world.runtime, presence=None, clock=Clock(local(DAY, 18, 31))).tick()
    with Session(world.runtime.engine) as s:
        return s.scalars(select(Report.id).where(Report.period_start == DAY)).one()


def test_k9_report_cannot_be_deleted_and_acknowledgement_is_recorded_with_an_event(
    world: World,
) -> None:
    report_id = _daily_report(world)
    # no code path deletes a report: the ORM refuses and the API has no DELETE
    with pytest.raises(Conflict, match="K9"), tx.write(world.audit) as session:
        session.delete(session.get(Report, report_id))
    supervisor = world.token(AccountRole.SUPERVISOR, username="wang-supervisor")
    assert world.client.delete(f"{V1}/reports/{report_id}", headers=supervisor).status_code == 405

    custodian = world.token(AccountRole.CUSTODIAN, person=world.ids["custodian"])
    listed = world.client.get(f"{V1}/reports", params={"kind": "daily", "acknowledged": "false"},
                              headers=custodian).json()
    assert report_id in {uuid.UUID(r["id"]) for r in listed["items"]}
    refused = world.client.post(f"{V1}/reports/{report_id}/acknowledge", json={},
                                headers=custodian)
    assert refused.status_code == 403  # only the supervisor acknowledges (K9)

    done = world.client.post(f"{V1}/reports/{report_id}/acknowledge",
                             json={"note": "已阅，U1201 已联系借用人"}, headers=supervisor)
    assert done.status_code == 200, done.text
    assert done.json()["acknowledged_by"] == "wang-supervisor"
    again = world.client.post(f"{V1}/reports/{report_id}/acknowledge", json={},
                              headers=supervisor)
    assert again.status_code == 409
    with Session(world.runtime.engine) as s:
        row = s.get(Report, report_id)
        assert row is not None and row.acknowledged_at is not None
        [event] = s.scalars(select(Event).where(Event.type == "report.acknowledged")).all()
        assert json.loads(event.rules) == ["K9"]
        assert json.loads(event.payload)["report"] == str(report_id)
        assert "account:wang-supervisor" in json.loads(event.actors)


def test_k9_report_detail_and_downloads_in_both_languages(world: World) -> None:
    report_id = _daily_report(world)
    auditor = world.token(AccountRole.AUDITOR)
    detail = world.client.get(f"{V1}/reports/{report_id}", headers=auditor).json()
    [out] = detail["content"]["out_from_today"]
    assert out["key_number"] == "U1201" and out["borrower"] == "员工A001"
    csv_en = world.client.get(f"{V1}/reports/{report_id}/download",
                              params={"format": "csv", "lang": "en"}, headers=auditor)
    assert csv_en.headers["content-type"].startswith("text/csv")
    assert "Keys drawn today still out" in csv_en.content.decode("utf-8-sig")
    need_font()
    pdf = world.client.get(f"{V1}/reports/{report_id}/download", headers=auditor)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    leader = world.token(AccountRole.DEPT_LEADER, dept="A", person=world.person(
        "L77", dept="A", roles=(Role.STAFF, Role.DEPT_LEADER)))
    assert world.client.get(f"{V1}/reports", headers=leader).status_code == 403


def test_k9_a_changed_report_is_refused_not_rendered(world: World) -> None:
    report_id = _daily_report(world)
    with tx.write(world.audit) as session:
        row = session.get(Report, report_id)
        assert row is not None
        row.content = row.content.replace("U1201", "U9999")
    with Session(world.runtime.engine) as s:
        row = s.get(Report, report_id)
        assert row is not None
        with pytest.raises(Conflict, match="SHA-256"):
            report_store.data_of(row)
