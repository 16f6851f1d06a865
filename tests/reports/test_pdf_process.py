"""PDF reports are made in a child process, so the daemon's memory never holds reportlab or
the parsed CJK font (issue 15, item 4: the first K9 daily report took the idle daemon from
about 115 MB to 177 MB RSS, for good).

Each check runs in a fresh interpreter, the way the daemon would make a report, and looks at
what that interpreter loaded; the PDF itself is read back with pypdf.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TypedDict

from tests.reports.tower import need_font

ROOT = Path(__file__).resolve().parent.parent.parent
MAKE_TWO = """
import io, json, sys
import pypdf
from kiosk.reports import render
report = {"kind": "key", "cabinet": "C1", "key_number": "U601", "label": "6F 配电房",
          "period_start": "2026-12-01", "period_end": "2026-12-05", "loans": [], "alarms": []}
head = render.Letterhead(company="物业公司", document_no="K-20261201-1")
texts = []
for lang in ("zh", "en"):
    pdf = render.render_pdf(report, lang, letterhead=head)
    texts.append("".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages))
try:
    render.render_pdf({**report, "kind": "no-such-kind"}, "en")
    error = None
except render.ReportError as exc:
    error = str(exc)
print(json.dumps({"texts": texts, "error": error,
                  "loaded": sorted(m for m in sys.modules
                                   if m.split(".")[0] == "reportlab")}))
"""


class Made(TypedDict):
    """What MAKE_TWO prints: each PDF's text, the refused report's error, reportlab's modules."""

    texts: list[str]
    error: str | None
    loaded: list[str]


def _run() -> Made:
    done = subprocess.run([sys.executable, "-c", MAKE_TWO], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=True)
    result: Made = json.loads(done.stdout)
    return result


def test_k9_reports_render_without_loading_reportlab_into_the_caller() -> None:
    need_font()
    result = _run()
    zh, en = result["texts"]
    assert "钥匙历史记录" in zh and "物业公司" in zh and "K-20261201-1" in zh
    assert "Key history" in en and "U601" in en
    assert result["loaded"] == [], "reportlab was imported into the process asking for the PDF"


def test_a_report_the_renderer_refuses_raises_its_report_error_in_the_caller() -> None:
    need_font()
    result = _run()
    assert result["error"] == "unknown report kind 'no-such-kind'"


def test_a_renderer_that_died_is_replaced_by_the_next_report() -> None:
    """A child killed between two reports (out of memory, a stray signal) costs nothing:
    the next report starts a new one and comes out whole."""
    need_font()
    from kiosk.reports import pdf_process

    report = {"kind": "key", "cabinet": "C1", "key_number": "U601", "label": "6F",
              "period_start": "2026-12-01", "period_end": "2026-12-05", "loans": [],
              "alarms": []}
    first = pdf_process.render(report, "en")
    child = pdf_process._renderer._child
    assert child is not None
    child.kill()
    child.wait()
    second = pdf_process.render(report, "en")
    assert first.startswith(b"%PDF") and second.startswith(b"%PDF")
    assert pdf_process._renderer._child is not child
    assert child.stdout is not None and child.stdout.closed, "the dead child's pipe was left open"
    pdf_process._renderer.stop()
