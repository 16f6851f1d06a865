"""Reports on demand (K9): build one with parameters, preview it, or issue it for the record.

The console and ``POST /api/v1/reports`` call these. A *preview* builds the same report an
issue would, from the same register, and renders it with "预览 PREVIEW" in place of a
document number; nothing is written, no event is logged. An *issue* stores the report with
its files and its ``report.generated`` event (``kiosk.reports.store.save``): from then on it
is part of the register and never deleted. The scheduler's end-of-day report is an issue
like any other, only made by ``scheduler`` instead of an account.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog
from kiosk.config import Settings
from kiosk.errors import InvalidRequest
from kiosk.reports import render
from kiosk.reports import store as report_store
from kiosk.reports.data import (
    AnyReport,
    build_daily,
    build_key_history,
    build_overdue,
    build_person_history,
    content,
)
from kiosk.services.authz import Principal
from kiosk.store.models import Cabinet
from kiosk.store.models_reports import Report
from kiosk.store.types import utcnow

OnDemandKind = Literal["daily", "overdue", "key", "person"]
PreviewFormat = Literal["json", "pdf", "csv"]
MAX_SPAN_DAYS = 366
"""A history covers at most a year: longer spans belong in the CSV event export."""


@dataclass(frozen=True)
class ReportRequest:
    """What to report on. ``day`` for a daily report (default: today, local); ``key_number``
    or ``staff_no`` with ``start``/``end`` for the histories (default: the last 30 days)."""

    kind: OnDemandKind
    day: dt.date | None = None
    key_number: str | None = None
    staff_no: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None


@dataclass(frozen=True)
class Rendered:
    """A preview: the bytes to show and how to label them."""

    media_type: str
    content: bytes
    filename: str


def _cabinet(session: Session, settings: Settings) -> Cabinet:
    cabinet = session.scalars(
        select(Cabinet).where(Cabinet.code == settings.cabinet_id)
    ).one_or_none()
    if cabinet is None:
        raise InvalidRequest(
            f"cabinet {settings.cabinet_id} has no record yet: start the daemon once first"
        )
    return cabinet


def _span(req: ReportRequest, today: dt.date) -> tuple[dt.date, dt.date]:
    end = req.end or today
    start = req.start or end - dt.timedelta(days=30)
    if start > end:
        raise InvalidRequest("start must not be after end")
    if (end - start).days > MAX_SPAN_DAYS:
        raise InvalidRequest(f"a history covers at most {MAX_SPAN_DAYS} days")
    return start, end


def build(session: Session, settings: Settings, req: ReportRequest, *,
          now: dt.datetime | None = None) -> AnyReport:
    """The report ``req`` asks for, as of ``now``: the same builders the scheduler uses."""
    now = now or utcnow()
    zone = settings.zone
    today = now.astimezone(zone).date()
    cabinet = _cabinet(session, settings)
    if req.kind == "daily":
        day = req.day or today
        if day > today:
            raise InvalidRequest(f"{day} has not begun yet: a daily report is of today or earlier")
        return build_daily(session, cabinet_id=cabinet.id, cabinet=cabinet.name, day=day,
                           zone=zone, now=now)
    if req.kind == "overdue":
        return build_overdue(session, cabinet_id=cabinet.id, cabinet=cabinet.name, zone=zone,
                             now=now, long_overdue_days=settings.schedule.long_overdue_after_days)
    start, end = _span(req, today)
    if req.kind == "key":
        if not req.key_number:
            raise InvalidRequest("a key history needs key_number")
        return build_key_history(session, cabinet=cabinet.name, key_number=req.key_number,
                                 start=start, end=end, zone=zone, now=now)
    if not req.staff_no:
        raise InvalidRequest("a person history needs staff_no")
    return build_person_history(session, cabinet=cabinet.name, staff_no=req.staff_no,
                                start=start, end=end, zone=zone, now=now)


def preview_json(session: Session, settings: Settings, req: ReportRequest, *,
                 now: dt.datetime | None = None) -> dict[str, Any]:
    """The report's content as it would be issued now; nothing is stored."""
    return content(build(session, settings, req, now=now))


def preview(session: Session, settings: Settings, req: ReportRequest, *,
            fmt: Literal["pdf", "csv"], lang: render.Language,
            now: dt.datetime | None = None) -> Rendered:
    """The PDF or CSV a person would get, marked 预览 PREVIEW and numbered by no one."""
    data = preview_json(session, settings, req, now=now)
    head = report_store.letterhead_for(data, report_id=None, digest=None, site=settings.site)
    blob = (render.render_pdf(data, lang, letterhead=head) if fmt == "pdf"
            else render.render_csv(data, lang, letterhead=head))
    return Rendered(report_store.MEDIA_TYPES[fmt], blob, f"preview-{req.kind}-{lang}.{fmt}")


def issue(session: Session, audit: AuditLog, settings: Settings, req: ReportRequest, *,
          by: Principal | None, language: render.Language,
          now: dt.datetime | None = None) -> Report:
    """Build, store and log the report: from now on part of the register (never deleted)."""
    report = build(session, settings, req, now=now)
    return report_store.save(session, audit, report=report, language=language,
                             actors=by.actors() if by else ["console"], now=now,
                             site=settings.site)
