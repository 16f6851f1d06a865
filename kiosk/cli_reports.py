"""``kiosk report``: K9 reports from the device's own database, as PDF or CSV.

Each report made here is also stored (``reports`` table, with its hash and a
``report.generated`` event by ``console``), like the scheduler's: K9 reports are never
made off the record. The default output is standard output, so a report can be piped.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kiosk.reports.data import AnyReport

FORMATS = ("pdf", "csv")


def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                      help="Write here (default: standard output).")(fn)
    fn = click.option("--lang", type=click.Choice(["zh", "en"]), default="zh",
                      show_default=True)(fn)
    fn = click.option("--format", "fmt", type=click.Choice(FORMATS), default="pdf",
                      show_default=True)(fn)
    return fn


def _period(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--to", "to_day", type=click.DateTime(["%Y-%m-%d"]), default=None,
                      help="Last local day (default: today).")(fn)
    fn = click.option("--from", "from_day", type=click.DateTime(["%Y-%m-%d"]), default=None,
                      help="First local day (default: 30 days before --to).")(fn)
    return fn


def _emit(ctx: click.Context, build: Callable[..., AnyReport], fmt: str, lang: str,
          out: Path | None) -> None:
    """Build the report in a write transaction, store it with its files, write out the
    stored file itself (the bytes whose SHA-256 the register holds)."""
    from kiosk.reports import store as report_store
    from kiosk.runtime import Runtime
    from kiosk.services import tx

    settings = ctx.find_root().obj.settings
    runtime = Runtime.open(settings)
    try:
        cabinet = runtime.ensure_cabinet()
        with tx.write(runtime.audit) as session:
            report = build(session, cabinet, settings.zone)
            row = report_store.save(session, runtime.audit, report=report, language=lang,
                                    actors=["console"], site=settings.site)
            file = report_store.download(session, row, cabinet_id=settings.cabinet_id,
                                         lang=lang, fmt=fmt, site=settings.site)
            what = f"{row.kind} report {row.id}, sha256 {file.sha256}"
    finally:
        runtime.close()
    _output(file.content, out, what)


def _output(body: bytes, out: Path | None, what: str) -> None:
    if out is None:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    else:
        out.write_bytes(body)
        click.echo(f"{out}: {what} ({len(body)} bytes)", err=True)


def _write(data: dict[str, Any], fmt: str, lang: str, footer: str, out: Path | None,
           what: str) -> None:
    """Render ``data`` as PDF or CSV to ``out`` (standard output when None)."""
    from kiosk.reports import render

    body = (render.render_pdf(data, lang, footer=footer) if fmt == "pdf"  # type: ignore[arg-type]
            else render.render_csv(data, lang))  # type: ignore[arg-type]
    _output(body, out, what)


def _span(from_day: dt.datetime | None, to_day: dt.datetime | None,
          today: dt.date) -> tuple[dt.date, dt.date]:
    end = to_day.date() if to_day else today
    start = from_day.date() if from_day else end - dt.timedelta(days=30)
    if start > end:
        raise click.BadParameter("--from must not be after --to")
    return start, end


@click.group()
def report() -> None:
    """K9 reports (daily, overdue, key and person history) and H1 handovers, as PDF or CSV."""


@report.command("daily")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Local day (default: today).")
@_options
@click.pass_context
def daily(ctx: click.Context, day: dt.datetime | None, fmt: str, lang: str,
          out: Path | None) -> None:
    """K9: keys drawn that day still out, the daily count, the day's K9 alarms."""
    from kiosk.reports.data import build_daily
    from kiosk.store.types import utcnow

    def build(session: Any, cabinet: Any, zone: Any) -> AnyReport:
        now = utcnow()
        return build_daily(session, cabinet_id=cabinet.id, cabinet=cabinet.name,
                           day=day.date() if day else now.astimezone(zone).date(),
                           zone=zone, now=now)

    _emit(ctx, build, fmt, lang, out)


@report.command("overdue")
@_options
@click.pass_context
def overdue(ctx: click.Context, fmt: str, lang: str, out: Path | None) -> None:
    """Every key past its due time, with how far it was escalated (长期未归 included)."""
    from kiosk.reports.data import build_overdue
    from kiosk.store.types import utcnow

    days = ctx.find_root().obj.settings.schedule.long_overdue_after_days

    def build(session: Any, cabinet: Any, zone: Any) -> AnyReport:
        return build_overdue(session, cabinet_id=cabinet.id, cabinet=cabinet.name, zone=zone,
                             now=utcnow(), long_overdue_days=days)

    _emit(ctx, build, fmt, lang, out)


@report.command("key")
@click.argument("key_number")
@_period
@_options
@click.pass_context
def key(ctx: click.Context, key_number: str, from_day: dt.datetime | None,
        to_day: dt.datetime | None, fmt: str, lang: str, out: Path | None) -> None:
    """History of one key: who drew it, why, when it came back, its alarms."""
    from kiosk.reports.data import build_key_history
    from kiosk.store.types import utcnow

    def build(session: Any, cabinet: Any, zone: Any) -> AnyReport:
        now = utcnow()
        start, end = _span(from_day, to_day, now.astimezone(zone).date())
        return build_key_history(session, cabinet=cabinet.name, key_number=key_number,
                                 start=start, end=end, zone=zone, now=now)

    _emit(ctx, build, fmt, lang, out)


@report.command("person")
@click.argument("staff_no")
@_period
@_options
@click.pass_context
def person(ctx: click.Context, staff_no: str, from_day: dt.datetime | None,
           to_day: dt.datetime | None, fmt: str, lang: str, out: Path | None) -> None:
    """History of one person's draws and returns."""
    from kiosk.reports.data import build_person_history
    from kiosk.store.types import utcnow

    def build(session: Any, cabinet: Any, zone: Any) -> AnyReport:
        now = utcnow()
        start, end = _span(from_day, to_day, now.astimezone(zone).date())
        return build_person_history(session, cabinet=cabinet.name, staff_no=staff_no,
                                    start=start, end=end, zone=zone, now=now)

    _emit(ctx, build, fmt, lang, out)


@report.command("handover")
@click.argument("handover_id", required=False)
@_options
@click.pass_context
def handover(ctx: click.Context, handover_id: str | None, fmt: str, lang: str,
             out: Path | None) -> None:
    """H1: a shift handover's report (the latest if no id), signed or still waiting.

    Prints what was frozen when the handover started, with the incoming signature once it
    was accepted; nothing new is stored (the accepted report already is).
    """
    import uuid

    from sqlalchemy import select

    from kiosk.runtime import Runtime
    from kiosk.services import handovers, tx
    from kiosk.store.models import Handover

    runtime = Runtime.open(ctx.find_root().obj.settings)
    try:
        with tx.read(runtime.audit) as session:
            if handover_id is None:
                row = session.scalars(
                    select(Handover).order_by(Handover.started_at.desc()).limit(1)
                ).first()
                if row is None:
                    raise click.ClickException("no handover has been started yet")
            else:
                try:
                    ident = uuid.UUID(handover_id)
                except ValueError:
                    raise click.BadParameter(f"{handover_id!r} is not a handover id") from None
                row = handovers.get_handover(session, handover_id=ident)
            data = handovers.content_of(row)
            footer = f"handover {row.id} · {row.state.value}"
    finally:
        runtime.close()
    _write(data, fmt, lang, footer, out, f"handover {row.id} ({row.state.value})")


@report.command("verify")
@click.argument("report_id", required=False)
@click.pass_context
def verify(ctx: click.Context, report_id: str | None) -> None:
    """Check stored reports (all, or one) against their report.generated events.

    Exit status 1 if any report's content or files differ from what the register logged:
    the report was changed after it was issued (run ``kiosk audit verify`` for the chain).
    """
    import uuid

    from sqlalchemy import select

    from kiosk.reports import store as report_store
    from kiosk.runtime import Runtime
    from kiosk.services import tx
    from kiosk.store.models_reports import Report

    settings = ctx.find_root().obj.settings
    runtime = Runtime.open(settings)
    bad = checked = 0
    try:
        with tx.read(runtime.audit) as session:
            if report_id is not None:
                try:
                    ident = uuid.UUID(report_id)
                except ValueError:
                    raise click.BadParameter(f"{report_id!r} is not a report id") from None
                rows = [report_store.get_report(session, report_id=ident)]
            else:
                rows = list(session.scalars(select(Report).order_by(Report.generated_at)))
            for row in rows:
                checked += 1
                result = report_store.check(session, row, cabinet_id=settings.cabinet_id)
                if result.ok:
                    click.echo(f"ok      {row.id} {row.kind} {row.period_start} "
                               f"{result.document_no or ''} ({len(result.files)} files)")
                else:
                    bad += 1
                    click.echo(f"FORGED  {row.id} {row.kind} {row.period_start}: "
                               + "; ".join(result.problems))
    finally:
        runtime.close()
    click.echo(f"{checked} report(s) checked, {bad} not matching the register", err=True)
    if bad:
        ctx.exit(1)
