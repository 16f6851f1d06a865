"""K9 reports on demand over the API, the printed report a supervisor signs, and the
register's hash of the exact bytes a person downloads (issue 11 items 3-4, issue 14 item 12,
issue 16 item 5).

A small tower's day: a night draw co-signed by the duty manager (K8), a key put back by
someone other than its borrower (K5), a forced door (F1) and a count mismatch (K9).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.cli import cli
from kiosk.config import Settings, SiteSettings
from kiosk.runtime import Runtime
from kiosk.scheduler import Scheduler
from kiosk.services import accounts, tokens, tx
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models import Alarm, Event, Loan, Role
from kiosk.store.models_auth import AccountRole
from kiosk.store.models_reports import Report, ReportFile
from tests.api.conftest import FAST_HASHER
from tests.reports.tower import DAY, Clock, Tower, build_tower, local, need_font, pdf_text

V1 = "/api/v1"
COMPANY, BUILDING = "百富物业服务有限公司", "百富国际大厦"


class Site:
    """The tower, its admin API and a way to make accounts."""

    def __init__(self, tower: Tower, client: TestClient, settings: Settings) -> None:
        self.tower, self.client, self.settings = tower, client, settings
        self.policy = AuthPolicy(hasher=FAST_HASHER)

    @property
    def runtime(self) -> Runtime:
        return self.tower.runtime

    def token(self, role: AccountRole) -> dict[str, str]:
        with tx.write(self.runtime.audit) as session:
            account = accounts.create_account(
                session, self.runtime.audit, by=None, username=f"{role.value}-{uuid.uuid4().hex[:6]}",
                password="correct horse battery", role=role, policy=self.policy)
            _, secret = tokens.issue_access_token(session, account=account, policy=self.policy)
        return {"Authorization": f"Bearer {secret}"}

    def count(self, model: type) -> int:
        with Session(self.runtime.engine) as s:
            return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Iterator[Site]:
    settings = Settings(
        data_dir=tmp_path / "var", database_url=db_url, cabinet_id="cab-k9",
        cabinet_name="百富国际大厦 客服中心钥匙柜",
        site=SiteSettings(company_name=COMPANY, building_name=BUILDING),
    )
    runtime = Runtime.open(settings)
    tower = build_tower(runtime)
    app = create_admin_app(runtime, AdminOptions(auth_policy=AuthPolicy(hasher=FAST_HASHER)))
    with TestClient(app) as client:
        yield Site(tower, client, settings)
    runtime.close()


def _a_day(site: Site) -> None:
    """DAY in the tower: what the daily report must show."""
    t = site.tower
    t.ids["manager"] = t.person("M0001", "赵值班", Role.DUTY_MANAGER)
    night = t.draw("U601", "gao", at=local(DAY, 2, 10), hours=3, reason="emergency")
    back = t.draw("S-29F", "zhou", at=local(DAY, 9, 0), hours=2)
    with tx.write(site.runtime.audit) as session:
        loan = session.get_one(Loan, night)
        loan.duty_manager_id = t.ids["manager"]
        loan.reason_text = "B1 漏水"
        returned = session.get_one(Loan, back)
        returned.returned_at = local(DAY, 10, 30)
        returned.returned_by_id = t.ids["custodian"]
        returned.returned_by_other = True
        session.add(Alarm(kind="door_forced", cabinet_id=t.ids["cabinet"], message="柜门被撬开",
                          raised_at=local(DAY, 3, 0)))
    t.presence[4] = True
    t.presence[2] = False  # U602 missing at the count
    Scheduler(site.runtime, presence=lambda: dict(t.presence),
              clock=Clock(local(DAY, 18, 31))).tick()


def test_k9_preview_stores_nothing_and_shows_the_day(site: Site) -> None:
    _a_day(site)
    custodian = site.token(AccountRole.CUSTODIAN)
    reports, files, events = site.count(Report), site.count(ReportFile), site.count(Event)
    got = site.client.get(f"{V1}/reports/preview",
                          params={"kind": "daily", "day": DAY.isoformat()}, headers=custodian)
    assert got.status_code == 200, got.text
    data = got.json()
    assert [(m["movement"], m["key_number"]) for m in data["movements"]] == [
        ("draw", "U601"), ("draw", "S-29F"), ("return", "S-29F")]
    night = data["movements"][0]
    assert night["duty_manager"] == "赵值班"  # K8: the co-signer of the night draw
    k5 = data["movements"][2]
    assert (k5["person"], k5["borrower"], k5["returned_by_other"]) == ("李娜", "周晓燕", True)
    kinds = {a["kind"] for a in data["alarms"]}
    assert {"door_forced", "count_mismatch"} <= kinds  # every kind, not only K9's
    need_font()
    pdf = site.client.get(f"{V1}/reports/preview", params={
        "kind": "daily", "day": DAY.isoformat(), "format": "pdf"}, headers=custodian)
    assert pdf.headers["content-type"] == "application/pdf"
    csv = site.client.get(f"{V1}/reports/preview", params={
        "kind": "daily", "day": DAY.isoformat(), "format": "csv", "lang": "en"}, headers=custodian)
    assert "PREVIEW" in csv.content.decode("utf-8-sig")
    # nothing stored, nothing logged
    assert (site.count(Report), site.count(ReportFile), site.count(Event)) == (
        reports, files, events)


def test_k9_printed_daily_report_carries_letterhead_number_pages_and_signatures(
    site: Site, tmp_path: Path
) -> None:
    need_font()
    _a_day(site)
    custodian = site.token(AccountRole.CUSTODIAN)
    issued = site.client.post(f"{V1}/reports", json={"kind": "daily", "day": DAY.isoformat()},
                              headers=custodian)
    assert issued.status_code == 201, issued.text
    report_id = issued.json()["id"]
    zh = site.client.get(f"{V1}/reports/{report_id}/download", headers=custodian)
    assert zh.status_code == 200
    path = tmp_path / "daily-zh.pdf"
    path.write_bytes(zh.content)
    if (keep := os.environ.get("KIOSK_KEEP_REPORTS")):  # for looking at them: pdftoppm -png
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "daily-zh.pdf").write_bytes(zh.content)
    text = pdf_text(path).replace(" ", "")  # pdftotext spaces CJK text its own way
    number = f"K9-D-{DAY:%Y%m%d}-{uuid.UUID(report_id).hex[:8].upper()}"
    for expected in (COMPANY, BUILDING, number, "第1页共", "制表人", "钥匙管理员", "值班经理",
                     "主管审核", "日期", "柜门被强行打开", "每日盘点不符", "赵值班", "当日钥匙进出记录",
                     "他人代还", "B1漏水"):
        assert expected in text, expected
    assert "door_forced" not in text  # alarm kinds are translated in a Chinese report
    en = site.client.get(f"{V1}/reports/{report_id}/download", params={"lang": "en"},
                         headers=custodian)
    path_en = tmp_path / "daily-en.pdf"
    path_en.write_bytes(en.content)
    if keep:
        (Path(keep) / "daily-en.pdf").write_bytes(en.content)
    text_en = pdf_text(path_en)
    for expected in ("Page 1 of", "Prepared by", "Supervisor review", "Cabinet door forced",
                     number):
        assert expected in text_en, expected
    pages = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    total = int(next(x for x in pages.stdout.splitlines() if x.startswith("Pages:")).split()[1])
    assert f"第{total}页共{total}页" in text


def test_k9_stored_hash_is_of_the_bytes_a_person_downloads(site: Site) -> None:
    """Issue 14 item 12: check a download against the register without trusting the server."""
    need_font()
    _a_day(site)
    supervisor = site.token(AccountRole.SUPERVISOR)
    report_id = site.client.post(f"{V1}/reports", json={"kind": "overdue", "language": "en"},
                                 headers=supervisor).json()["id"]
    with Session(site.runtime.engine) as s:
        [event] = [e for e in s.scalars(select(Event).where(Event.type == "report.generated"))
                   if json.loads(e.payload)["report"] == report_id]
        logged = json.loads(event.payload)["files"]
    assert sorted(logged) == ["en.csv", "en.pdf", "zh.csv", "zh.pdf"]
    for lang in ("zh", "en"):
        for fmt in ("pdf", "csv"):
            got = site.client.get(f"{V1}/reports/{report_id}/download",
                                  params={"lang": lang, "format": fmt}, headers=supervisor)
            assert got.status_code == 200
            digest = hashlib.sha256(got.content).hexdigest()
            assert digest == logged[f"{lang}.{fmt}"] == got.headers["x-report-sha256"]
            again = site.client.get(f"{V1}/reports/{report_id}/download",
                                    params={"lang": lang, "format": fmt}, headers=supervisor)
            assert again.content == got.content  # the stored file, not a fresh rendering
    checked = site.client.get(f"{V1}/reports/{report_id}/verify", headers=supervisor).json()
    assert checked["ok"] is True and checked["files"] == logged


def test_k9_forged_report_content_and_hash_edited_together_is_refused(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 item 5: the attack edits a report's content and its sha256 column together."""
    _a_day(site)
    supervisor = site.token(AccountRole.SUPERVISOR)
    report_id = site.client.post(f"{V1}/reports", json={"kind": "daily", "day": DAY.isoformat()},
                                 headers=supervisor).json()["id"]
    with tx.write(site.runtime.audit) as session:
        row = session.get_one(Report, uuid.UUID(report_id))
        forged = row.content.replace("U602", "U999")
        assert forged != row.content
        row.content = forged
        row.sha256 = hashlib.sha256(forged.encode("utf-8")).hexdigest()
    for path in (f"/reports/{report_id}", f"/reports/{report_id}/download"):
        refused = site.client.get(V1 + path, params={"format": "csv"} if "download" in path
                                  else None, headers=supervisor)
        assert refused.status_code == 409, path
        assert "forged" in refused.json()["detail"]
    verdict = site.client.get(f"{V1}/reports/{report_id}/verify", headers=supervisor).json()
    assert verdict["ok"] is False and any("content" in p for p in verdict["problems"])

    s = site.settings
    monkeypatch.chdir(s.data_dir.parent)
    env = {"KIOSK_DATA_DIR": str(s.data_dir), "KIOSK_DATABASE_URL": s.resolved_database_url,
           "KIOSK_CABINET_ID": s.cabinet_id}
    result = CliRunner().invoke(cli, ["report", "verify"], env=env)
    assert result.exit_code == 1, result.output
    assert f"FORGED  {report_id}" in result.output


def test_k9_a_stored_file_changed_alone_is_refused(site: Site) -> None:
    _a_day(site)
    supervisor = site.token(AccountRole.SUPERVISOR)
    report_id = site.client.post(f"{V1}/reports", json={"kind": "overdue"},
                                 headers=supervisor).json()["id"]
    with tx.write(site.runtime.audit) as session:
        file = session.scalars(select(ReportFile).where(
            ReportFile.report_id == uuid.UUID(report_id), ReportFile.name == "zh.csv")).one()
        file.content = file.content.replace("高军".encode(), "某人".encode())
        file.sha256 = hashlib.sha256(file.content).hexdigest()
    got = site.client.get(f"{V1}/reports/{report_id}/download", params={"format": "csv"},
                          headers=supervisor)
    assert got.status_code == 409 and "zh.csv" in got.json()["detail"]


def test_k9_histories_on_demand_and_their_errors(site: Site) -> None:
    _a_day(site)
    custodian = site.token(AccountRole.CUSTODIAN)
    key = site.client.post(f"{V1}/reports", json={
        "kind": "key", "key_number": "S-29F", "start": "2026-11-01", "end": DAY.isoformat()},
        headers=custodian)
    assert key.status_code == 201, key.text
    assert (key.json()["kind"], key.json()["subject"]) == ("key", "S-29F")
    person = site.client.get(f"{V1}/reports/preview", params={
        "kind": "person", "staff_no": "E1002", "start": "2026-11-01", "end": DAY.isoformat()},
        headers=custodian).json()
    [loan] = person["loans"]
    assert (loan["returned_by"], loan["returned_by_other"]) == ("李娜", True)  # K5
    missing = site.client.post(f"{V1}/reports", json={"kind": "key"}, headers=custodian)
    assert missing.status_code == 422 and "key_number" in missing.json()["detail"]
    unknown = site.client.post(f"{V1}/reports", json={"kind": "person", "staff_no": "NOPE"},
                               headers=custodian)
    assert unknown.status_code == 404
    backwards = site.client.get(f"{V1}/reports/preview", params={
        "kind": "key", "key_number": "U601", "start": "2026-11-30", "end": "2026-11-01"},
        headers=custodian)
    assert backwards.status_code == 422
    future = site.client.post(f"{V1}/reports", json={"kind": "daily", "day": "2999-01-01"},
                              headers=custodian)
    assert future.status_code == 422


def test_k9_auditor_previews_but_cannot_issue(site: Site) -> None:
    auditor = site.token(AccountRole.AUDITOR)
    assert site.client.get(f"{V1}/reports/preview", params={"kind": "overdue"},
                           headers=auditor).status_code == 200
    refused = site.client.post(f"{V1}/reports", json={"kind": "overdue"}, headers=auditor)
    assert refused.status_code == 403
    assert site.count(Report) == 0


def test_k9_generate_issue_is_logged_with_the_account(site: Site) -> None:
    supervisor = site.token(AccountRole.SUPERVISOR)
    made = site.client.post(f"{V1}/reports", json={"kind": "overdue"}, headers=supervisor)
    assert made.status_code == 201
    with Session(site.runtime.engine) as s:
        event = s.scalars(select(Event).where(Event.type == "report.generated")).one()
    assert any(a.startswith("account:supervisor-") for a in json.loads(event.actors))
    assert json.loads(event.payload)["document_no"].startswith(
        f"K9-O-{dt.datetime.now().astimezone(site.settings.zone):%Y%m}")


def test_h1_accepted_handover_download_is_the_stored_file_with_the_letterhead(
    site: Site, tmp_path: Path
) -> None:
    """H1/K9: the handover a supervisor prints is the file the register names."""
    need_font()
    from kiosk.services import handovers
    from kiosk.store.models import Cabinet
    from tests.reports.tower import SH

    t = site.tower
    with tx.write(site.runtime.audit) as s:
        started = handovers.start(
            s, site.runtime.audit, cabinet=s.get_one(Cabinet, t.ids["cabinet"]),
            outgoing_id=t.ids["custodian"], card="C0FFEE01", zone=SH, sensed=dict(t.presence),
            now=local(DAY, 18, 0))
    with tx.write(site.runtime.audit) as s:
        accepted = handovers.accept(
            s, site.runtime.audit, cabinet_id=t.ids["cabinet"], incoming_id=t.ids["supervisor"],
            card="5EED0002", zone=SH, language="zh", now=local(DAY, 18, 5),
            site=site.settings.site)
    supervisor = site.token(AccountRole.SUPERVISOR)
    got = site.client.get(f"{V1}/handovers/{started.id}/download", headers=supervisor)
    assert got.status_code == 200
    with Session(site.runtime.engine) as s:
        stored = s.scalars(select(ReportFile).where(
            ReportFile.report_id == accepted.report_id, ReportFile.name == "zh.pdf")).one()
        assert got.content == stored.content
        [event] = [e for e in s.scalars(select(Event).where(Event.type == "report.generated"))
                   if json.loads(e.payload)["report"] == str(accepted.report_id)]
    assert hashlib.sha256(got.content).hexdigest() == json.loads(event.payload)["files"]["zh.pdf"]
    path = tmp_path / "handover.pdf"
    path.write_bytes(got.content)
    text = pdf_text(path).replace(" ", "")
    assert COMPANY in text and "交接班报告" in text and "主管审核" in text
