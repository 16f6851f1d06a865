"""Stored reports (K9): saved with their hash and an event, acknowledged, never deleted.

There is deliberately no delete function here or anywhere: K9 says a mismatch or an
overdue key "cannot be hidden". A supervisor acknowledges a report instead; the
acknowledgement is recorded on the row and as an audit event.

When a report is issued its renderings (zh/en × PDF/CSV) are made once and stored as
bytes (``report_files``); the ``report.generated`` event, which is chained into the log,
names the SHA-256 of the content and of every file. What a person downloads is those
stored bytes, so the hash in the register is the hash of the file in their hands (issue 14
item 12), and a download first checks the stored bytes against the *event*, not against
the row: editing a report's content and its ``sha256`` column together is refused as
forged (issue 16 item 5). ``check`` is the one place that decides; downloads, the detail
view and ``kiosk report verify`` all call it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.chain import event_hash
from kiosk.errors import Conflict, InvalidRequest, NotFound
from kiosk.reports import render
from kiosk.reports.data import AnyReport, canonical, content
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import Event
from kiosk.store.models_reports import REPORT_KINDS, Report, ReportFile
from kiosk.store.types import utcnow

if TYPE_CHECKING:
    from kiosk.config import SiteSettings

log = logging.getLogger("kiosk.reports")

FILE_NAMES = ("zh.pdf", "zh.csv", "en.pdf", "en.csv")
MEDIA_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8"}


class ForgedReport(Conflict):
    """The stored report does not match what the register says was issued."""


def _period(data: dict[str, Any]) -> tuple[dt.date, dt.date, str | None]:
    kind = data["kind"]
    if kind == "daily":
        day = dt.date.fromisoformat(data["day"])
        return day, day, None
    if kind == "overdue":
        day = dt.date.fromisoformat(data["as_of"][:10])
        return day, day, None
    start = dt.date.fromisoformat(data["period_start"][:10])
    end = dt.date.fromisoformat(data["period_end"][:10])
    if kind == "handover":
        return start, end, data["handover"]
    return start, end, data["key_number"] if kind == "key" else data["staff_no"]


def sha256_of(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def letterhead_for(data: dict[str, Any], *, report_id: uuid.UUID | None, digest: str | None,
                   site: SiteSettings | None) -> render.Letterhead:
    """The letterhead of a stored report (its number) or of a preview (``report_id`` None)."""
    number = (render.document_number(data["kind"], _period(data)[0].isoformat(), str(report_id))
              if report_id is not None else None)
    return render.Letterhead(
        company=site.company_name if site else "", building=site.building_name if site else "",
        document_no=number, content_sha256=digest,
    )


def render_files(data: dict[str, Any], head: render.Letterhead) -> dict[str, bytes]:
    """Every rendering of one report, as the bytes that will be stored and downloaded.

    Without the CJK font the PDFs cannot be made: the report is still issued with its CSVs
    (K9: a report is never lost to a missing package) and the log says why.
    """
    files: dict[str, bytes] = {}
    for lang in render.LANGUAGES:
        files[f"{lang}.csv"] = render.render_csv(data, lang, letterhead=head)
        try:
            files[f"{lang}.pdf"] = render.render_pdf(data, lang, letterhead=head)
        except render.ReportError as exc:
            log.error("report issued without its %s PDF: %s", lang, exc)
    return files


def save(
    session: Session, audit: AuditLog, *, report: AnyReport, language: str,
    actors: list[str] | None = None, now: dt.datetime | None = None,
    site: SiteSettings | None = None,
) -> Report:
    """Freeze ``report`` as canonical JSON with its SHA-256 and log ``report.generated``."""
    return save_content(session, audit, data=content(report), language=language,
                        actors=actors, now=now, site=site)


def save_content(
    session: Session, audit: AuditLog, *, data: dict[str, Any], language: str,
    actors: list[str] | None = None, now: dt.datetime | None = None,
    site: SiteSettings | None = None,
) -> Report:
    """``save`` for content that is already JSON (a handover's, with both signatures).

    The files are rendered inside the caller's transaction (about 0.1 s per PDF once the
    font is loaded) so the report, its files and its event commit together or not at all.
    """
    if language not in ("zh", "en"):
        raise InvalidRequest(f"language must be zh or en, not {language!r}")
    body = canonical(data)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    start, end, subject = _period(data)
    kind = data["kind"]
    row = Report(
        id=uuid.uuid4(), kind=kind, subject=subject, period_start=start, period_end=end,
        language=language, generated_at=now or utcnow(), content=body, sha256=digest,
    )
    session.add(row)
    session.flush()
    head = letterhead_for(data, report_id=row.id, digest=digest, site=site)
    files = render_files(data, head)
    for name, blob in files.items():
        session.add(ReportFile(report_id=row.id, name=name, content=blob, sha256=sha256_of(blob),
                               media_type=MEDIA_TYPES[name.split(".")[1]]))
    session.flush()
    stored = tx.log(session, audit, NewEvent(
        type="report.generated", actors=actors or ["scheduler"],
        rules=["H1", "K9"] if kind == "handover" else ["K9"],
        payload={"report": str(row.id), "kind": row.kind, "period_start": start.isoformat(),
                 "period_end": end.isoformat(), "subject": subject, "sha256": digest,
                 "document_no": head.document_no,
                 "files": {name: sha256_of(blob) for name, blob in sorted(files.items())}},
    ))
    row.event_seq = stored.seq
    return row


# ------------------------------------------------------------------------ verification
@dataclass
class ReportCheck:
    """What the register says of one stored report, and every way the row disagrees."""

    report_id: uuid.UUID
    event_seq: int | None
    document_no: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    """File name → SHA-256 as logged in the ``report.generated`` event."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _event_intact(session: Session, event: Event) -> str | None:
    """Why ``event`` cannot be trusted (edited, or the next event no longer links to it)."""
    recomputed = event_hash(
        cabinet_id=event.cabinet_id, seq=event.seq, at=event.at, type=event.type,
        actors=event.actors, slot=event.slot, key_number=event.key_number,
        decision=event.decision, rules=event.rules, payload=event.payload,
        prev_hash=event.prev_hash,
    )
    if recomputed != event.hash:
        return f"its event #{event.seq} was edited (the event does not match its hash)"
    following = session.get(Event, (event.cabinet_id, event.seq + 1))
    if following is not None and following.prev_hash != event.hash:
        return f"its event #{event.seq} was replaced (event #{event.seq + 1} does not link to it)"
    return None


def check(session: Session, row: Report, *, cabinet_id: str) -> ReportCheck:
    """Compare ``row`` and its stored files with its chained ``report.generated`` event."""
    result = ReportCheck(row.id, row.event_seq)
    event = (session.get(Event, (cabinet_id, row.event_seq))
             if row.event_seq is not None else None)
    if event is None or event.type != "report.generated":
        result.problems.append("no report.generated event in the log names this report")
        return result
    payload = json.loads(event.payload)
    if payload.get("report") != str(row.id):
        result.problems.append(f"event #{event.seq} is about another report")
        return result
    broken = _event_intact(session, event)
    if broken:
        result.problems.append(broken)
    result.document_no = payload.get("document_no")
    result.files = dict(payload.get("files") or {})
    logged = payload.get("sha256")
    actual = sha256_of(row.content.encode("utf-8"))
    if actual != logged:
        result.problems.append(
            f"content SHA-256 {actual[:16]}… is not the {str(logged)[:16]}… logged in "
            f"event #{event.seq}: the content was changed"
        )
    if row.sha256 != logged:
        result.problems.append(f"the row's sha256 column is not the one logged in event #{event.seq}")
    stored = {f.name: f for f in session.scalars(
        select(ReportFile).where(ReportFile.report_id == row.id))}
    for name, sha in sorted(result.files.items()):
        file = stored.get(name)
        if file is None:
            result.problems.append(f"{name} logged in event #{event.seq} is missing")
        elif sha256_of(file.content) != sha:
            result.problems.append(f"{name} does not match the SHA-256 logged in event "
                                   f"#{event.seq}: the file was changed")
    for name in sorted(set(stored) - set(result.files)):
        result.problems.append(f"{name} is stored but was never logged")
    return result


def require_genuine(session: Session, row: Report, *, cabinet_id: str) -> ReportCheck:
    result = check(session, row, cabinet_id=cabinet_id)
    if not result.ok:
        raise ForgedReport(
            f"K9: report {row.id} does not match the register and is refused as forged: "
            + "; ".join(result.problems)
        )
    return result


def data_of(row: Report) -> dict[str, Any]:
    """The stored content, checked against its hash (a changed row is refused, not rendered).

    Only the row's own column is compared here; ``check`` compares with the register."""
    if hashlib.sha256(row.content.encode("utf-8")).hexdigest() != row.sha256:
        raise Conflict(f"K9: report {row.id} does not match its SHA-256; it was altered")
    data: dict[str, Any] = json.loads(row.content)
    return data


def genuine_data(session: Session, row: Report, *, cabinet_id: str) -> dict[str, Any]:
    """The content of ``row`` after ``require_genuine``: what the API shows."""
    require_genuine(session, row, cabinet_id=cabinet_id)
    data: dict[str, Any] = json.loads(row.content)
    return data


@dataclass(frozen=True)
class Download:
    name: str
    media_type: str
    content: bytes
    sha256: str


def download(
    session: Session, row: Report, *, cabinet_id: str, lang: str, fmt: str,
    site: SiteSettings | None = None,
) -> Download:
    """The exact stored bytes of ``lang.fmt``, checked against the register first.

    A report issued before files were stored (no ``files`` in its event) is rendered from
    its content, once that content is checked against the event's hash.
    """
    result = require_genuine(session, row, cabinet_id=cabinet_id)
    name = f"{lang}.{fmt}"
    if result.files:
        if name not in result.files:
            raise NotFound(f"report {row.id} was issued without {name} (see the daemon's log)")
        file = session.scalars(select(ReportFile).where(
            ReportFile.report_id == row.id, ReportFile.name == name)).one()
        return Download(name, file.media_type, file.content, file.sha256)
    data: dict[str, Any] = json.loads(row.content)
    head = letterhead_for(data, report_id=row.id, digest=row.sha256, site=site)
    blob = (render.render_pdf(data, lang, letterhead=head) if fmt == "pdf"  # type: ignore[arg-type]
            else render.render_csv(data, lang, letterhead=head))  # type: ignore[arg-type]
    return Download(name, MEDIA_TYPES[fmt], blob, sha256_of(blob))


def list_reports(
    session: Session, *, kind: str | None, day: dt.date | None, acknowledged: bool | None,
    limit: int, offset: int,
) -> tuple[list[Report], int]:
    query = select(Report)
    if kind is not None:
        if kind not in REPORT_KINDS:
            raise InvalidRequest(f"kind must be one of {', '.join(REPORT_KINDS)}")
        query = query.where(Report.kind == kind)
    if day is not None:
        query = query.where(Report.period_start <= day, Report.period_end >= day)
    if acknowledged is not None:
        query = query.where(
            Report.acknowledged_at.is_not(None) if acknowledged
            else Report.acknowledged_at.is_(None)
        )
    return tx.page(session, query, order_by=[Report.generated_at.desc(), Report.id],
                   limit=limit, offset=offset)


def get_report(session: Session, *, report_id: uuid.UUID) -> Report:
    return tx.get(session, Report, report_id, "report")


def acknowledge(
    session: Session, audit: AuditLog, *, by: Principal, report_id: uuid.UUID,
    note: str | None = None,
) -> Report:
    """K9: the supervisor has read the report. Once; the row and the log both say who and when."""
    row = get_report(session, report_id=report_id)
    if row.acknowledged_at is not None:
        raise Conflict(
            f"K9: report {row.id} was already acknowledged by {row.acknowledged_by} "
            f"at {row.acknowledged_at.isoformat()}"
        )
    row.acknowledged_at = utcnow()
    row.acknowledged_by = by.username
    row.acknowledged_by_id = by.account_id
    row.acknowledgement_note = note
    session.flush()
    tx.log(session, audit, NewEvent(
        type="report.acknowledged", actors=by.actors(), rules=["K9"],
        payload={"report": str(row.id), "kind": row.kind, "sha256": row.sha256, "note": note},
    ))
    return row
