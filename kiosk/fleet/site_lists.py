"""The hub's day-to-day lists by site (issue 12): keys out, the alarms the cabinets raised
and the reports they issued, for one site or cabinet or the whole fleet.

Why these read the hub's copies and not the tables the cabinet's ``/api/v1`` lists read: at
the hub those tables (``loans``, ``alarms``, ``reports``) are the hub's own and hold no
cabinet's facts; the fleet's loans, alarms and reports arrive as ``hub_records`` (the
cabinet's columns as JSON, keyed by record id and cabinet, ``kiosk.fleet.ingest``). A row
belongs to the site of the cabinet that shipped it, so scoping is one rule: only records of
the caller's site's cabinets are read, whatever filter is asked for. A filter naming another
site or cabinet finds nothing (an empty list, the answer a site that does not exist gets),
and one record by id outside the scope is ``NotFound`` like an id that never existed.

Names are resolved from the hub's own configuration: a cabinet's key and person rows carry
the hub's ids (``kiosk.fleet.apply``), so the key number and the borrower's name come from
the hub's ``keys`` and ``people``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    ScalarSelect,
    Select,
    String,
    and_,
    any_,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.selectable import Subquery

from kiosk.errors import NotFound
from kiosk.fleet.record_columns import TIME_FIELD, due_hour, hour_start
from kiosk.fleet.scope import Scope
from kiosk.store.models import Key, Person
from kiosk.store.models_fleet import (
    HubBorrowerCount,
    HubCabinet,
    HubDueCount,
    HubRecord,
    HubRecordCount,
    HubReportFile,
    HubSite,
)


class LoanState(StrEnum):
    OUT = "out"
    OVERDUE = "overdue"
    RETURNED = "returned"
    ALL = "all"


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


def cabinets_seen(scope: Scope, *, site: str | None = None,
                  cabinet_id: str | None = None) -> Select[str, str]:
    """``(cabinet id, site code)`` of the cabinets the caller sees, narrowed by the filters;
    the scope is applied first, so a filter can only narrow it."""
    query = select(HubCabinet.cabinet_id, HubSite.code).join(
        HubSite, HubCabinet.site_id == HubSite.id)
    if scope.site_id is not None:
        query = query.where(HubCabinet.site_id == scope.site_id)
    if site is not None:
        query = query.where(HubSite.code == site)
    if cabinet_id is not None:
        query = query.where(HubCabinet.cabinet_id == cabinet_id)
    return query


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _field(session: Session, name: str) -> ColumnElement[str]:
    """One field of a record's JSON body as text. The body is a text column: PostgreSQL
    reads it as JSON after a cast, written with the field's name in the SQL (not a bound
    parameter) so the query matches ``ix_hub_records_loans_out``'s predicate even in a
    prepared statement's generic plan; SQLite's JSON functions take the text as it is (a
    cast there would make it a number)."""
    if _postgres(session):
        if not name.isidentifier():
            raise ValueError(f"not a record field: {name!r}")
        return literal_column(f"((hub_records.body)::jsonb ->> '{name}')", String)
    return type_coerce(HubRecord.body, JSON)[name].as_string()


def _kind_is(session: Session, kind: str) -> ColumnElement[bool]:
    """``kind = 'loan'`` with the kind in the SQL on PostgreSQL (the partial index's
    predicate, as above); the kinds are the code's own words."""
    if _postgres(session):
        if not kind.isidentifier():
            raise ValueError(f"not a record kind: {kind!r}")
        return HubRecord.kind == literal_column(f"'{kind}'", String)
    return HubRecord.kind == kind


def _word(session: Session, word: str) -> ColumnElement[str]:
    """One of the code's own words (``'out'``) written into the SQL on PostgreSQL, so a
    query's predicate matches a partial index's even in a prepared statement's generic
    plan (a bound parameter would not)."""
    if _postgres(session):
        if not word.isidentifier():
            raise ValueError(f"not a word of the code: {word!r}")
        return literal_column(f"'{word}'", String)
    return literal(word, String)


def _in_view(session: Session, column: InstrumentedAttribute[str], cabinets: list[str],
             everyone: bool) -> ColumnElement[bool]:
    """``column`` names one of ``cabinets``. Written for the plan, not only the answer: one
    cabinet is an equality (its own index); every cabinet of the fleet is a semi-join with
    ``hub_cabinets`` (a thousand bound values cost more to send and plan than the page);
    a site's few are one array on PostgreSQL."""
    if len(cabinets) == 1:
        return column == cabinets[0]
    if everyone:
        return column.in_(select(HubCabinet.cabinet_id))
    if _postgres(session):
        return column == any_(bindparam("cabinets_in_view", cabinets,
                                        type_=postgresql.ARRAY(String)))
    return column.in_(cabinets)


def _total(kind: str, in_view: ColumnElement[bool],
           facets: Sequence[str] | None) -> ScalarSelect[Any]:
    """The records of ``kind`` (of ``facets``, or any) of the cabinets in view, from the
    counts ingest keeps beside them (``hub_record_counts``): exact, and one row per cabinet
    and facet read instead of every record counted (the whole fleet's loans are millions)."""
    query = select(func.coalesce(func.sum(HubRecordCount.n), 0)).where(
        HubRecordCount.kind == kind, in_view)
    if facets is not None:
        query = query.where(HubRecordCount.facet.in_(list(facets)))
    return query.scalar_subquery()


def _borrowed_total(session: Session, borrowers: list[uuid.UUID], cabinets: list[str],
                    everyone: bool, facets: Sequence[str] | None) -> ScalarSelect[Any]:
    """A department leader's total: the loans of ``borrowers`` (of ``facets``, or any) at
    the cabinets in view, from the counts ingest keeps per borrower, cabinet and facet
    (``hub_borrower_counts``): a sum of a few rows per person, not a count of the loans."""
    query = select(func.coalesce(func.sum(HubBorrowerCount.n), 0)).where(
        _one_of(session, HubBorrowerCount.borrower_id, borrowers),
        _in_view(session, HubBorrowerCount.cabinet_id, cabinets, everyone))
    if facets is not None:
        query = query.where(HubBorrowerCount.facet.in_(list(facets)))
    return query.scalar_subquery()


def _one_of(session: Session, column: InstrumentedAttribute[Any],
            ids: list[uuid.UUID]) -> ColumnElement[bool]:
    """``column`` is one of ``ids``: one array on PostgreSQL (a statement of one shape,
    whatever the department's size), a list elsewhere."""
    if _postgres(session):
        return column == any_(bindparam("borrowers_in_view", ids,
                                        type_=postgresql.ARRAY(postgresql.UUID(as_uuid=True))))
    return column.in_(ids)


def _instant(session: Session, at: dt.datetime) -> ColumnElement[Any]:
    """A time of the code's own (the clock's now) written into the SQL on PostgreSQL, so the
    planner weighs the overdue page's two indexes by how many keys out are due before it (a
    prepared statement's generic plan would guess a third of them)."""
    if _postgres(session):
        return literal_column(f"'{at.astimezone(dt.UTC).isoformat()}'::timestamptz",
                              HubRecord.due_at.type)
    return literal(at, HubRecord.due_at.type)


def _overdue_total(session: Session, cabinets: list[str], everyone: bool,
                   now: dt.datetime) -> ScalarSelect[Any]:
    """K9: the keys out due before ``now`` of the cabinets in view, exact, without counting
    every key out: every loan due in an hour that has ended is overdue, and ingest keeps
    those per cabinet and due hour (``hub_due_counts``); only the loans due so far in the
    current hour are counted, from ``ix_hub_records_loans_due`` (a loan due exactly now is
    not overdue yet)."""
    hour = due_hour(now)
    ended = (select(func.coalesce(func.sum(HubDueCount.n), 0))
             .where(_in_view(session, HubDueCount.cabinet_id, cabinets, everyone),
                    HubDueCount.due_hour < hour).scalar_subquery())
    this_hour = (select(func.count()).select_from(HubRecord).where(
        _in_view(session, HubRecord.cabinet_id, cabinets, everyone),
        _kind_is(session, "loan"), HubRecord.facet == _word(session, "out"),
        HubRecord.due_at >= _instant(session, hour_start(hour)),
        HubRecord.due_at < _instant(session, now)).scalar_subquery())
    return select(ended + this_hour).scalar_subquery()


def _most_overdue_first(conditions: list[ColumnElement[bool]], limit: int,
                        offset: int) -> Subquery:
    """The overdue page (K9), most overdue first (the cabinet's overdue report's order:
    the key to chase first at the top): ``ix_hub_records_loans_due`` holds the keys out by
    due time with the draw, the id and the cabinet inside it, so the page is the index read
    in order from its start, ``limit`` entries of the cabinets in view, and no sort. Newest
    draw first, as the other lists, read every due key out to sort them (10,000 of them in
    the bench's 50 M history: the one list over its 50 ms aim). Loans due at the same
    instant come in id order."""
    return (select(HubRecord.record_id, HubRecord.cabinet_id, HubRecord.due_at.label("t"))
            .where(*conditions).order_by(HubRecord.due_at.asc(), HubRecord.record_id.asc())
            .limit(limit).offset(offset).subquery())


def _merged_page(cabinets: list[str], narrowed: list[ColumnElement[bool]],
                 ordered: ColumnElement[Any] | InstrumentedAttribute[Any], limit: int,
                 offset: int) -> Subquery:
    """A site's page on PostgreSQL: each of its cabinets' newest ``offset + limit`` read from
    the cabinet's own index (a ``LATERAL`` per cabinet of the array), merged and cut. A
    plain query over the site's cabinets as an array is planned well with the array's
    values in view, but a prepared statement's generic plan (the driver prepares a query it
    sees often) does not know the site's size and sorted every loan of the site; this
    statement has one shape and one plan, whatever the site."""
    site = func.unnest(bindparam("site_cabinets", cabinets, type_=postgresql.ARRAY(String))
                       ).table_valued("cabinet_id").render_derived(name="site_cabinets")
    newest = (select(HubRecord.record_id, HubRecord.cabinet_id, ordered.label("t"))
              .where(HubRecord.cabinet_id == site.c.cabinet_id, *narrowed)
              .order_by(ordered.desc(), HubRecord.record_id.desc())
              .limit(offset + limit).lateral("newest"))
    return (select(newest.c.record_id, newest.c.cabinet_id, newest.c.t)
            .select_from(site).join(newest, true())
            .order_by(newest.c.t.desc(), newest.c.record_id.desc())
            .limit(limit).offset(offset).subquery())


def _records(session: Session, scope: Scope, kind: str, *, site: str | None,
             cabinet_id: str | None, where: list[ColumnElement[bool]], order: str,
             limit: int, offset: int, facets: Sequence[str] | None = None,
             due_before: dt.datetime | None = None,
             borrowers: list[uuid.UUID] | None = None,
             ) -> tuple[list[tuple[HubRecord, str]], int]:
    """A page of ``kind`` records of the cabinets in view, newest first, with the total.

    ``order`` names the body's time field; the kind's own time (``record_columns``) is
    read from its typed column, which the indexes of migration 0024 keep in that order:
    the page's keys come from the index alone (cabinet and facet are in it; the index is
    read backwards, so records of the same time come newest id first), then only the
    page's bodies are read. ``facets`` narrows by the typed facet; ``where`` by anything
    else (a field of the body: those pages are counted row by row, as they must be).
    ``due_before`` keeps the loans due before it (K9's overdue ones, with the facet
    ``out``), totalled from the kept counts per due hour (``_overdue_total``).
    ``borrowers`` keeps the loans of those people (a department leader's), totalled from
    the kept counts per borrower (``_borrowed_total``); their overdue ones are counted,
    among their keys out only."""
    everyone = scope.whole_fleet and site is None and cabinet_id is None
    cabinets: list[str] = []
    if not everyone:
        cabinets = sorted(str(c) for c, _ in session.execute(
            cabinets_seen(scope, site=site, cabinet_id=cabinet_id)))
        if not cabinets:
            return [], 0
    narrowed = [_kind_is(session, kind), *where]
    if facets is not None:
        # A loan's facet is the code's own word, written into the SQL so the query matches
        # the partial index of the keys out (ix_hub_records_loans_out) or of the returned
        # loans (ix_hub_records_loans_returned, 0027: their page no longer passes the keys
        # out, the newest draws, on the way) even in a prepared statement's generic plan.
        narrowed.append(HubRecord.facet == _word(session, facets[0])
                        if list(facets) in (["out"], ["returned"])
                        else HubRecord.facet.in_(list(facets)))
    if due_before is not None:
        narrowed.append(HubRecord.due_at < _instant(session, due_before))
    if borrowers is not None:
        if not borrowers:  # a department without people: nobody's loans
            return [], 0
        narrowed.append(_one_of(session, HubRecord.borrower_id, borrowers))
    conditions = [_in_view(session, HubRecord.cabinet_id, cabinets, everyone), *narrowed]
    ordered = (HubRecord.occurred_at if TIME_FIELD.get(kind) == order
               else _field(session, order))
    total: ColumnElement[Any]
    if where or (borrowers is not None and due_before is not None):
        total = select(func.count()).select_from(
            select(HubRecord.record_id).where(*conditions).subquery()).scalar_subquery()
    elif borrowers is not None:
        total = _borrowed_total(session, borrowers, cabinets, everyone, facets)
    elif due_before is not None:
        total = _overdue_total(session, cabinets, everyone, due_before)
    else:
        total = _total(kind, _in_view(session, HubRecordCount.cabinet_id, cabinets, everyone),
                       facets)
    if due_before is not None:
        page = _most_overdue_first(conditions, limit, offset)
    elif len(cabinets) > 1 and _postgres(session):
        page = _merged_page(cabinets, narrowed, ordered, limit, offset)
    else:
        page = (select(HubRecord.record_id, HubRecord.cabinet_id, ordered.label("t"))
                .where(*conditions).order_by(ordered.desc(), HubRecord.record_id.desc())
                .limit(limit).offset(offset).subquery())
    # The page and its total in one round trip (the total rides on each row).
    in_order = ((page.c.t.asc(), page.c.record_id.asc()) if due_before is not None
                else (page.c.t.desc(), page.c.record_id.desc()))
    rows = session.execute(
        select(HubRecord, HubSite.code, total.label("total")).select_from(HubRecord)
        .join(page, and_(_kind_is(session, kind), HubRecord.record_id == page.c.record_id))
        .join(HubCabinet, HubCabinet.cabinet_id == page.c.cabinet_id)
        .join(HubSite, HubSite.id == HubCabinet.site_id)
        .order_by(*in_order)).all()
    count = rows[0][2] if rows else session.scalar(select(total))  # a page past the end
    return [(r, str(code)) for r, code, _ in rows], int(count or 0)


def _one(session: Session, scope: Scope, kind: str, record_id: uuid.UUID) -> tuple[HubRecord,
                                                                                  str]:
    seen = cabinets_seen(scope).subquery()
    row = session.execute(select(HubRecord, seen.c.code)
                          .join(seen, HubRecord.cabinet_id == seen.c.cabinet_id)
                          .where(_kind_is(session, kind), HubRecord.record_id == record_id)
                          ).first()
    if row is None:
        raise NotFound(f"no {kind} {record_id}")
    return row[0], str(row[1])


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _names(session: Session, bodies: list[dict[str, Any]]) -> tuple[dict[uuid.UUID, str],
                                                                     dict[uuid.UUID, str]]:
    """Key numbers and people's names by id, from the hub's configuration."""
    key_ids = {k for b in bodies if (k := _uuid(b.get("key_id")))}
    person_ids = {p for b in bodies for f in ("borrower_id", "owner_id")
                  if (p := _uuid(b.get(f)))}
    if not key_ids and not person_ids:
        return {}, {}
    # One round trip for both: ("k", key id, number) and ("p", person id, name) rows.
    found = session.execute(union_all(
        select(literal("k").label("what"), Key.id, Key.key_number.label("name"))
        .where(Key.id.in_(key_ids)),
        select(literal("p"), Person.id, Person.name).where(Person.id.in_(person_ids)))).all()
    return ({i: n for w, i, n in found if w == "k"}, {i: n for w, i, n in found if w == "p"})


def _is_overdue(r: HubRecord, now: dt.datetime) -> bool:
    """K9: still out and due before now, read from the typed columns the ``overdue`` filter
    reads (the facet, ``due_at`` as an instant), so a row's flag and the filter agree: the
    body's text compared as text put ``12:00+08:00`` (04:00 UTC) after ``06:00+00:00``."""
    return r.facet == "out" and r.due_at is not None and r.due_at < now


def _loan_out(r: HubRecord, site: str, body: dict[str, Any], keys: dict[uuid.UUID, str],
              people: dict[uuid.UUID, str], now: dt.datetime) -> dict[str, Any]:
    key_id, borrower_id = _uuid(body.get("key_id")), _uuid(body.get("borrower_id"))
    return {"id": str(r.record_id), "site": site, "cabinet_id": r.cabinet_id,
            "key_id": str(key_id) if key_id else None,
            "key_number": keys.get(key_id) if key_id else None,
            "borrower_id": str(borrower_id) if borrower_id else None,
            "borrower": people.get(borrower_id) if borrower_id else None,
            "quantity": body.get("quantity"), "reason_code": body.get("reason_code"),
            "reason_text": body.get("reason_text"), "drawn_at": body.get("drawn_at"),
            "due_at": body.get("due_at"), "returned_at": body.get("returned_at"),
            "overdue": _is_overdue(r, now)}


def _department_people(session: Session, department_id: uuid.UUID) -> list[uuid.UUID]:
    """The department's people as they are now: a person who moved takes their loans to
    the new department's leader, as on a cabinet."""
    return list(session.scalars(select(Person.id).where(
        Person.department_id == department_id).order_by(Person.id)))


def loans(session: Session, scope: Scope, *, now: dt.datetime, site: str | None = None,
          cabinet_id: str | None = None, state: LoanState = LoanState.OUT,
          department_id: uuid.UUID | None = None, limit: int = 50, offset: int = 0) -> Page:
    """The fleet's loans as the cabinets shipped them, newest draw first; ``out`` (the
    keys out now) by default, ``overdue`` those of them past due (K9), most overdue first.
    ``department_id`` is a department leader's own department: only its people's loans, as
    on a cabinet."""
    borrowers = (_department_people(session, department_id) if department_id is not None
                 else None)
    facets = {LoanState.OUT: ["out"], LoanState.OVERDUE: ["out"],
              LoanState.RETURNED: ["returned"], LoanState.ALL: None}[state]
    rows, total = _records(session, scope, "loan", site=site, cabinet_id=cabinet_id,
                           where=[], order="drawn_at", limit=limit, offset=offset,
                           facets=facets,  # K9: due before now and still out
                           due_before=now if state is LoanState.OVERDUE else None,
                           borrowers=borrowers)
    bodies = [json.loads(r.body) for r, _ in rows]
    keys, people = _names(session, bodies)
    return Page([_loan_out(r, site_code, body, keys, people, now)
                 for (r, site_code), body in zip(rows, bodies, strict=True)], total)


def loan(session: Session, scope: Scope, record_id: uuid.UUID, *, now: dt.datetime,
         department_id: uuid.UUID | None = None) -> dict[str, Any]:
    r, site = _one(session, scope, "loan", record_id)
    body = json.loads(r.body)
    if department_id is not None and r.borrower_id not in _department_people(
            session, department_id):
        raise NotFound(f"no loan {record_id}")
    keys, people = _names(session, [body])
    return _loan_out(r, site, body, keys, people, now)


def _alarm_out(r: HubRecord, site: str, body: dict[str, Any], keys: dict[uuid.UUID, str],
               people: dict[uuid.UUID, str]) -> dict[str, Any]:
    key_id, owner_id = _uuid(body.get("key_id")), _uuid(body.get("owner_id"))
    raw_notes = body.get("notes")
    notes: list[Any] = raw_notes if isinstance(raw_notes, list) else []
    return {"id": str(r.record_id), "site": site, "cabinet_id": r.cabinet_id,
            "kind": body.get("kind"), "rule": body.get("rule"), "state": body.get("state"),
            "message": body.get("message"), "key_number": keys.get(key_id) if key_id else None,
            "owner": people.get(owner_id) if owner_id else None,
            "raised_at": body.get("raised_at"), "closed_at": body.get("closed_at"),
            "notes": [{"at": n.get("at"), "text": n.get("text"),
                       "new_state": n.get("new_state")} for n in notes if isinstance(n, dict)]}


def alarms(session: Session, scope: Scope, *, site: str | None = None,
           cabinet_id: str | None = None, state: str | None = None, limit: int = 50,
           offset: int = 0) -> Page:
    """The alarms the cabinets raised (F1: forced door, key overdue ...), newest first,
    with their notes; ``state`` (open, acknowledged, closed) narrows."""
    rows, total = _records(session, scope, "alarm", site=site, cabinet_id=cabinet_id,
                           where=[], order="raised_at", limit=limit, offset=offset,
                           facets=[state] if state else None)
    bodies = [json.loads(r.body) for r, _ in rows]
    keys, people = _names(session, bodies)
    return Page([_alarm_out(r, code, body, keys, people)
                 for (r, code), body in zip(rows, bodies, strict=True)], total)


def alarm(session: Session, scope: Scope, record_id: uuid.UUID) -> dict[str, Any]:
    r, site = _one(session, scope, "alarm", record_id)
    body = json.loads(r.body)
    keys, people = _names(session, [body])
    return _alarm_out(r, site, body, keys, people)


def _report_out(r: HubRecord, site: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(r.record_id), "site": site, "cabinet_id": r.cabinet_id,
            "kind": body.get("kind"), "subject": body.get("subject"),
            "period_start": body.get("period_start"), "period_end": body.get("period_end"),
            "language": body.get("language"), "generated_at": body.get("generated_at"),
            "sha256": body.get("sha256"), "acknowledged_by": body.get("acknowledged_by"),
            "acknowledged_at": body.get("acknowledged_at")}


def reports(session: Session, scope: Scope, *, site: str | None = None,
            cabinet_id: str | None = None, kind: str | None = None, limit: int = 50,
            offset: int = 0) -> Page:
    """The reports the cabinets issued (K9), newest first: the frozen data's SHA-256 and
    who acknowledged them (the rendered files: ``report``, ``kiosk.fleet.report_files``)."""
    rows, total = _records(session, scope, "report", site=site, cabinet_id=cabinet_id,
                           where=[], order="generated_at", limit=limit, offset=offset,
                           facets=[kind] if kind else None)
    held: dict[uuid.UUID, list[str]] = {}
    for report_id, name in session.execute(
            select(HubReportFile.report_id, HubReportFile.name)
            .where(HubReportFile.report_id.in_([r.record_id for r, _ in rows]))
            .order_by(HubReportFile.name)):
        held.setdefault(report_id, []).append(name)
    return Page([{**_report_out(r, code, json.loads(r.body)), "files": held.get(r.record_id, [])}
                 for r, code in rows], total)


def report(session: Session, scope: Scope, record_id: uuid.UUID) -> dict[str, Any]:
    r, site = _one(session, scope, "report", record_id)
    body = json.loads(r.body)
    out = _report_out(r, site, body)
    out["content"] = body.get("content")
    # The renderings the hub holds (shipped after the record): name → SHA-256, each served
    # as the very bytes by GET /hub/v1/reports/{id}/file.
    out["files"] = {name: sha for name, sha in session.execute(
        select(HubReportFile.name, HubReportFile.sha256)
        .where(HubReportFile.report_id == record_id).order_by(HubReportFile.name))}
    return out
