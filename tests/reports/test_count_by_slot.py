"""Issue 13 in the K9 daily count and report: per slot, whether the key was identified by its
fob or only seen present, and whether the cabinet compares identities at all. A presence-only
slot (an unpaired fob, a receptor that read nothing, or a cabinet without receptors) is
marked as such and never passes for an identified one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.reports import render
from kiosk.reports.data import COUNT_JOB
from kiosk.reports.store import data_of
from kiosk.scheduler import Scheduler
from kiosk.store.models import Event, Key
from kiosk.store.models_reports import Report
from tests.reports.tower import DAY, Clock, Tower, local, need_font, pdf_text

ROM_601 = "01A1B2C3D4E5F60A"
ROM_602 = "01A1B2C3D4E5F60B"
ROM_29F = "01A1B2C3D4E5F60C"
STRANGER = "01FFEEDDCCBBAA0D"  # a fob no key carries


def pair(tower: Tower) -> None:
    """U601, U602 and S-29F have their fob chips paired; E-PWR-B1 not yet."""
    with Session(tower.runtime.engine) as s:
        for number, rom in (("U601", ROM_601), ("U602", ROM_602), ("S-29F", ROM_29F)):
            s.scalars(select(Key).where(Key.key_number == number)).one().fob_rom = rom
        s.commit()


def daily(tower: Tower) -> dict[str, Any]:
    with Session(tower.runtime.engine) as s:
        row = s.scalars(select(Report).where(Report.kind == "daily",
                                             Report.period_start == DAY)).one()
        return data_of(row)


def run_day(tower: Tower, identities: dict[int, str | None] | None) -> dict[str, Any]:
    scheduler = Scheduler(tower.runtime, presence=lambda: dict(tower.presence),
                          identities=(lambda: dict(identities)) if identities is not None else None,
                          clock=Clock(local(DAY, 18, 31)))
    scheduler.tick()
    return daily(tower)


def test_K9_the_count_says_per_slot_identified_or_present_only(tower: Tower) -> None:
    pair(tower)
    # slot 1: U601's own chip; 2: a stranger's fob where U602 belongs; 3: E-PWR-B1, not
    # paired; 4: S-29F's receptor read nothing
    report = run_day(tower, {1: ROM_601, 2: STRANGER, 3: "01000000000000AA", 4: None, 5: None})
    count = report["count"]
    assert count["identity_checked"] is True
    assert [(x["slot"], x["key_number"], x["check"]) for x in count["slots"]] == [
        (1, "U601", "identified"), (2, "U602", "wrong_key"), (3, "E-PWR-B1", "present_only"),
        (4, "S-29F", "present_only")]
    with Session(tower.runtime.engine) as s:
        event = s.scalars(select(Event).where(Event.type == "count.daily")).one()
    assert '"compared":"identity"' in event.payload
    assert '"identified":1' in event.payload and '"present_only":2' in event.payload

    zh = render.render_csv(report, "zh").decode("utf-8-sig")
    assert "核对方式,钥匙身份：逐格读取钥匙牌芯片" in zh and "已识别 / 仅感应有无,1 / 2" in zh
    assert "逐格点数" in zh and "仅感应有钥匙，未识别" in zh and "格口内是另一把钥匙" in zh
    en = render.render_csv(report, "en").decode("utf-8-sig")
    assert "1,U601,identified,2,U602,wrong key" in en
    assert "3,E-PWR-B1,\"present only, not identified\",4,S-29F" in en


def test_K9_a_presence_only_cabinet_marks_every_slot_present_only(tower: Tower) -> None:
    pair(tower)  # paired chips mean nothing without receptors: the count cannot read them
    report = run_day(tower, None)
    count = report["count"]
    assert count["identity_checked"] is False
    assert {x["check"] for x in count["slots"]} == {"present_only"}
    en = render.render_csv(report, "en").decode("utf-8-sig")
    assert "Compared by,presence only: this cabinet cannot tell keys apart" in en
    assert "identified," not in en.split("Count by slot")[1]


def test_K9_the_printed_report_lists_the_slots_in_both_languages(
    tower: Tower, tmp_path: Path
) -> None:
    need_font()
    pair(tower)
    report = run_day(tower, {1: ROM_601, 2: ROM_602, 3: None, 4: ROM_29F, 5: None})
    assert COUNT_JOB  # the count ran before the report (the report carries its result)
    for lang, words in (("zh", ["逐格点数（已识别 / 仅感应有无）（4）", "已识别", "仅感应有钥匙"]),
                        ("en", ["Count by slot (identified / present only) (4)", "identified",
                                "present only"])):
        path = tmp_path / f"daily-{lang}.pdf"
        path.write_bytes(render.render_pdf(report, lang))  # type: ignore[arg-type]
        text = pdf_text(path)
        for w in words:
            assert w in text, (lang, w)
