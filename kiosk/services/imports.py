"""Bulk import from CSV and XLSX: read, check every row, then write all or nothing.

A custodian setting up a building has hundreds of people, rooms and keys in a spreadsheet.
The import is built so that nothing half-done is ever left behind:

- ``preview`` reads the file and checks every row against the rules and the register
  (duplicates inside the file and against the database, unknown slots, departments and
  rooms, bad card UIDs…) and returns *every* problem with its row number, column and a
  message in zh-CN and English. Nothing is written.
- ``apply`` runs the same checks and, only when there is no problem at all, writes every
  row in the caller's one transaction and logs one ``import.applied`` event naming the file's
  SHA-256 and every record created. Any problem: nothing is written (``ImportRefused``).

One module per kind (``imports_people``, ``imports_units``, ``imports_keys``) declares its
columns and its checks; this module reads files, maps headers, makes the templates and runs
the kinds. Headers may be the column's code (``staff_no``), its Chinese or English label, or
the template's own "工号 staff_no"; a CSV may be UTF-8 (with or without BOM) or GB18030, as
Excel and WPS save it on a Chinese Windows.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy.orm import Session

from kiosk import csv_safe
from kiosk.audit import AuditLog, NewEvent
from kiosk.config import Settings
from kiosk.errors import InvalidRequest, PermissionDenied
from kiosk.services import tx
from kiosk.services.authz import Principal

ImportKind = Literal["people", "units", "keys"]
KINDS: tuple[ImportKind, ...] = ("people", "units", "keys")
MAX_BYTES = 2 * 1024 * 1024
"""The stated limit of an import file: a building of a few thousand rows is far below it."""
MAX_ROWS = 5000
XLSX_MAGIC = b"PK\x03\x04"
SINGLE_LINE = re.compile(r"^[^\x00-\x1f\x7f]*$")


# ----------------------------------------------------------------------------- problems
@dataclass(frozen=True)
class RowProblem:
    """One problem of one row: where (row as numbered in the spreadsheet, column) and why."""

    row: int
    column: str | None
    zh: str
    en: str


class ImportRefused(InvalidRequest):
    """The file has problems: nothing was written. ``problems`` lists every one."""

    def __init__(self, problems: list[RowProblem]) -> None:
        first = problems[0]
        where = f"row {first.row}" + (f", column {first.column}" if first.column else "")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"import refused, nothing was written: {where}: {first.en}{more}")
        self.problems = problems


# ------------------------------------------------------------------------------ columns
@dataclass(frozen=True)
class Column:
    """A column of an import file: its code, labels, whether required, and a help line."""

    code: str
    zh: str
    en: str
    required: bool = False
    help_zh: str = ""
    help_en: str = ""
    example: str = ""

    @property
    def header(self) -> str:
        return f"{self.zh} {self.code}"


@dataclass
class Row:
    """One data row: its spreadsheet row number and the cells by column code ('' if empty)."""

    number: int
    cells: dict[str, str]

    def get(self, code: str) -> str:
        return self.cells.get(code, "")


@dataclass
class Checked:
    """What a kind's check found: the problems, and what would be created (by kind of record)."""

    problems: list[RowProblem] = field(default_factory=list)
    creates: dict[str, list[str]] = field(default_factory=dict)
    """Record kind → natural keys created (staff numbers, rooms, key numbers…)."""
    apply: Callable[[], None] | None = None
    """Writes the rows; set only by a check that found no problem."""

    def problem(self, row: int, column: str | None, zh: str, en: str) -> None:
        self.problems.append(RowProblem(row, column, zh, en))

    def will_create(self, what: str, key: str) -> None:
        self.creates.setdefault(what, []).append(key)


class Kind(Protocol):
    COLUMNS: tuple[Column, ...]

    def check(self, session: Session, rows: list[Row], ctx: Context) -> Checked: ...


@dataclass(frozen=True)
class Context:
    """Who imports, into which cabinet, in which zone (dates in the file are local)."""

    by: Principal
    settings: Settings


def _kinds() -> dict[str, Kind]:
    from kiosk.services import imports_keys, imports_people, imports_units

    return {"people": imports_people, "units": imports_units, "keys": imports_keys}


def kind_of(name: str) -> Kind:
    found = _kinds().get(name)
    if found is None:
        raise InvalidRequest(f"import kind must be one of {', '.join(KINDS)}, not {name!r}")
    return found


# ------------------------------------------------------------------------------ reading
def _text(value: Any) -> str:
    """A cell as text: 12.0 from Excel is "12", a date is YYYY-MM-DD, None is ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def _read_csv(blob: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = blob.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise InvalidRequest("the CSV file is neither UTF-8 nor GB18030 text")
    try:
        return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text, newline=""))]
    except csv.Error as exc:
        raise InvalidRequest(f"the CSV file cannot be read: {exc}") from None


def _read_xlsx(blob: bytes) -> list[list[str]]:
    """The first sheet's values (not formulas: ``data_only``), streamed (``read_only``)."""
    import zipfile

    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(blob), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InvalidRequest(f"the XLSX file cannot be read: {exc}") from None
    try:
        sheet = book.worksheets[0]
        rows: list[list[str]] = []
        for values in sheet.iter_rows(values_only=True):
            rows.append([_text(v) for v in values])
            if len(rows) > MAX_ROWS + 1:
                break
        return rows
    finally:
        book.close()


def read_table(blob: bytes, filename: str | None = None) -> list[list[str]]:
    """The file's rows of text cells; XLSX recognised by its content, not only its name."""
    if len(blob) > MAX_BYTES:
        raise InvalidRequest(f"an import file may be at most {MAX_BYTES // 1024 // 1024} MiB")
    if not blob.strip():
        raise InvalidRequest("the file is empty")
    is_xlsx = blob.startswith(XLSX_MAGIC) or (filename or "").lower().endswith(".xlsx")
    return _read_xlsx(blob) if is_xlsx else _read_csv(blob)


def _match(header: str, columns: Iterable[Column]) -> Column | None:
    text = " ".join(header.replace("*", " ").split()).lower()
    for column in columns:
        names = {column.code.lower(), column.zh.lower(), column.en.lower(), column.header.lower()}
        if text in names or any(part in names for part in text.split(" ")):
            return column
    return None


def parse_rows(table: list[list[str]], columns: tuple[Column, ...]) -> tuple[list[Row], list[RowProblem]]:
    """Rows keyed by column code; header problems (unknown, repeated or missing columns)."""
    problems: list[RowProblem] = []
    if not table or not any(table[0]):
        return [], [RowProblem(1, None, "第 1 行应为表头（请使用模板）",
                               "row 1 must be the header row (use the template)")]
    mapping: dict[int, Column] = {}
    for i, header in enumerate(table[0]):
        if not header:
            continue
        column = _match(header, columns)
        if column is None:
            problems.append(RowProblem(1, header, f"未知的列“{header}”",
                                       f"unknown column {header!r}"))
        elif column in mapping.values():
            problems.append(RowProblem(1, header, f"列“{column.zh}”重复", f"column {column.code} "
                                       "appears twice"))
        else:
            mapping[i] = column
    for column in columns:
        if column.required and column not in mapping.values():
            problems.append(RowProblem(1, column.code, f"缺少必填列“{column.zh}”",
                                       f"required column {column.code} is missing"))
    rows: list[Row] = []
    for number, values in enumerate(table[1:], start=2):
        if not any(v.strip() for v in values):
            continue  # a blank line between blocks is not a row
        cells = {mapping[i].code: v for i, v in enumerate(values) if i in mapping}
        rows.append(Row(number, cells))
    if len(rows) > MAX_ROWS:
        problems.append(RowProblem(MAX_ROWS + 2, None, f"一次最多导入 {MAX_ROWS} 行",
                                   f"at most {MAX_ROWS} rows per import"))
    if not rows and not problems:
        problems.append(RowProblem(2, None, "文件中没有数据行", "the file has no data rows"))
    return rows, problems


def required_and_single_line(rows: list[Row], columns: tuple[Column, ...], out: Checked,
                             max_len: dict[str, int]) -> None:
    """The checks every kind shares: required cells present, one line, within length."""
    for row in rows:
        for column in columns:
            value = row.get(column.code)
            if column.required and not value:
                out.problem(row.number, column.code, f"“{column.zh}”不能为空",
                            f"{column.code} is required")
            elif value and not SINGLE_LINE.match(value):
                out.problem(row.number, column.code, f"“{column.zh}”含有换行或控制字符",
                            f"{column.code} contains a line break or control character")
            elif value and len(value) > max_len.get(column.code, 200):
                out.problem(row.number, column.code,
                            f"“{column.zh}”最长 {max_len.get(column.code, 200)} 个字符",
                            f"{column.code} is longer than {max_len.get(column.code, 200)} "
                            "characters")


def first_seen(rows: list[Row], code: str, out: Checked, zh: str, en: str,
               *, normalise: Callable[[str], str] = lambda v: v) -> dict[str, int]:
    """Values of ``code`` that appear once; a repeat is a problem naming the first row."""
    seen: dict[str, int] = {}
    for row in rows:
        value = normalise(row.get(code))
        if not value:
            continue
        if value in seen:
            out.problem(row.number, code, f"{zh}“{value}”与第 {seen[value]} 行重复",
                        f"{en} {value!r} repeats row {seen[value]}")
        else:
            seen[value] = row.number
    return seen


# ---------------------------------------------------------------------------- running
@dataclass(frozen=True)
class Preview:
    kind: str
    rows: int
    problems: list[RowProblem]
    creates: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Applied:
    kind: str
    rows: int
    creates: dict[str, int]
    event_seq: int
    file_sha256: str


def _check(session: Session, ctx: Context, kind: str, blob: bytes,
           filename: str | None) -> tuple[list[Row], Checked]:
    spec = kind_of(kind)
    if not ctx.by.can(_permission()):
        raise PermissionDenied(f"role {ctx.by.role.value} lacks permission imports:write")
    rows, header_problems = parse_rows(read_table(blob, filename), spec.COLUMNS)
    if header_problems:
        return rows, Checked(problems=header_problems)
    checked = spec.check(session, rows, ctx)
    checked.problems.sort(key=lambda p: (p.row, p.column or ""))
    return rows, checked


def _permission() -> Any:
    from kiosk.services.authz import Permission

    return Permission.IMPORTS_WRITE


def preview(session: Session, ctx: Context, *, kind: str, blob: bytes,
            filename: str | None = None) -> Preview:
    """Every problem of every row, and what an import would create; writes nothing."""
    rows, checked = _check(session, ctx, kind, blob, filename)
    return Preview(kind, len(rows), checked.problems,
                   {k: len(v) for k, v in sorted(checked.creates.items())})


def apply(session: Session, audit: AuditLog, ctx: Context, *, kind: str, blob: bytes,
          filename: str | None = None) -> Applied:
    """Write every row and log one ``import.applied`` event, or nothing at all.

    Runs in the caller's transaction: a problem found here, or any error while writing,
    rolls back every row together with the event.
    """
    rows, checked = _check(session, ctx, kind, blob, filename)
    if checked.problems or checked.apply is None:
        raise ImportRefused(checked.problems or [RowProblem(1, None, "没有可导入的数据",
                                                            "nothing to import")])
    checked.apply()
    session.flush()
    digest = hashlib.sha256(blob).hexdigest()
    stored = tx.log(session, audit, NewEvent(
        type="import.applied", actors=ctx.by.actors(),
        payload={"kind": kind, "file_sha256": digest, "filename": (filename or "")[:200],
                 "rows": len(rows), "created": checked.creates},
    ))
    return Applied(kind, len(rows), {k: len(v) for k, v in sorted(checked.creates.items())},
                   stored.seq, digest)


# --------------------------------------------------------------------------- templates
def template_csv(kind: str) -> bytes:
    """The header row a person fills in, UTF-8 with BOM (Excel opens the Chinese as is)."""
    spec = kind_of(kind)
    buf = io.StringIO()
    out = csv_safe.writer(buf)
    out.writerow([c.header for c in spec.COLUMNS])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def template_xlsx(kind: str) -> bytes:
    """The same header on the first sheet (cells as text), and a 说明 Help sheet that says
    what each column takes, in both languages, with an example."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    spec = kind_of(kind)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = kind
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDE6F0")
    for i, column in enumerate(spec.COLUMNS, start=1):
        cell = sheet.cell(row=1, column=i, value=column.header)
        cell.font, cell.fill = bold, fill
        letter = cell.column_letter
        sheet.column_dimensions[letter].width = max(14, len(column.header) * 2)
        for r in range(2, 502):  # UIDs and numbers stay text: 0012 must not become 12
            sheet.cell(row=r, column=i).number_format = "@"
    sheet.freeze_panes = "A2"
    help_sheet = book.create_sheet("说明 Help")
    help_sheet.append(["列 Column", "必填 Required", "说明", "Description", "示例 Example"])
    for column in spec.COLUMNS:
        help_sheet.append([column.header, "是 yes" if column.required else "否 no",
                           column.help_zh, column.help_en, column.example])
    for cell in help_sheet[1]:
        cell.font, cell.fill = bold, fill
    for letter, width in zip("ABCDE", (22, 12, 48, 48, 20), strict=True):
        help_sheet.column_dimensions[letter].width = width
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


# ------------------------------------------------------------------------ cell parsers
YES = {"1", "yes", "y", "true", "是", "√", "x"}
NO = {"", "0", "no", "n", "false", "否"}


def parse_bool(value: str) -> bool | None:
    v = value.strip().lower()
    if v in YES:
        return True
    if v in NO:
        return False
    return None


def parse_int(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None


def parse_date(value: str) -> dt.date | None:
    v = value.strip().replace("/", "-").replace(".", "-")
    try:
        return dt.date.fromisoformat(v[:10]) if v else None
    except ValueError:
        return None


def choice(value: str, options: dict[str, str]) -> str | None:
    """``value`` as one of ``options``' codes; options maps every accepted word to its code."""
    return options.get(value.strip().lower())
