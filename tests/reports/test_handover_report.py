"""H1 handover through the service, the database's own guards, and the printed report.

Runs on SQLite and PostgreSQL (``db_url``): the one-pending-handover rule and the
signature checks are constraints in the schema, tested here by going around the service.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kiosk.cli import cli
from kiosk.errors import Conflict, InvalidRequest
from kiosk.reports import render
from kiosk.reports import store as report_store
from kiosk.scheduler import Scheduler
from kiosk.services import handovers, tx
from kiosk.services.handovers import HandoverRefused
from kiosk.store.models import Cabinet, Handover, HandoverState
from tests.reports.tower import DAY, SH, Clock, Tower, local, need_font, pdf_text

CUSTODIAN_CARD = "C0FFEE01"
SUPERVISOR_CARD = "5EED0002"


def _start(tower: Tower, at: dt.datetime, **kw: object) -> Handover:
    with tx.write(tower.runtime.audit) as s:
        args: dict[str, Any] = {"card": CUSTODIAN_CARD, **kw}
        return handovers.start(
            s, tower.runtime.audit, cabinet=s.get_one(Cabinet, tower.ids["cabinet"]),
            outgoing_id=tower.ids["custodian"], zone=SH, sensed=dict(tower.presence), now=at,
            **args,
        )


def _accept(tower: Tower, at: dt.datetime, who: str = "supervisor") -> Handover:
    with tx.write(tower.runtime.audit) as s:
        return handovers.accept(
            s, tower.runtime.audit, cabinet_id=tower.ids["cabinet"],
            incoming_id=tower.ids[who], card=SUPERVISOR_CARD, zone=SH, language="zh", now=at,
        )


def test_handover_report_lists_keys_out_and_both_signatures_in_pdf_and_csv_H1(
    tower: Tower, tmp_path: Path
) -> None:
    need_font()
    tower.draw("U601", "gao", at=local(DAY, 9, 0), hours=2)  # overdue by 18:00
    tower.draw("E-PWR-B1", "zhou", at=local(DAY, 17, 30), hours=8, reason="emergency")
    tower.presence.update({1: False, 3: False})  # both keys out, sensors agree
    started = _start(tower, local(DAY, 18, 0), notes="配电房钥匙明早归还")
    accepted = _accept(tower, local(DAY, 18, 5))
    assert accepted.id == started.id and accepted.state == HandoverState.ACCEPTED

    with Session(tower.runtime.engine) as s:
        row = report_store.get_report(s, report_id=accepted.report_id)  # type: ignore[arg-type]
        data = report_store.data_of(row)
    assert row.kind == "handover" and row.subject == str(started.id)
    assert data["overdue"] == 1 and data["drawn"] == 2
    assert data["count"]["mismatches"] == []

    pdf = tmp_path / "handover.pdf"
    pdf.write_bytes(render.render_pdf(data, "zh"))
    text = pdf_text(pdf)
    for expected in ("交接班报告", "交班人", "李娜", "接班人", "王建国", "刷卡 C0FFEE01",
                     "刷卡 5EED0002", "移交：借出未还的钥匙", "U601", "高军", "E-PWR-B1",
                     "周晓燕", "配电房钥匙明早归还"):
        assert expected in text, f"{expected!r} missing from the handover PDF"
    csv_text = render.render_csv(data, "en").decode("utf-8-sig")
    assert "Shift handover report" in csv_text and "Handed over: keys out" in csv_text
    assert "U601" in csv_text and "badge 5EED0002" in csv_text


def test_the_incoming_must_be_another_keeper_H1(tower: Tower) -> None:
    _start(tower, local(DAY, 18, 0))
    with pytest.raises(HandoverRefused) as same:
        _accept(tower, local(DAY, 18, 1), who="custodian")
    assert same.value.code == "handover_same_person"
    with pytest.raises(HandoverRefused) as staff:
        _accept(tower, local(DAY, 18, 2), who="gao")
    assert staff.value.code == "handover_not_keeper"
    with pytest.raises(Conflict):  # one waiting handover at a time
        _start(tower, local(DAY, 18, 3))
    with pytest.raises(InvalidRequest):  # signed by a badge or an account, not both
        _start(tower, local(DAY, 18, 3), account="li.na")


def test_a_lapsed_handover_is_closed_not_accepted_H1(tower: Tower) -> None:
    _start(tower, local(DAY, 18, 0))
    with pytest.raises(Conflict):
        _accept(tower, local(DAY, 18, 31))
    # The scheduler's next tick closes it for the record.
    Scheduler(tower.runtime, presence=None, clock=Clock(local(DAY, 18, 31))).tick()
    with Session(tower.runtime.engine) as s:
        [row] = s.query(Handover).all()
        assert (row.state, row.close_reason) == (HandoverState.CANCELLED, "expired")


def test_the_database_allows_one_waiting_handover_and_only_signed_acceptance_H1(
    tower: Tower,
) -> None:
    """The guards hold even for code that goes around the service."""
    first = _start(tower, local(DAY, 18, 0))
    engine = tower.runtime.engine
    with Session(engine) as s, pytest.raises(IntegrityError):
        s.add(Handover(cabinet_id=tower.ids["cabinet"], outgoing_id=tower.ids["supervisor"],
                       report="{}", outgoing_card="X1"))
        s.commit()
    with Session(engine) as s, pytest.raises(IntegrityError):
        row = s.get_one(Handover, first.id)
        row.state, row.incoming_id = HandoverState.ACCEPTED, tower.ids["supervisor"]
        row.accepted_at = local(DAY, 18, 1)  # but no incoming badge tap recorded
        s.commit()
    with Session(engine) as s, pytest.raises(IntegrityError):
        s.add(Handover(cabinet_id=tower.ids["cabinet"], outgoing_id=tower.ids["supervisor"],
                       report="{}", state=HandoverState.CANCELLED))  # nobody signed it
        s.commit()


def test_cli_prints_the_latest_handover_H1(tower: Tower, tmp_path: Path) -> None:
    need_font()
    tower.draw("U601", "gao", at=local(DAY, 9, 0), hours=2)
    _start(tower, local(DAY, 18, 0))
    s = tower.runtime.settings
    env = {"KIOSK_DATA_DIR": str(s.data_dir), "KIOSK_DATABASE_URL": s.resolved_database_url,
           "KIOSK_CABINET_ID": s.cabinet_id}
    out = tmp_path / "h.csv"
    result = CliRunner().invoke(cli, ["report", "handover", "--format", "csv", "--lang", "en",
                                      "--out", str(out)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    body = out.read_text(encoding="utf-8-sig")
    assert "not yet accepted" in body and "U601" in body
    data = json.loads(_latest_report(tower))
    assert data["incoming"] is None


def _latest_report(tower: Tower) -> str:
    with Session(tower.runtime.engine) as s:
        return s.query(Handover).one().report
