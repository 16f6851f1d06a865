"""Stored reports (K9): saved with their hash and an event, acknowledged, never deleted.

There is deliberately no delete function here or anywhere: K9 says a mismatch or an
overdue key "cannot be hidden". A supervisor acknowledges a report instead; the
acknowledgement is recorded on the row and as an audit event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict, InvalidRequest
from kiosk.reports.data import AnyReport, canonical, content
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models_reports import REPORT_KINDS, Report
from kiosk.store.types import utcnow


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


def save(
    session: Session, audit: AuditLog, *, report: AnyReport, language: str,
    actors: list[str] | None = None, now: dt.datetime | None = None,
) -> Report:
    """Freeze ``report`` as canonical JSON with its SHA-256 and log ``report.generated``."""
    return save_content(session, audit, data=content(report), language=language,
                        actors=actors, now=now)


def save_content(
    session: Session, audit: AuditLog, *, data: dict[str, Any], language: str,
    actors: list[str] | None = None, now: dt.datetime | None = None,
) -> Report:
    """``save`` for content that is already JSON (a handover's, with both signatures)."""
    if language not in ("zh", "en"):
        raise InvalidRequest(f"language must be zh or en, not {language!r}")
    body = canonical(data)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    start, end, subject = _period(data)
    kind = data["kind"]
    row = Report(
        kind=kind, subject=subject, period_start=start, period_end=end,
        language=language, generated_at=now or utcnow(), content=body, sha256=digest,
    )
    session.add(row)
    session.flush()
    stored = tx.log(session, audit, NewEvent(
        type="report.generated", actors=actors or ["scheduler"],
        rules=["H1", "K9"] if kind == "handover" else ["K9"],
        payload={"report": str(row.id), "kind": row.kind, "period_start": start.isoformat(),
                 "period_end": end.isoformat(), "subject": subject, "sha256": digest},
    ))
    row.event_seq = stored.seq
    return row


def data_of(row: Report) -> dict[str, Any]:
    """The stored content, checked against its hash (a changed row is refused, not rendered)."""
    if hashlib.sha256(row.content.encode("utf-8")).hexdigest() != row.sha256:
        raise Conflict(f"K9: report {row.id} does not match its SHA-256; it was altered")
    data: dict[str, Any] = json.loads(row.content)
    return data


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
