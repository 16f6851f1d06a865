"""The overdue keys' total at the hub (K9) from the keys out kept per due hour (issue 12,
migration 0026), on each backend: it must equal a count of the loans, row by row, at any
moment, whatever was shipped (returned loans, due times moved, times not in UTC, a loan due
exactly on an hour's boundary or exactly now), for the whole fleet, a site and a cabinet."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog
from kiosk.audit.chain import GENESIS_HASH
from kiosk.audit.device_key import DeviceKey
from kiosk.fleet import hub, site_lists
from kiosk.fleet.ingest import Batch, ingest
from kiosk.fleet.record_columns import due_hour
from kiosk.fleet.scope import Scope
from kiosk.runtime import Runtime
from kiosk.store import migrate
from kiosk.store.db import make_engine, write_session
from kiosk.store.models_fleet import HubDueCount, HubRecord
from kiosk.store.types import UTCDateTime
from tests.fleet.test_hub_record_times import cabinet_at_an_old_revision
from tests.fleet.test_ingest import CAB, enrolled, hub_log  # noqa: F401  (fixtures)

FLEET = Scope(site_id=None, site_code=None)
OTHER = "cab-other"
OVERDUE = site_lists.LoanState.OVERDUE


def _at(hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 5, hour, minute, second, tzinfo=dt.UTC)


def _loan(drawn: str, due: str | None, returned: str | None = None) -> dict[str, Any]:
    return {"drawn_at": drawn, "due_at": due, "returned_at": returned, "quantity": 1}


def _ship(log: AuditLog, cabinet_id: str, records: list[tuple[str, dict[str, Any]]]) -> None:
    batch = Batch(head_seq=0, head_hash=GENESIS_HASH,
                  records=[{"kind": "loan", "id": i, "body": b} for i, b in records])
    ingest(log, cabinet_id=cabinet_id, batch=batch)


def _enrol_other(runtime: Runtime, log: AuditLog) -> None:
    """A second cabinet at a second site (tower-b)."""
    with write_session(runtime.engine) as s:
        hub.create_site(s, log, code="tower-b", name="Tower B", actors=["test"])
        code, _ = hub.create_enrolment_code(s, log, site_code="tower-b", actors=["test"])
    with write_session(runtime.engine) as s:
        hub.enrol(s, log, code=code, cabinet_id=OTHER,
                  public_key_hex=DeviceKey.generate().public_hex)


def _counted_row_by_row(session: Session, now: dt.datetime,
                        cabinet_id: str | None = None) -> list[str]:
    """The overdue loans the slow way: every loan body read, its due time parsed (K9: not
    returned, due strictly before now)."""
    found = []
    for r in session.scalars(select(HubRecord).where(HubRecord.kind == "loan")):
        body = json.loads(r.body)
        if cabinet_id is not None and r.cabinet_id != cabinet_id:
            continue
        if body.get("returned_at") is not None or body.get("due_at") is None:
            continue
        due = dt.datetime.fromisoformat(body["due_at"].replace("Z", "+00:00"))
        due = due if due.tzinfo else due.replace(tzinfo=dt.UTC)
        if due < now:
            found.append(str(r.record_id))
    return found


def _kept_counts_match_the_keys_out(session: Session) -> None:
    """The kept counts are the keys out per cabinet and due hour, no row at zero."""
    kept = {(c.cabinet_id, c.due_hour): c.n for c in session.scalars(select(HubDueCount))}
    recount = Counter((r.cabinet_id, due_hour(r.due_at)) for r in session.scalars(
        select(HubRecord).where(HubRecord.kind == "loan", HubRecord.facet == "out",
                                HubRecord.due_at.is_not(None))) if r.due_at is not None)
    assert kept == dict(recount)


def test_the_overdue_total_equals_a_row_by_row_count_at_every_moment_K9(
        enrolled: Runtime, hub_log: AuditLog) -> None:  # noqa: F811
    _enrol_other(enrolled, hub_log)
    ids = {name: str(uuid.uuid4()) for name in (
        "utc", "plus8", "minus5", "naive", "boundary", "late_boundary", "returned", "moved",
        "moved_back", "no_due", "other_a", "other_b", "shipped_twice")}
    _ship(hub_log, CAB, [
        (ids["utc"], _loan("2026-12-05T08:00:00+00:00", "2026-12-05T10:15:00+00:00")),
        # 12:30 at +08:00 is 04:30 UTC; 05:45 at -05:00 is 10:45 UTC
        (ids["plus8"], _loan("2026-12-05T09:00:00+08:00", "2026-12-05T12:30:00+08:00")),
        (ids["minus5"], _loan("2026-12-05T03:00:00-05:00", "2026-12-05T05:45:00-05:00")),
        (ids["naive"], _loan("2026-12-05T07:00:00", "2026-12-05T09:59:59.999999")),  # UTC
        (ids["boundary"], _loan("2026-12-05T07:30:00Z", "2026-12-05T11:00:00Z")),
        (ids["late_boundary"], _loan("2026-12-05T07:40:00Z", "2026-12-05T19:00:00+08:00")),
        (ids["returned"], _loan("2026-12-05T06:00:00Z", "2026-12-05T09:00:00Z")),
        (ids["moved"], _loan("2026-12-05T06:10:00Z", "2026-12-05T09:30:00Z")),
        (ids["moved_back"], _loan("2026-12-05T06:20:00Z", "2026-12-05T13:30:00Z")),
        (ids["no_due"], _loan("2026-12-05T06:30:00Z", None)),
        (ids["shipped_twice"], _loan("2026-12-05T06:40:00Z", "2026-12-05T10:20:00Z")),
    ])
    _ship(hub_log, OTHER, [
        (ids["other_a"], _loan("2026-12-05T08:00:00Z", "2026-12-05T10:30:00+00:00")),
        (ids["other_b"], _loan("2026-12-05T08:05:00Z", "2026-12-05T12:00:00+01:00")),
    ])
    # Later batches: a key comes back, a due time is extended past the next hour, another
    # is brought forward into an hour that has ended, a loan is sent again unchanged (at
    # least once), and the returned one is sent again as returned.
    _ship(hub_log, CAB, [
        (ids["returned"], _loan("2026-12-05T06:00:00Z", "2026-12-05T09:00:00Z",
                                "2026-12-05T08:30:00Z")),
        (ids["moved"], _loan("2026-12-05T06:10:00Z", "2026-12-05T14:10:00Z")),
        (ids["moved_back"], _loan("2026-12-05T06:20:00Z", "2026-12-05T09:10:00-01:00")),
        (ids["shipped_twice"], _loan("2026-12-05T06:40:00Z", "2026-12-05T10:20:00Z")),
    ])
    _ship(hub_log, CAB, [
        (ids["returned"], _loan("2026-12-05T06:00:00Z", "2026-12-05T09:00:00Z",
                                "2026-12-05T08:30:00Z")),
    ])
    moments = [_at(4), _at(4, 30), _at(4, 30, 1), _at(9, 59, 59), _at(10), _at(10, 0, 0)
               + dt.timedelta(microseconds=1), _at(10, 10), _at(10, 15), _at(10, 16),
               _at(10, 20), _at(10, 45), _at(10, 59), _at(11), _at(11, 0, 1), _at(12),
               _at(14, 10), _at(15), _at(23)]
    with Session(enrolled.engine) as s:
        _kept_counts_match_the_keys_out(s)
        for now in moments:
            wheres: tuple[tuple[dict[str, Any], str | None], ...] = (
                ({}, None), ({"site": "tower-a"}, CAB), ({"cabinet_id": OTHER}, OTHER))
            for where, cabinet in wheres:
                expected = _counted_row_by_row(s, now, cabinet)
                page = site_lists.loans(s, FLEET, now=now, state=OVERDUE, **where)
                assert page.total == len(expected), (now, where)
                assert sorted(i["id"] for i in page.items) == sorted(expected), (now, where)
                assert all(i["overdue"] for i in page.items)
        # Spot checks of the rules behind the numbers: at 11:00 exactly, the loan due at
        # 11:00 is not overdue yet, and one microsecond later it is; so are the ones due
        # 19:00 at +08:00 and 12:00 at +01:00 (11:00 UTC both).
        at_eleven = {i["id"] for i in site_lists.loans(s, FLEET, now=_at(11),
                                                       state=OVERDUE).items}
        just_after = {i["id"] for i in site_lists.loans(
            s, FLEET, now=_at(11) + dt.timedelta(microseconds=1), state=OVERDUE).items}
        assert just_after - at_eleven == {ids["boundary"], ids["late_boundary"],
                                             ids["other_b"]}
        assert ids["returned"] not in just_after and ids["no_due"] not in just_after
        # the moved loan's new due time (14:10) counts, its old one (09:30) no longer does
        assert ids["moved"] not in just_after and ids["moved_back"] in just_after


def test_a_key_returned_takes_its_due_hour_away_and_no_empty_hour_is_kept_K9(
        enrolled: Runtime, hub_log: AuditLog) -> None:  # noqa: F811
    """The kept hours are the keys out only: a day of loans all returned leaves none, so
    summing the hours stays as cheap as the keys out are few."""
    loans = [(str(uuid.uuid4()), hour) for hour in range(6, 18)]
    _ship(hub_log, CAB, [(i, _loan(_at(h - 1).isoformat(), _at(h).isoformat()))
                         for i, h in loans])
    with Session(enrolled.engine) as s:
        assert len(s.scalars(select(HubDueCount)).all()) == 12
        assert site_lists.loans(s, FLEET, now=_at(12, 30), state=OVERDUE).total == 7
    _ship(hub_log, CAB, [(i, _loan(_at(h - 1).isoformat(), _at(h).isoformat(),
                                   _at(h - 1, 30).isoformat())) for i, h in loans])
    with Session(enrolled.engine) as s:
        assert s.scalars(select(HubDueCount)).all() == []
        assert site_lists.loans(s, FLEET, now=_at(12, 30), state=OVERDUE).total == 0


def test_0026_counts_the_keys_out_held_before_it(db_url: str) -> None:
    """Loans held at 0025 are counted by due hour by the migration, by ingest's rule."""
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0025")
    cabinet_at_an_old_revision(engine)
    records = sa.table("hub_records", sa.column("kind", sa.String()),
                       sa.column("record_id", sa.Uuid()), sa.column("cabinet_id", sa.String()),
                       sa.column("body", sa.Text()), sa.column("received_at", UTCDateTime()),
                       sa.column("due_at", UTCDateTime()), sa.column("facet", sa.String()))
    rows = [(_at(9, 30), "out"), (_at(9, 59), "out"), (_at(10), "out"), (_at(8), "returned"),
            (None, "out")]
    with engine.begin() as conn:
        conn.execute(records.insert(), [
            {"kind": "loan", "record_id": uuid.uuid4(), "cabinet_id": "cab-a", "body": "{}",
             "received_at": _at(13), "due_at": due, "facet": facet} for due, facet in rows])
    migrate.upgrade(engine)
    with Session(engine) as s:
        assert {c.due_hour: c.n for c in s.scalars(select(HubDueCount))} == {
            due_hour(_at(9)): 2, due_hour(_at(10)): 1}
        assert site_lists.loans(s, FLEET, now=_at(10, 0, 1), state=OVERDUE).total == 3
        assert site_lists.loans(s, FLEET, now=_at(10), state=OVERDUE).total == 2
    migrate.downgrade(engine, "0025")
    engine.dispose()
