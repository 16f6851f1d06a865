"""`kiosk report … --format pdf`: a real PDF with the Chinese glyphs embedded (K9)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from kiosk.cli import cli
from kiosk.reports import render
from kiosk.scheduler import Scheduler
from tests.reports.tower import DAY, Clock, Tower, local, need_font, pdf_text


def _env(tower: Tower) -> dict[str, str]:
    s = tower.runtime.settings
    return {"KIOSK_DATA_DIR": str(s.data_dir), "KIOSK_DATABASE_URL": s.resolved_database_url,
            "KIOSK_CABINET_ID": s.cabinet_id, "KIOSK_CABINET_NAME": s.cabinet_name}


def test_k9_cli_daily_pdf_lists_keys_out_with_chinese_names(tower: Tower, tmp_path: Path) -> None:
    need_font()
    tower.draw("U601", "gao", at=local(DAY, 10, 5), hours=2)
    tower.draw("E-PWR-B1", "zhou", at=local(DAY, 14, 0), hours=8, reason="emergency")
    out = tmp_path / "daily.pdf"
    result = CliRunner().invoke(
        cli, ["report", "daily", "--date", DAY.isoformat(), "--format", "pdf", "--out", str(out)],
        env=_env(tower), catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF-")
    text = pdf_text(out)
    for expected in ("当日钥匙报告", "今日领取尚未归还", "U601", "高军", "E-PWR-B1", "周晓燕",
                     "B1 高压配电房", "紧急情况"):
        assert expected in text, f"{expected!r} missing from the PDF text"
    assert b"/FontFile2" in out.read_bytes()  # the TrueType subset is embedded
    if shutil.which("pdffonts"):
        fonts = subprocess.run(["pdffonts", str(out)], capture_output=True, check=True).stdout
        [line] = [x for x in fonts.splitlines() if b"WenQuanYiZenHei" in x]
        assert line.split()[-5:-2] == [b"yes", b"yes", b"yes"]  # embedded, subset, unicode


def test_k9_cli_other_reports_in_english_and_csv(tower: Tower, tmp_path: Path) -> None:
    need_font()
    tower.draw("U601", "gao", at=local(DAY - __import__("datetime").timedelta(days=5), 9),
               hours=2)
    Scheduler(tower.runtime, presence=None, clock=Clock(local(DAY, 9))).escalate()
    runner = CliRunner()
    for args in (["overdue", "--lang", "en"], ["key", "U601", "--from", "2026-11-01",
                 "--to", "2026-11-30"], ["person", "E1001", "--format", "csv", "--lang", "en",
                 "--from", "2026-11-01", "--to", "2026-11-30"]):
        out = tmp_path / f"{args[0]}.out"
        result = runner.invoke(cli, ["report", *args, "--out", str(out)], env=_env(tower),
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
        body = out.read_bytes()
        text = body.decode("utf-8-sig") if "csv" in args else pdf_text(out)
        assert "U601" in text and "高军" in text
    assert "Overdue keys" in pdf_text(tmp_path / "overdue.out")
    missing = runner.invoke(cli, ["report", "key", "NOPE", "--format", "csv"], env=_env(tower))
    assert missing.exit_code != 0


def test_pdf_without_the_font_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "FONT_NAME", "NoSuchFontRegistered")
    monkeypatch.setattr(render, "FONT_PATH", Path("/nonexistent/wqy-zenhei.ttc"))
    with pytest.raises(render.ReportError, match="fonts-wqy-zenhei"):
        render.ensure_font()
