"""Rendering stored report content to CSV and PDF, in zh-CN or English.

Both renderings start from the same JSON content (``kiosk.reports.data.content``) through
one neutral layout (title, facts, tables), so the CSV and the PDF of a report never
disagree. PDFs embed a subset of WenQuanYi Zen Hei: borrowers' names are Chinese even in an
English report, and a PDF that leans on the reader's fonts shows boxes on a machine
without CJK fonts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kiosk import csv_safe
from kiosk.alarm_kinds import alarm_kind_text
from kiosk.errors import KioskError
from kiosk.messages import REASONS

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")

FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
FONT_PACKAGE = "fonts-wqy-zenhei"
FONT_NAME = "WQYZenHei"


class ReportError(KioskError):
    """A report cannot be produced (e.g. the font to embed is missing)."""


# ---------------------------------------------------------------------------- words
_W: dict[str, tuple[str, str]] = {
    "daily": ("当日钥匙报告（当日钥匙当日点清）", "Daily key report (today's keys accounted for today)"),
    "overdue": ("逾期钥匙报告", "Overdue keys report"),
    "key": ("钥匙历史记录", "Key history"),
    "person": ("人员借用记录", "Person history"),
    "cabinet": ("钥匙柜", "Cabinet"),
    "day": ("日期", "Date"),
    "as_of": ("截至", "As of"),
    "period": ("期间", "Period"),
    "drawn_today": ("今日领取", "Drawn today"),
    "returned_today": ("今日归还", "Returned today"),
    "out_from_today": ("今日领取尚未归还", "Keys drawn today still out"),
    "out_from_earlier": ("此前领取尚未归还", "Keys drawn earlier still out"),
    "count": ("每日点数（传感器 / 记录 / 借出）", "Daily count (sensors / records / loans)"),
    "count_none": ("当日未点数", "No count was taken that day"),
    "no_sensors": ("传感器不可用，仅按记录", "Sensors unavailable: records only"),
    "keys_total": ("钥匙总数", "Keys in register"),
    "expected_in": ("记录应在柜", "In cabinet by records"),
    "sensed_in": ("传感器在柜", "In cabinet by sensors"),
    "open_loans": ("借出中", "Open loans"),
    "counted_at": ("点数时间", "Counted at"),
    "mismatches": ("点数差异", "Count mismatches"),
    "alarms": ("告警", "Alarms"),
    "overdue_list": ("逾期未还", "Overdue keys"),
    "loans": ("借用记录", "Loans"),
    "long_overdue_days": ("长期未归（天）", "Long overdue after (days)"),
    "none": ("无", "None"),
    "key_number": ("钥匙编号", "Key"),
    "label": ("名称", "Name"),
    "borrower": ("借用人", "Borrower"),
    "staff_no": ("工号", "Staff no."),
    "reason": ("事由", "Reason"),
    "drawn_at": ("领取时间", "Drawn at"),
    "due_at": ("应还时间", "Due at"),
    "returned_at": ("归还时间", "Returned at"),
    "overdue_hours": ("逾期（小时）", "Overdue (h)"),
    "escalation": ("升级", "Escalated to"),
    "slot": ("槽位", "Slot"),
    "problem": ("问题", "Problem"),
    "kind": ("类型", "Kind"),
    "state": ("状态", "State"),
    "message": ("说明", "Message"),
    "raised_at": ("时间", "Raised at"),
    "missing": ("记录在柜，传感器为空", "missing: records say in, slot empty"),
    "unexpected": ("传感器有钥匙，记录不在柜", "unexpected: slot holds a key records say is out"),
    "wrong_key": ("格口内是另一把钥匙", "wrong key: another key hangs in the slot"),
    # issue 13: how each slot was counted, and how the cabinet counts at all
    "compared": ("核对方式", "Compared by"),
    "compared_identity": ("钥匙身份：逐格读取钥匙牌芯片", "key identity: each slot reads the key's fob chip"),
    "compared_presence": ("仅感应有无：本柜不能分辨钥匙", "presence only: this cabinet cannot tell keys apart"),
    "slot_checks": ("逐格点数（已识别 / 仅感应有无）", "Count by slot (identified / present only)"),
    "check": ("核对结果", "Counted as"),
    "identified": ("已识别", "identified"),
    "present_only": ("仅感应有钥匙，未识别", "present only, not identified"),
    "tally": ("已识别 / 仅感应有无", "Identified / present only"),
    "custodian": ("钥匙管理员", "custodian"),
    "supervisor": ("客服主管", "supervisor"),
    "long_overdue": ("长期未归", "long overdue"),
    "open": ("未处理", "open"),
    "handled": ("处理中", "handled"),
    "closed": ("已关闭", "closed"),
    "name": ("姓名", "Name"),
    "out": ("未还", "out"),
    "generated": ("生成时间", "Generated at"),
    "handover": ("交接班报告（三清三明）", "Shift handover report"),
    "outgoing": ("交班人", "Outgoing"),
    "incoming": ("接班人", "Incoming"),
    "not_accepted": ("尚未接班签认", "not yet accepted"),
    "by_badge": ("刷卡", "badge"),
    "by_account": ("账户", "account"),
    "shift": ("本班时段", "Shift"),
    "drawn": ("本班领取", "Drawn this shift"),
    "returned": ("本班归还", "Returned this shift"),
    "overdue_now": ("逾期未还", "Overdue now"),
    "notes": ("备注", "Notes"),
    "alarms_raised": ("本班发生的告警", "Alarms raised this shift"),
    "keys_out": ("移交：借出未还的钥匙", "Handed over: keys out"),
    "open_alarms": ("移交：未关闭的告警及跟进", "Handed over: open alarms and follow-ups"),
    "follow_up": ("最新跟进", "Latest follow-up"),
    "movements": ("当日钥匙进出记录", "Movement log of the day"),
    "at": ("时间", "Time"),
    "movement": ("动作", "Movement"),
    "draw": ("领取", "drawn"),
    "return": ("归还", "returned"),
    "handled_by": ("经手人", "By"),
    "duty_manager": ("值班经理", "Duty manager"),
    "returned_by": ("归还人", "Returned by"),
    "k5": ("代还 (K5)", "By another (K5)"),
    "k5_yes": ("他人代还", "yes"),
    "all_alarms": ("告警（按类型，含当日及未关闭）", "Alarms by kind (the day's and all still open)"),
    "open_by_kind": ("未关闭告警（按类型）", "Open alarms by kind"),
    "company": ("物业公司", "Property company"),
    "building": ("项目 / 大厦", "Building"),
    "document_no": ("文件编号", "Document no."),
    "preview": ("预览 · 未存档，不作为正式报表", "PREVIEW · not issued, not a record"),
    "page_of": ("第 {page} 页 共 {pages} 页", "Page {page} of {pages}"),
    "sign_prepared": ("制表人", "Prepared by"),
    "sign_custodian": ("钥匙管理员", "Key custodian"),
    "sign_duty": ("值班经理", "Duty manager"),
    "sign_supervisor": ("主管审核", "Supervisor review"),
    "sign_date": ("日期", "Date"),
    "signatures": ("签字确认", "Signatures"),
    "content_sha256": ("内容 SHA-256（可与登记簿核对）", "Content SHA-256 (check it against the register)"),
}


def word(name: str, lang: Language) -> str:
    zh, en = _W.get(name, (name, name))
    return zh if lang == "zh" else en


def _t(value: str | None) -> str:
    """A local ISO time as people read it: 2026-11-27 10:00."""
    return value[:16].replace("T", " ") if value else ""


def _reason(value: str, lang: Language) -> str:
    text = REASONS.get(value)
    return (text.zh if lang == "zh" else text.en) if text else value


# --------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Letterhead:
    """What a signed paper report carries besides its content: whose it is and its number.

    ``company`` and ``building`` come from the ``[site]`` settings; ``document_no`` is the
    stored report's number (``document_number``), or None for a preview, which then says in
    large type that it is not a record. ``content_sha256`` is printed so a paper copy can be
    checked against the ``report.generated`` event in the register.
    """

    company: str = ""
    building: str = ""
    document_no: str | None = None
    content_sha256: str | None = None


KIND_CODES = {"daily": "D", "overdue": "O", "key": "K", "person": "P", "handover": "H"}


def document_number(kind: str, period_start: str, report_id: str) -> str:
    """K9-D-20261127-1A2B3C4D: kind, first day covered and the start of the report's id,
    stable for ever and printed on every page."""
    day = period_start[:10].replace("-", "")
    return f"K9-{KIND_CODES.get(kind, 'X')}-{day}-{report_id.replace('-', '')[:8].upper()}"


@dataclass
class Table:
    heading: str
    columns: list[str]
    rows: list[list[str]]
    widths: list[float] = field(default_factory=list)  # relative widths for the PDF
    items: int | None = None
    """How many things the table lists, when a row holds several (the count by slot)."""


@dataclass
class Layout:
    title: str
    facts: list[tuple[str, str]]
    tables: list[Table]


_LOAN_COLS = ["key_number", "label", "borrower", "staff_no", "reason", "drawn_at", "due_at",
              "overdue_hours", "escalation"]
_LOAN_WIDTHS = [1.1, 2.2, 1.0, 0.9, 1.2, 1.3, 1.3, 0.9, 1.0]


def _loan_table(heading: str, lines: list[dict[str, Any]], lang: Language,
                *, returned: bool = False, duty: bool = False) -> Table:
    cols = list(_LOAN_COLS)
    widths = list(_LOAN_WIDTHS)
    if returned:
        cols[7:7] = ["returned_at", "returned_by", "k5"]
        widths[7:7] = [1.3, 1.0, 1.1]
    if duty or returned:
        cols.insert(cols.index("due_at") + 1 if duty else len(cols), "duty_manager")
        widths.insert(cols.index("duty_manager"), 1.0)
    rows = []
    for x in lines:
        row = []
        for c in cols:
            v = x.get(c)
            if c in ("drawn_at", "due_at"):
                row.append(_t(v))
            elif c == "returned_at":
                row.append(_t(v) if v else word("out", lang))
            elif c == "reason":
                row.append(_reason(v or "", lang))
            elif c == "escalation":
                row.append(word(v, lang) if v else "")
            elif c == "overdue_hours":
                row.append(f"{v:g}" if v else "")
            elif c == "k5":
                row.append(word("k5_yes", lang) if x.get("returned_by_other") else "")
            else:
                row.append(str(v or ""))
        rows.append(row)
    return Table(heading, [word(c, lang) for c in cols], rows, widths)


def _alarm_table(alarms: list[dict[str, Any]], lang: Language, heading: str = "alarms",
                 *, follow_up: bool = False) -> Table:
    cols = ["raised_at", "kind", "key_number", "state", "message"]
    widths = [1.3, 1.3, 1.1, 0.8, 6.0]
    if follow_up:
        cols.append("follow_up")
        widths = [1.3, 1.3, 1.1, 0.8, 3.5, 2.5]
    rows = [[_t(a["raised_at"]), alarm_kind_text(a["kind"], lang), a.get("key_number") or "",
             word(a["state"], lang), a["message"]] + ([a.get("follow_up") or ""] if follow_up else [])
            for a in alarms]
    return Table(word(heading, lang), [word(c, lang) for c in cols], rows, widths)


def _signature(sig: dict[str, Any] | None, lang: Language) -> str:
    """名字 (工号) · 时间 · 刷卡 UID: who signed, when, and with what."""
    if sig is None:
        return word("not_accepted", lang)
    how = (f"{word('by_badge', lang)} {sig['card']}" if sig.get("card")
           else f"{word('by_account', lang)} {sig.get('account') or ''}")
    return f"{sig['name']} ({sig['staff_no']}) · {_t(sig['at'])} · {how}"


def _movement_table(lines: list[dict[str, Any]], lang: Language) -> Table:
    cols = ["at", "movement", "key_number", "label", "handled_by", "borrower", "slot", "reason",
            "duty_manager", "k5"]
    rows = [[_t(m["at"]), word(m["movement"], lang), m["key_number"], m["label"],
             m.get("person") or "", m.get("borrower") or "",
             "" if m.get("slot") is None else str(m["slot"]), _reason(m.get("reason") or "", lang),
             m.get("duty_manager") or "",
             word("k5_yes", lang) if m.get("returned_by_other") else ""] for m in lines]
    return Table(word("movements", lang), [word(c, lang) for c in cols], rows,
                 [1.3, 0.7, 1.0, 1.8, 1.0, 1.0, 0.6, 1.1, 1.0, 1.2])


def open_by_kind(alarms: list[dict[str, Any]], lang: Language) -> str:
    """"柜门被强行打开 1 · 钥匙逾期未还 2": the open alarms counted per kind."""
    counts: dict[str, int] = {}
    for a in alarms:
        if a["state"] != "closed":
            counts[a["kind"]] = counts.get(a["kind"], 0) + 1
    return " · ".join(f"{alarm_kind_text(k, lang)} {n}" for k, n in sorted(counts.items())) or \
        word("none", lang)


def _count_facts(count: dict[str, Any], lang: Language) -> list[tuple[str, str]]:
    sensed = str(count["sensed_in"]) if count["sensors_available"] else word("no_sensors", lang)
    facts = [
        (word("counted_at", lang), _t(count["counted_at"])),
        (word("keys_total", lang), str(count["keys_total"])),
        (word("expected_in", lang), str(count["expected_in"])),
        (word("sensed_in", lang), sensed),
        (word("open_loans", lang), str(count["open_loans"])),
    ]
    if count["sensors_available"]:  # issue 13: the reader knows what "in" was checked by
        how = "compared_identity" if count.get("identity_checked") else "compared_presence"
        facts.append((word("compared", lang), word(how, lang)))
        slots = count.get("slots") or []
        if slots:
            tally = [sum(1 for x in slots if x["check"] == c) for c in ("identified", "present_only")]
            facts.append((word("tally", lang), f"{tally[0]} / {tally[1]}"))
    return facts


def _mismatch_table(mism: list[dict[str, Any]], lang: Language) -> Table:
    def problem(m: dict[str, Any]) -> str:
        found = f" ({m['found']})" if m.get("found") else ""  # the key read there (WrongKey)
        return word(m["problem"], lang) + found

    return Table(
        word("mismatches", lang), [word(c, lang) for c in ("slot", "key_number", "problem")],
        [[str(m["slot"]), m.get("key_number") or "", problem(m)] for m in mism],
        [0.8, 1.5, 5.0],
    )


SLOTS_ACROSS = 4
"""Slots per row of the count-by-slot table: a 208-slot cabinet fits about two A4 pages."""


def _slot_table(count: dict[str, Any] | None, lang: Language) -> Table:
    """Issue 13: every slot holding (or due to hold) a key, and how it was counted:
    identified by its fob, or only present (a presence-only slot says so, never passes for
    an identified one)."""
    cells = [[str(x["slot"]), x.get("key_number") or "", word(x["check"], lang)]
             for x in (count or {}).get("slots") or []]
    rows = []
    for i in range(0, len(cells), SLOTS_ACROSS):
        group = cells[i:i + SLOTS_ACROSS]
        group += [["", "", ""]] * (SLOTS_ACROSS - len(group))
        rows.append([v for cell in group for v in cell])
    columns = [word(c, lang) for c in ("slot", "key_number", "check")] * SLOTS_ACROSS
    return Table(word("slot_checks", lang), columns, rows, [0.5, 0.9, 1.4] * SLOTS_ACROSS,
                 items=len(cells))


def layout(data: dict[str, Any], lang: Language) -> Layout:
    """The neutral layout of one report's content in one language."""
    kind = data["kind"]
    title = word(kind, lang)
    facts: list[tuple[str, str]] = [(word("cabinet", lang), data["cabinet"])]
    tables: list[Table] = []
    if kind == "daily":
        facts += [(word("day", lang), data["day"]), (word("as_of", lang), _t(data["as_of"])),
                  (word("drawn_today", lang), str(data["drawn_today"])),
                  (word("returned_today", lang), str(data["returned_today"]))]
        count = data.get("count")
        if count is None:
            facts.append((word("count", lang), word("count_none", lang)))
        else:
            facts += _count_facts(count, lang)
        facts.append((word("open_by_kind", lang), open_by_kind(data["alarms"], lang)))
        tables.append(_loan_table(word("out_from_today", lang), data["out_from_today"], lang,
                                  duty=True))
        tables.append(_loan_table(word("out_from_earlier", lang), data["out_from_earlier"], lang,
                                  duty=True))
        tables.append(_mismatch_table(count["mismatches"] if count else [], lang))
        tables.append(_alarm_table(data["alarms"], lang, "all_alarms"))
        tables.append(_movement_table(data.get("movements", []), lang))
        tables.append(_slot_table(count, lang))
    elif kind == "handover":
        facts += [
            (word("shift", lang), f"{_t(data['period_start'])} – {_t(data['period_end'])}"),
            (word("outgoing", lang), _signature(data["outgoing"], lang)),
            (word("incoming", lang), _signature(data.get("incoming"), lang)),
            (word("drawn", lang), str(data["drawn"])),
            (word("returned", lang), str(data["returned"])),
            (word("overdue_now", lang), str(data["overdue"])),
            *_count_facts(data["count"], lang),
        ]
        if data.get("notes"):
            facts.append((word("notes", lang), data["notes"]))
        tables.append(_loan_table(word("keys_out", lang), data["keys_out"], lang))
        tables.append(_alarm_table(data["open_alarms"], lang, "open_alarms", follow_up=True))
        tables.append(_mismatch_table(data["count"]["mismatches"], lang))
        tables.append(_alarm_table(data["alarms_raised"], lang, "alarms_raised"))
        tables.append(_slot_table(data["count"], lang))
    elif kind == "overdue":
        facts += [(word("as_of", lang), _t(data["as_of"])),
                  (word("long_overdue_days", lang), str(data["long_overdue_days"]))]
        tables.append(_loan_table(word("overdue_list", lang), data["overdue"], lang))
    elif kind == "key":
        facts += [(word("key_number", lang), data["key_number"]),
                  (word("label", lang), data["label"]),
                  (word("period", lang), f"{data['period_start']} – {data['period_end']}")]
        tables.append(_loan_table(word("loans", lang), data["loans"], lang, returned=True))
        tables.append(_alarm_table(data["alarms"], lang))
    elif kind == "person":
        facts += [(word("name", lang), data["name"]), (word("staff_no", lang), data["staff_no"]),
                  (word("period", lang), f"{data['period_start']} – {data['period_end']}")]
        tables.append(_loan_table(word("loans", lang), data["loans"], lang, returned=True))
    else:
        raise ReportError(f"unknown report kind {kind!r}")
    return Layout(title, facts, tables)


# ------------------------------------------------------------------------------ CSV
def render_csv(data: dict[str, Any], lang: Language, *,
               letterhead: Letterhead | None = None) -> bytes:
    """UTF-8 with a byte-order mark, so spreadsheet programs open the Chinese correctly."""
    doc = layout(data, lang)
    buf = io.StringIO()
    out = csv_safe.writer(buf)  # names, reasons and key numbers: never a formula
    out.writerow([doc.title])
    if letterhead is not None:
        for name, value in (("company", letterhead.company), ("building", letterhead.building),
                            ("document_no", letterhead.document_no or word("preview", lang))):
            if value:
                out.writerow([word(name, lang), value])
    for name, value in doc.facts:
        out.writerow([name, value])
    for table in doc.tables:
        out.writerow([])
        out.writerow([table.heading])
        out.writerow(table.columns)
        out.writerows(table.rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


# ------------------------------------------------------------------------------ PDF
def render_pdf(data: dict[str, Any], lang: Language, *, footer: str = "",
               letterhead: Letterhead | None = None) -> bytes:
    """The printable report (``kiosk.reports.pdf``): letterhead, page numbers, signatures.

    Made in a child process (``kiosk.reports.pdf_process``): reportlab and the parsed CJK
    font would otherwise stay in the daemon's memory after its first report (issue 15)."""
    from kiosk.reports import pdf_process

    return pdf_process.render(data, lang, footer=footer, letterhead=letterhead)


def ensure_font() -> str:
    """Register the embedded CJK font once; a clear error names the package when it is missing."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT_NAME in pdfmetrics.getRegisteredFontNames():
        return FONT_NAME
    if not FONT_PATH.is_file():
        raise ReportError(
            f"the Chinese font for PDF reports is missing ({FONT_PATH}): install the Debian "
            f"package {FONT_PACKAGE} (apt-get install {FONT_PACKAGE})"
        )
    pdfmetrics.registerFont(TTFont(FONT_NAME, str(FONT_PATH), subfontIndex=0))
    return FONT_NAME
