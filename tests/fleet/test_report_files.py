"""The rendered files of issued reports reach the hub (issue 12 item 4: the hub is the
off-device copy of every log) as the very bytes a person downloads at the cabinet, whose
SHA-256 is the one in the report's chained ``report.generated`` event (issue 14 item 12,
K9), so a printed report can be checked against the hub's copy too.

A daily report is issued at a cabinet (real renderings, PDF with its CJK font) and shipped
by the cabinet's own link (``FleetLink``: signed requests, real protocol bytes) to a hub
app in this process; the hub serves the files within the caller's site scope."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kiosk.fleet import report_files, state
from kiosk.fleet.link import FleetLink
from kiosk.fleet.refusal import Refused
from kiosk.reports import store as report_store
from kiosk.reports.data import build_daily
from kiosk.runtime import Runtime
from kiosk.services import tx
from kiosk.store.db import write_session
from kiosk.store.models import Event
from kiosk.store.models_auth import AccountRole
from kiosk.store.models_fleet import HubAlarm, HubReportFile
from kiosk.store.models_reports import ReportFile
from kiosk.store.types import utcnow
from tests.fleet.test_hub_scope import Hub, fleet  # noqa: F401  (fleet: the fixture)


def issue_daily(cab: Runtime) -> uuid.UUID:
    """Issue today's daily report at ``cab`` the way the scheduler does: stored with its
    renderings and its ``report.generated`` event."""
    cabinet = cab.ensure_cabinet()
    with tx.write(cab.audit) as session:
        now = utcnow()
        report = build_daily(session, cabinet_id=cabinet.id, cabinet=cabinet.name,
                             day=now.astimezone(cab.settings.zone).date(),
                             zone=cab.settings.zone, now=now)
        row = report_store.save(session, cab.audit, report=report, language="zh",
                                site=cab.settings.site)
        return row.id


def cabinet_files(cab: Runtime, report_id: uuid.UUID) -> dict[str, bytes]:
    with Session(cab.engine) as s:
        return {f.name: f.content for f in s.scalars(
            select(ReportFile).where(ReportFile.report_id == report_id))}


def logged_files(cab: Runtime, report_id: uuid.UUID) -> dict[str, str]:
    """File name → SHA-256 as the cabinet's chained event names them (the register)."""
    with Session(cab.engine) as s:
        for event in s.scalars(select(Event).where(Event.type == "report.generated")):
            payload = json.loads(event.payload)
            if payload["report"] == str(report_id):
                return dict(payload["files"])
    raise AssertionError(f"no report.generated event for {report_id}")


def ship(hub: Hub, code: str) -> list[dict[str, object]]:
    """One round of ``code``'s shipper against the hub app; the answers to file uploads."""
    cab = hub.cabinets[code]
    link = FleetLink(cab, state.Enrolment(
        hub_url="http://testserver/hub/v1", hub_public_key=hub.runtime.device_key.public_hex,
        site="tower-a" if code == "cab-a" else "tower-b", cabinet_id=code))
    answers: list[dict[str, object]] = []

    async def run() -> None:
        await link.client.close()
        link.client._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.client.app))
        call = link.client.call

        async def watched(method: str, path: str, body: object = None,
                          **kw: float | None) -> object:
            answer = await call(method, path, body, **kw)
            if path == "/ingest/report-file":
                answers.append(answer)
            return answer

        link.client.call = watched  # type: ignore[method-assign]
        try:
            await link._ship_once()
        finally:
            await link.client.close()

    asyncio.run(run())
    return answers


def hub_alarms(hub: Hub, code: str) -> list[str]:
    with Session(hub.runtime.engine) as s:
        return [a.kind for a in s.scalars(select(HubAlarm).where(HubAlarm.cabinet_id == code))
                if a.kind != "gap"]  # the fixture raises a gap alarm at each cabinet


@pytest.fixture
def issued(fleet: Hub) -> Iterator[dict[str, uuid.UUID]]:  # noqa: F811
    yield {code: issue_daily(fleet.cabinets[code]) for code in ("cab-a", "cab-b")}


def test_an_issued_report_is_downloadable_at_the_hub_as_the_very_bytes_K9(
        fleet: Hub, issued: dict[str, uuid.UUID]) -> None:  # noqa: F811
    report_id, cab = issued["cab-a"], fleet.cabinets["cab-a"]
    at_cabinet, logged = cabinet_files(cab, report_id), logged_files(cab, report_id)
    assert {"zh.pdf", "zh.csv", "en.pdf", "en.csv"} == set(at_cabinet) == set(logged)
    answers = ship(fleet, "cab-a")
    assert sorted((a["name"], a["stored"]) for a in answers) == [
        ("en.csv", True), ("en.pdf", True), ("zh.csv", True), ("zh.pdf", True)]

    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    for name, blob in at_cabinet.items():
        lang, fmt = name.split(".")
        got = fleet.client.get(f"/hub/v1/reports/{report_id}/file?format={fmt}&lang={lang}",
                               headers=admin)
        assert got.status_code == 200, got.text
        assert got.content == blob, name  # byte for byte what the cabinet issued
        assert got.headers["x-report-sha256"] == logged[name] == hashlib.sha256(
            got.content).hexdigest()
    default = fleet.client.get(f"/hub/v1/reports/{report_id}/file", headers=admin)
    assert default.content == at_cabinet["zh.pdf"]  # the report's language, PDF
    assert default.headers["content-type"] == "application/pdf"
    assert default.content.startswith(b"%PDF")
    one = fleet.client.get(f"/hub/v1/reports/{report_id}", headers=admin).json()
    assert one["files"] == logged
    # cab-b has not shipped: its report's files are not at the hub (404, said so)
    missing = fleet.client.get(f"/hub/v1/reports/{issued['cab-b']}/file", headers=admin)
    assert missing.status_code == 404

    # The console's reports tab links each held file; the link serves the same bytes.
    browser = fleet.console("fleet-admin")
    page = browser.get("/console/fleet/reports?site=tower-a").text
    link = f"/console/fleet/reports/{report_id}/file?format=csv&amp;lang=en"
    assert link in page
    got = browser.get(link.replace("&amp;", "&"))
    assert got.status_code == 200 and got.content == at_cabinet["en.csv"]
    assert hub_alarms(fleet, "cab-a") == []


def test_a_tampered_file_is_refused_with_an_alarm_and_the_hubs_copy_stays_K9(
        fleet: Hub, issued: dict[str, uuid.UUID]) -> None:  # noqa: F811
    report_id, cab = issued["cab-a"], fleet.cabinets["cab-a"]
    genuine = cabinet_files(cab, report_id)
    with write_session(cab.engine) as s:  # someone edits the CSV in the cabinet's SQLite
        s.execute(update(ReportFile).where(ReportFile.report_id == report_id,
                                           ReportFile.name == "zh.csv")
                  .values(content=genuine["zh.csv"].replace(b"\n", b"\n,forged", 1)))
    answers = ship(fleet, "cab-a")
    assert sorted(str(a["name"]) for a in answers) == ["en.csv", "en.pdf", "zh.pdf"]
    assert hub_alarms(fleet, "cab-a") == ["report_file_mismatch"]
    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    refused = fleet.client.get(f"/hub/v1/reports/{report_id}/file?format=csv&lang=zh",
                               headers=admin)
    assert refused.status_code == 404  # the forged bytes never became the hub's copy
    with Session(fleet.runtime.engine) as s:
        logged = s.scalars(select(Event).where(  # the hub's own chained log
            Event.cabinet_id == fleet.runtime.audit.cabinet_id,
            Event.type == "fleet.ingest_refused")).all()
    assert [json.loads(e.payload)["file"] for e in logged] == ["zh.csv"]
    # the refusal names its rule: K9, an issued report cannot be altered or hidden
    assert [(json.loads(e.rules), e.decision) for e in logged] == [(["K9"], "deny")]

    # A file the hub holds is never overwritten: the forged zh.csv sent again, and a forged
    # zh.pdf in place of the one held, are refused and the held bytes stay.
    forged_pdf = genuine["zh.pdf"] + b"%forged"
    for name, blob in (("zh.csv", b"forged"), ("zh.pdf", forged_pdf)):
        doc = {"report": str(report_id), "name": name,
               "content": base64.b64encode(blob).decode()}
        with pytest.raises(Refused) as refusal:
            report_files.receive(fleet.runtime.audit, cabinet_id="cab-a", doc=doc)
        assert refusal.value.kind == "report_file_mismatch"
    held = fleet.client.get(f"/hub/v1/reports/{report_id}/file?format=pdf&lang=zh",
                            headers=admin)
    assert held.content == genuine["zh.pdf"]
    with Session(fleet.runtime.engine) as s:
        assert s.get(HubReportFile, (report_id, "zh.csv")) is None
        alarm = s.scalars(select(HubAlarm).where(HubAlarm.kind == "report_file_mismatch")).one()
    assert alarm.count == 3 and alarm.state == "open"


def test_another_sites_report_file_is_404_for_a_scoped_account(
        fleet: Hub, issued: dict[str, uuid.UUID]) -> None:  # noqa: F811
    ship(fleet, "cab-a")
    ship(fleet, "cab-b")
    admin = fleet.token("root", AccountRole.ADMIN)
    sup = fleet.token("sup-a", AccountRole.SUPERVISOR)
    put = fleet.client.put("/hub/v1/accounts/sup-a/site", json={"site": "tower-a"},
                           headers=admin)
    assert put.status_code == 200, put.text
    mine = fleet.client.get(f"/hub/v1/reports/{issued['cab-a']}/file?format=csv", headers=sup)
    assert mine.status_code == 200
    theirs = fleet.client.get(f"/hub/v1/reports/{issued['cab-b']}/file?format=csv",
                              headers=sup)
    ghost = uuid.uuid4()
    nothing = fleet.client.get(f"/hub/v1/reports/{ghost}/file?format=csv", headers=sup)
    assert theirs.status_code == nothing.status_code == 404
    assert (theirs.json()["detail"].replace(str(issued["cab-b"]), "ID")
            == nothing.json()["detail"].replace(str(ghost), "ID"))
    assert fleet.client.get(f"/hub/v1/reports/{issued['cab-b']}/file?format=csv",
                            headers=admin).status_code == 200
    browser = fleet.console("sup-a")
    assert browser.get(f"/console/fleet/reports/{issued['cab-b']}/file?format=csv"
                       ).status_code == 404
    assert browser.get(f"/console/fleet/reports/{issued['cab-a']}/file?format=csv"
                       ).status_code == 200


def test_resending_is_idempotent_and_resumes_after_a_lost_cursor(
        fleet: Hub, issued: dict[str, uuid.UUID]) -> None:  # noqa: F811
    report_id, cab = issued["cab-a"], fleet.cabinets["cab-a"]
    first = ship(fleet, "cab-a")
    assert len(first) == 4 and all(a["stored"] for a in first)
    assert ship(fleet, "cab-a") == []  # the cursor moved past the report: nothing again
    assert report_files.shipped_up_to(cab.engine) > 0
    report_files.save_shipped(cab.engine, 0)  # a crash before the cursor was saved
    again = ship(fleet, "cab-a")
    assert len(again) == 4 and not any(a["stored"] for a in again)
    with Session(fleet.runtime.engine) as s:
        held = s.scalars(select(HubReportFile).where(HubReportFile.report_id == report_id)
                         ).all()
    assert sorted(f.name for f in held) == ["en.csv", "en.pdf", "zh.csv", "zh.pdf"]
    assert {f.name: f.content for f in held} == cabinet_files(cab, report_id)
    assert hub_alarms(fleet, "cab-a") == []
    # A second report issued later goes up in the next round, the first not again.
    later = issue_daily(cab)
    answers = ship(fleet, "cab-a")
    assert {a["report"] for a in answers} == {str(later)}
