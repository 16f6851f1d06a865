"""The rendered files of issued reports, shipped up to the hub and served there (issue 12
item 4: the hub is the off-device copy of every log, issued reports included).

A cabinet stores each rendering of an issued report (``zh.pdf``, ``en.csv`` ...) as bytes
and names their SHA-256 in the report's chained ``report.generated`` event (issue 14 item
12). The report's record and that event reach the hub in an ordinary ingest batch; the
files follow, one signed request each (``POST /hub/v1/ingest/report-file``, so a PDF never
shares the ingest route's 8 MiB body with a batch), once the hub acknowledges the event.

The hub takes a file only when its SHA-256 is the one the event it holds names: that event
was verified in the cabinet's hash chain as it was ingested, so an edited file on the
cabinet (or on the way) cannot become the hub's copy. A refusal raises a hub alarm and logs
``fleet.ingest_refused`` in the hub's chain, like every other ingest refusal. A file the
hub holds is never replaced; sending it again (the shipper's at-least-once) changes nothing.

The cabinet's progress is a cursor in its ``fleet_state``: the ``report.generated`` seq
whose files have all been answered. It never passes the hub's acknowledged cursor and is
pulled back to it when the hub says it holds less (a hub restored from an older backup).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict, InvalidRequest, NotFound
from kiosk.fleet import state
from kiosk.fleet.hub import raise_alarm
from kiosk.fleet.refusal import Refused
from kiosk.fleet.scope import Scope
from kiosk.fleet.site_lists import _one as record_in_scope
from kiosk.store.db import write_session
from kiosk.store.models_fleet import HubEvent, HubRecord, HubReportFile
from kiosk.store.models_reports import Report, ReportFile

FILE_NAMES = ("zh.pdf", "zh.csv", "en.pdf", "en.csv")
MEDIA_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8"}
CURSOR = "report_files_seq"
"""The cabinet's ``fleet_state`` entry: files shipped for reports logged up to this seq."""


# ------------------------------------------------------------------------ the cabinet
def shipped_up_to(engine: Engine) -> int:
    with Session(engine) as session:
        return int(state.read(session, CURSOR) or 0)


def save_shipped(engine: Engine, seq: int) -> None:
    with write_session(engine) as session:
        state.write(session, CURSOR, seq)


def next_report_files(engine: Engine, after_seq: int,
                      acked_seq: int) -> tuple[int, list[dict[str, Any]]] | None:
    """The next issued report after ``after_seq`` whose event the hub holds (at or below
    ``acked_seq``), with its files as upload bodies; None when there is none."""
    with Session(engine) as session:
        report = session.scalars(
            select(Report).where(Report.event_seq > after_seq, Report.event_seq <= acked_seq)
            .order_by(Report.event_seq).limit(1)).first()
        if report is None or report.event_seq is None:
            return None
        files = session.scalars(select(ReportFile).where(ReportFile.report_id == report.id)
                                .order_by(ReportFile.name))
        return report.event_seq, [
            {"report": str(report.id), "name": f.name,
             "content": base64.b64encode(f.content).decode("ascii")} for f in files]


# ---------------------------------------------------------------------------- the hub
@dataclass(frozen=True)
class Received:
    report_id: uuid.UUID
    name: str
    sha256: str
    stored: bool
    """False when the hub held these very bytes already (a resend)."""


def _parse(doc: Any) -> tuple[uuid.UUID, str, bytes]:
    try:
        report_id, name = uuid.UUID(str(doc["report"])), str(doc["name"])
        blob = base64.b64decode(str(doc["content"]), validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise InvalidRequest(f"not a report file upload: {exc}") from None
    if name not in FILE_NAMES:
        raise InvalidRequest(f"file name must be one of {', '.join(FILE_NAMES)}, not {name!r}")
    return report_id, name, blob


def receive(audit: AuditLog, *, cabinet_id: str, doc: Any) -> Received:
    """Store one file of a report ``cabinet_id`` issued, or raise ``Refused`` (alarmed)."""
    report_id, name, blob = _parse(doc)
    try:
        with write_session(audit.engine) as session:
            return _receive_in(session, cabinet_id, report_id, name, blob)
    except Refused as refused:
        with write_session(audit.engine) as session:
            raise_alarm(session, cabinet_id=cabinet_id, kind=refused.kind, seq=refused.seq,
                        message=str(refused))
            audit.append_in(session, NewEvent(
                type="fleet.ingest_refused", decision="deny", rules=["K9"],
                payload={"cabinet_id": cabinet_id, "kind": refused.kind, "seq": refused.seq,
                         "report": str(report_id), "file": name, "why": str(refused)}))
        raise


def _logged_files(session: Session, cabinet_id: str, report_id: uuid.UUID,
                  record: HubRecord) -> tuple[int | None, dict[str, str]]:
    """The seq and the file hashes of the report's ``report.generated`` event, as the hub
    holds it (verified in the cabinet's chain when it was ingested)."""
    seq = json.loads(record.body).get("event_seq")
    event = session.get(HubEvent, (cabinet_id, int(seq))) if seq is not None else None
    if event is None or event.type != "report.generated":
        return None, {}
    payload = json.loads(event.payload)
    if payload.get("report") != str(report_id):
        return event.seq, {}
    return event.seq, {str(k): str(v) for k, v in (payload.get("files") or {}).items()}


def _receive_in(session: Session, cabinet_id: str, report_id: uuid.UUID, name: str,
                blob: bytes) -> Received:
    record = session.get(HubRecord, ("report", report_id))
    if record is None:
        raise NotFound(f"the hub holds no report {report_id} yet; ship its record first")
    if record.cabinet_id != cabinet_id:
        raise Refused("foreign_record", None, f"report {report_id} belongs to cabinet "
                      f"{record.cabinet_id}; cabinet {cabinet_id} cannot send its files")
    seq, logged = _logged_files(session, cabinet_id, report_id, record)
    actual = hashlib.sha256(blob).hexdigest()
    if name not in logged:
        raise Refused("report_file_unlogged", seq, f"cabinet {cabinet_id} sent {name} of "
                      f"report {report_id}, which its report.generated event does not name")
    if actual != logged[name]:
        raise Refused("report_file_mismatch", seq, f"cabinet {cabinet_id} sent {name} of "
                      f"report {report_id} with SHA-256 {actual[:16]}…, not the "
                      f"{logged[name][:16]}… logged in event #{seq}: the file was changed; "
                      "the hub keeps what it holds")
    held = session.get(HubReportFile, (report_id, name))
    if held is not None:
        if held.sha256 != actual:  # the hub's copy was taken under the same event: a fault
            raise Refused("report_file_mismatch", seq, f"{name} of report {report_id} "
                          "differs from the copy the hub holds; the hub keeps its copy")
        return Received(report_id, name, actual, stored=False)
    session.add(HubReportFile(report_id=report_id, name=name, cabinet_id=cabinet_id,
                              media_type=MEDIA_TYPES[name.split(".")[1]], sha256=actual,
                              content=blob))
    return Received(report_id, name, actual, stored=True)


@dataclass(frozen=True)
class HubDownload:
    name: str
    media_type: str
    content: bytes
    sha256: str


def download(session: Session, scope: Scope, report_id: uuid.UUID, *, fmt: str,
             lang: str | None) -> HubDownload:
    """The exact bytes of one rendering, within the caller's site scope (another site's
    report is 404, like one that does not exist). ``lang`` defaults to the report's own."""
    if fmt not in MEDIA_TYPES:
        raise InvalidRequest("format must be pdf or csv")
    record, _site = record_in_scope(session, scope, "report", report_id)
    language = lang or str(json.loads(record.body).get("language") or "zh")
    if language not in ("zh", "en"):
        raise InvalidRequest("lang must be zh or en")
    name = f"{language}.{fmt}"
    held = session.get(HubReportFile, (report_id, name))
    if held is None:
        raise NotFound(f"the hub holds no {name} of report {report_id} (not shipped yet, or "
                       "the report was issued without it)")
    if hashlib.sha256(held.content).hexdigest() != held.sha256:
        raise Conflict(f"K9: the hub's copy of {name} of report {report_id} does not match "
                       "its SHA-256; it was altered")
    return HubDownload(name, held.media_type, held.content, held.sha256)
