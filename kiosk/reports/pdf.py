"""Printed reports a supervisor signs (K9, H1): A4 landscape, CJK glyphs embedded.

Every page carries the property company's and the building's names, the document number,
the content's SHA-256 (so a paper copy can be checked against the register's
``report.generated`` event) and 第 X 页 共 N 页 / "Page X of N"; the last page ends with the
signature block (制表人 / 钥匙管理员 / 值班经理 / 主管审核, each with 日期). The total page count
needs a second pass: ``_numbered_canvas`` keeps each page's drawing state and writes the
numbers when the document is saved (reportlab's usual way). PDFs embed a subset of WenQuanYi
Zen Hei: borrowers' names are Chinese even in an English report, and a PDF that leans on
the reader's fonts shows boxes on a machine without CJK fonts. Text from the register is
escaped before it reaches reportlab's mark-up, so a stored ``<img …>`` prints as text.
"""

from __future__ import annotations

import io
from typing import Any

from kiosk.reports.render import Language, Layout, Letterhead, ensure_font, layout, word

SIGNERS = ("sign_prepared", "sign_custodian", "sign_duty", "sign_supervisor")


def esc(text: str) -> str:
    """Plain text for reportlab's paragraph mark-up (a name like ``<b>`` stays text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _numbered_canvas(font: str, lang: Language, head: Letterhead, title: str,
                     footer: str) -> type[Any]:
    """A canvas class that draws header, footer and 第 X 页 共 N 页 once N is known."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas

    width, height = landscape(A4)
    left = " · ".join(x for x in (head.company, head.building) if x)
    number = head.document_no
    sha = head.content_sha256

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._saved: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._saved.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._saved)
            for state in self._saved:
                self.__dict__.update(state)
                self._decorate(total)
                super().showPage()
            super().save()

        def _decorate(self, total: int) -> None:
            self.saveState()
            self.setFillColor(colors.HexColor("#34495E"))
            self.setFont(font, 8)
            self.drawString(12 * mm, height - 8 * mm, left or title)
            doc = (f"{word('document_no', lang)}: {number}" if number
                   else word("preview", lang))
            self.drawRightString(width - 12 * mm, height - 8 * mm, doc)
            self.setStrokeColor(colors.HexColor("#BDC3C7"))
            self.line(12 * mm, height - 9.5 * mm, width - 12 * mm, height - 9.5 * mm)
            self.setFillColor(colors.grey)
            self.setFont(font, 7)
            bits = [footer] if footer else []
            if sha:
                bits.append(f"{word('content_sha256', lang)}: {sha}")
            self.drawString(12 * mm, 7 * mm, " · ".join(bits))
            self.setFont(font, 8)
            self.drawRightString(width - 12 * mm, 7 * mm, word("page_of", lang).format(
                page=self._pageNumber, pages=total))
            if number is None:  # a preview can never be mistaken for the record
                self.setFillColor(colors.Color(0.8, 0.1, 0.1, alpha=0.12))
                self.setFont(font, 64)
                self.translate(width / 2, height / 2)
                self.rotate(24)
                self.drawCentredString(0, 0, "预览 PREVIEW")
            self.restoreState()

    return NumberedCanvas


def _signature_block(font: str, lang: Language, width: float) -> Any:
    """制表人 / 钥匙管理员 / 值班经理 / 主管审核: room to sign and date, kept on one page."""
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Paragraph, Spacer, TableStyle
    from reportlab.platypus import Table as PdfTable

    label = ParagraphStyle("sl", fontName=font, fontSize=9, leading=12)
    head = ParagraphStyle("sh", fontName=font, fontSize=11, leading=15, spaceBefore=10,
                          spaceAfter=3)
    date = f"{word('sign_date', lang)}：" if lang == "zh" else f"{word('sign_date', lang)}:"
    rows = [
        [Paragraph(esc(word(s, lang)), label) for s in SIGNERS],
        ["" for _ in SIGNERS],
        [Paragraph(esc(date), label) for _ in SIGNERS],
    ]
    grid = PdfTable(rows, colWidths=[width / len(SIGNERS)] * len(SIGNERS),
                    rowHeights=[7 * mm, 16 * mm, 8 * mm], hAlign="LEFT")
    grid.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#EEF2F7")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))
    return KeepTogether([Paragraph(esc(word("signatures", lang)), head), Spacer(1, 1 * mm),
                         grid])


def _heading_with_table(heading: Any, grid: Any, rows: list[list[Any]], widths: list[float],
                        width: float, page_height: float) -> list[Any]:
    """The heading glued to the start of its table: a heading alone at the foot of a page,
    its rows on the next, reads as a section with nothing in it.

    A ``CondPageBreak`` for heading + column row + first row: when less than that is left
    on the page, the heading moves to the next page with its table; when more is left, a
    long table still starts here and splits as usual (its column row repeats), so a table
    longer than a page leaves no blank half page in front of it (``KeepTogether`` would).
    """
    from reportlab.platypus import CondPageBreak
    from reportlab.platypus import Table as PdfTable

    _, head_h = heading.wrap(width, page_height)
    start = PdfTable(rows[:2], colWidths=widths)
    _, start_h = start.wrap(width, page_height)
    need = head_h + heading.getSpaceBefore() + heading.getSpaceAfter() + start_h
    return [CondPageBreak(need), heading, grid]


def render(data: dict[str, Any], lang: Language, *, footer: str = "",
           letterhead: Letterhead | None = None) -> bytes:
    """The report as an A4 landscape PDF with the Chinese glyphs embedded."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        KeepTogether,
        LongTable,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        TableStyle,
    )
    from reportlab.platypus import Table as PdfTable

    font = ensure_font()
    doc: Layout = layout(data, lang)
    head = letterhead or Letterhead()
    org_style = ParagraphStyle("o", fontName=font, fontSize=10, leading=14,
                               textColor=colors.HexColor("#34495E"))
    title_style = ParagraphStyle("t", fontName=font, fontSize=15, leading=20, spaceAfter=4)
    head_style = ParagraphStyle("h", fontName=font, fontSize=11, leading=15, spaceBefore=8,
                                spaceAfter=3)
    cell = ParagraphStyle("c", fontName=font, fontSize=8, leading=10, wordWrap="CJK")
    # English headings wrap between words; Chinese (and every cell, which may hold Chinese
    # names even in an English report) may wrap between any two characters
    bold = ParagraphStyle("b", parent=cell, textColor=colors.white,
                          wordWrap="CJK" if lang == "zh" else None)
    buf = io.BytesIO()
    pdf = SimpleDocTemplate(
        buf, pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm,
        topMargin=14 * mm, bottomMargin=14 * mm, title=doc.title,
        author=head.company or "kiosk", subject=head.document_no or "preview",
    )
    width = pdf.width
    story: list[Any] = []
    org = " · ".join(x for x in (head.company, head.building) if x)
    if org:
        story.append(Paragraph(esc(org), org_style))
    story.append(Paragraph(esc(doc.title), title_style))
    facts_list = list(doc.facts)
    facts_list.insert(0, (word("document_no", lang), head.document_no or word("preview", lang)))
    if head.company:
        facts_list.insert(1, (word("company", lang), head.company))
    if head.building:
        facts_list.insert(2 if head.company else 1, (word("building", lang), head.building))
    facts = [[Paragraph(esc(k), cell), Paragraph(esc(v), cell)] for k, v in facts_list]
    fact_table = PdfTable(facts, colWidths=[45 * mm, 150 * mm], hAlign="LEFT")
    fact_table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#EEF2F7")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    story += [fact_table, Spacer(1, 3 * mm)]
    for table in doc.tables:
        n = table.items if table.items is not None else len(table.rows)
        heading = Paragraph(f"{esc(table.heading)}（{n}）" if lang == "zh"
                            else f"{esc(table.heading)} ({n})", head_style)
        if not table.rows:
            story.append(KeepTogether([heading, Paragraph(esc(word("none", lang)), cell)]))
            continue
        total = sum(table.widths) or len(table.columns)
        widths = [width * w / total for w in (table.widths or [1.0] * len(table.columns))]
        rows = [[Paragraph(esc(c), bold) for c in table.columns]]
        rows += [[Paragraph(esc(v), cell) for v in row] for row in table.rows]
        grid = LongTable(rows, colWidths=widths, repeatRows=1, hAlign="LEFT")
        grid.setStyle(TableStyle([
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#34495E")),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#F6F8FA")]),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]))
        story += _heading_with_table(heading, grid, rows, widths, width, pdf.height)
    story.append(_signature_block(font, lang, width))
    pdf.build(story, canvasmaker=_numbered_canvas(font, lang, head, doc.title, footer))
    return buf.getvalue()
