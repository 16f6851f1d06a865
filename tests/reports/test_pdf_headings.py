"""A table's heading stays on the page of its table's first row (K9, H1: the printed report
a supervisor signs).

Before: with enough rows in the table above, the heading "Alarms (3)" was the last line of
one page and the alarm rows started on the next, so page 1 read as a section with nothing
in it. The test grows the loan table one row at a time across a page end, so for some row
count the alarm heading would fall at the foot of a page, and reads each page's text.
"""

from __future__ import annotations

import io
from typing import Any

import pypdf
import pytest

from kiosk.reports.render import render_pdf
from tests.reports.tower import need_font


def key_report(loans: int) -> dict[str, Any]:
    """A key's report: ``loans`` returned loans, then three alarms."""
    return {
        "kind": "key", "cabinet": "C1", "key_number": "U601", "label": "6F 配电房",
        "period_start": "2026-12-01", "period_end": "2026-12-05",
        "loans": [{"key_number": "U601", "label": f"LOANROW{i}", "borrower": "高军",
                   "staff_no": "E1001", "reason": "repair", "drawn_at": "2026-12-01T08:00:00",
                   "due_at": "2026-12-01T18:00:00", "returned_at": "2026-12-01T10:00:00",
                   "returned_by": "高军"} for i in range(loans)],
        "alarms": [{"raised_at": "2026-12-01T09:00:00", "kind": "lock_fault",
                    "key_number": "U601", "state": "open", "message": f"ALARMROW{j}"}
                   for j in range(3)],
    }


def page_of(pages: list[str], text: str) -> int:
    found = [i for i, page in enumerate(pages) if text in page]
    assert len(found) == 1, f"{text!r} on pages {found}"
    return found[0]


@pytest.mark.parametrize(("lang", "heading"), [("en", "Alarms (3)"), ("zh", "告警（3）")])
def test_k9_a_table_heading_is_never_left_alone_at_the_foot_of_a_page(
    lang: str, heading: str,
) -> None:
    need_font()
    moved = []
    for loans in range(1, 33):  # the alarm heading walks down past at least one page end
        pdf = render_pdf(key_report(loans), lang)  # type: ignore[arg-type]
        pages = [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]
        at = page_of(pages, heading)
        assert at == page_of(pages, "ALARMROW0"), (
            f"{loans} loans: heading on page {at + 1}, its first row on the next")
        if at > page_of(pages, f"LOANROW{loans - 1}"):
            moved.append(loans)  # the heading went over with its table
    # the test did reach the case it is about: a heading that would have closed a page
    assert moved, "no row count put the alarm heading at a page end"
