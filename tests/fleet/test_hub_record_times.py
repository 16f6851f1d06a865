"""The typed time, due time and facet of the cabinets' records at the hub (issue 12,
migration 0024): written at ingest, filled by the migration for records held before it, and
what the lists by site order, narrow and count by (K9: the overdue keys; F1: the alarms).
On each backend."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog
from kiosk.fleet import site_lists
from kiosk.fleet.ingest import Batch, ingest
from kiosk.fleet.scope import Scope
from kiosk.runtime import Runtime
from kiosk.store import migrate
from kiosk.store.db import make_engine
from kiosk.store.models_fleet import HubCabinet, HubRecord, HubRecordCount, HubSite
from kiosk.store.types import UTCDateTime
from tests.fleet.test_ingest import CAB, enrolled, hub_log  # noqa: F401  (fixtures)

FLEET = Scope(site_id=None, site_code=None)
UTC = dt.UTC


def _at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 5, hour, minute, tzinfo=UTC)


def _loan(drawn: str, due: str, returned: str | None = None) -> dict[str, Any]:
    return {"drawn_at": drawn, "due_at": due, "returned_at": returned, "quantity": 1}


def _ids(page: site_lists.Page) -> list[str]:
    return [item["id"] for item in page.items]


def cabinet_at_an_old_revision(engine: Engine) -> None:
    """Site ``tower-a`` and its cabinet ``cab-a``, written through the models' columns that
    exist at every revision since the hub's tables came (a migration test's starting rows)."""
    site = uuid.uuid4()
    with Session(engine) as s:
        s.add(HubSite(id=site, code="tower-a", name="A"))
        s.flush()
        s.add(HubCabinet(cabinet_id="cab-a", site_id=site, public_key="00" * 32, key_id="k",
                         head_hash="0" * 64))
        s.commit()


def test_0024_fills_the_columns_of_records_held_before_it_and_the_lists_read_by_time(
        db_url: str) -> None:
    """Records held at 0023 get their typed columns and counts from their bodies. A draw
    written at +08:00 sorts by its instant (01:30 UTC, the oldest), not by its text (which
    put it between the 08:00 and 10:00 UTC ones); a time without an offset is UTC; a body
    whose time is no time keeps its record with a null time."""
    import json

    engine = make_engine(db_url)
    migrate.upgrade(engine, "0023")
    site_a, site_b = uuid.uuid4(), uuid.uuid4()
    with Session(engine) as s:
        s.add_all([HubSite(id=site_a, code="tower-a", name="A"),
                   HubSite(id=site_b, code="tower-b", name="B")])
        s.flush()
        for code, site in (("cab-a", site_a), ("cab-b", site_b), ("cab-c", site_b)):
            s.add(HubCabinet(cabinet_id=code, site_id=site, public_key="00" * 32,
                             key_id="k", head_hash="0" * 64))
        s.commit()
    old = sa.table("hub_records", sa.column("kind", sa.String()),
                   sa.column("record_id", sa.Uuid()), sa.column("cabinet_id", sa.String()),
                   sa.column("body", sa.Text()), sa.column("received_at", UTCDateTime()))
    ids = {name: uuid.uuid4() for name in ("l1", "l2", "l3", "l5", "l6", "a1", "a2", "r1",
                                           "r2", "i1")}
    rows = [
        ("loan", "l1", "cab-a", _loan("2026-12-05T10:00:00+00:00", "2026-12-05T12:00:00+00:00")),
        ("loan", "l2", "cab-a", _loan("2026-12-05T11:00:00+00:00", "2026-12-05T20:00:00+00:00")),
        ("loan", "l3", "cab-b", _loan("2026-12-05T09:30:00+08:00", "2026-12-05T12:00:00+08:00",
                                      "2026-12-05T10:00:00+08:00")),
        ("loan", "l5", "cab-b", _loan("2026-12-05T08:00:00", "2026-12-05T09:00:00")),
        ("loan", "l6", "cab-c", _loan("2026-12-05T09:00:00+00:00", "2026-12-05T21:00:00Z")),
        ("alarm", "a1", "cab-a", {"state": "open", "raised_at": "2026-12-05T12:00:00+00:00"}),
        ("alarm", "a2", "cab-b", {"state": "closed", "raised_at": "2026-12-05T11:00:00+00:00"}),
        ("report", "r1", "cab-a", {"kind": "daily", "generated_at": "2026-12-05T06:00:00Z"}),
        ("report", "r2", "cab-b", {"kind": "monthly", "generated_at": "2026-12-01T06:00:00Z"}),
        ("intake", "i1", "cab-a", {"received_at": "2026-02-30T10:00:00+00:00"}),
    ]
    with engine.begin() as conn:
        conn.execute(old.insert(), [
            {"kind": kind, "record_id": ids[name], "cabinet_id": cab, "body": json.dumps(body),
             "received_at": _at(13)} for kind, name, cab, body in rows])
    migrate.upgrade(engine)

    with Session(engine) as s:
        held = {r.record_id: r for r in s.scalars(select(HubRecord))}
        assert held[ids["l3"]].occurred_at == _at(1, 30)
        assert held[ids["l5"]].occurred_at == _at(8) and held[ids["l5"]].due_at == _at(9)
        assert (held[ids["l1"]].facet, held[ids["l3"]].facet) == ("out", "returned")
        assert (held[ids["a2"]].facet, held[ids["r2"]].facet) == ("closed", "monthly")
        assert held[ids["i1"]].occurred_at is None  # no 30 February: kept, timeless
        counts = {(c.cabinet_id, c.kind, c.facet): c.n for c in s.scalars(
            select(HubRecordCount))}
        assert counts == {("cab-a", "loan", "out"): 2, ("cab-b", "loan", "out"): 1,
                          ("cab-c", "loan", "out"): 1,
                          ("cab-b", "loan", "returned"): 1, ("cab-a", "alarm", "open"): 1,
                          ("cab-b", "alarm", "closed"): 1, ("cab-a", "report", "daily"): 1,
                          ("cab-b", "report", "monthly"): 1, ("cab-a", "intake", ""): 1}

        def loans(state: site_lists.LoanState, **where: Any) -> site_lists.Page:
            return site_lists.loans(s, FLEET, now=_at(13), state=state, **where)

        every = loans(site_lists.LoanState.ALL)
        assert _ids(every) == [str(ids[n]) for n in ("l2", "l1", "l6", "l5", "l3")]
        assert every.total == 5
        out = loans(site_lists.LoanState.OUT)
        assert (_ids(out), out.total) == ([str(ids[n]) for n in ("l2", "l1", "l6", "l5")], 4)
        # K9: due before 13:00, still out; most overdue first (l5 due 09:00, l1 12:00)
        overdue = loans(site_lists.LoanState.OVERDUE)
        assert (_ids(overdue), overdue.total) == ([str(ids["l5"]), str(ids["l1"])], 2)
        assert [i["overdue"] for i in overdue.items] == [True, True]
        back = loans(site_lists.LoanState.RETURNED, site="tower-b")
        assert (_ids(back), back.total) == ([str(ids["l3"])], 1)
        assert loans(site_lists.LoanState.ALL, cabinet_id="cab-b").total == 2
        page = site_lists.loans(s, FLEET, now=_at(13), state=site_lists.LoanState.ALL,
                                limit=2, offset=1)
        assert (_ids(page), page.total) == ([str(ids["l1"]), str(ids["l6"])], 5)
        # A site of two cabinets: their loans merged in time order, paged, counted.
        of_b = loans(site_lists.LoanState.ALL, site="tower-b")
        assert (_ids(of_b), of_b.total) == ([str(ids[n]) for n in ("l6", "l5", "l3")], 3)
        second = site_lists.loans(s, FLEET, now=_at(13), state=site_lists.LoanState.ALL,
                                  site="tower-b", limit=1, offset=1)
        assert (_ids(second), second.total) == ([str(ids["l5"])], 3)
        late = loans(site_lists.LoanState.OVERDUE, site="tower-b")
        assert (_ids(late), late.total) == ([str(ids["l5"])], 1)
        past_the_end = site_lists.loans(s, FLEET, now=_at(13), state=site_lists.LoanState.ALL,
                                        site="tower-b", offset=10)
        assert (past_the_end.items, past_the_end.total) == ([], 3)

        alarms = site_lists.alarms(s, FLEET)
        assert (_ids(alarms), alarms.total) == ([str(ids["a1"]), str(ids["a2"])], 2)
        shut = site_lists.alarms(s, FLEET, state="closed")  # F1: the closed ones
        assert (_ids(shut), shut.total) == ([str(ids["a2"])], 1)
        reports = site_lists.reports(s, FLEET)
        assert _ids(reports) == [str(ids["r1"]), str(ids["r2"])] and reports.total == 2
        assert site_lists.reports(s, FLEET, kind="monthly").total == 1
        scoped = Scope(site_id=site_a, site_code="tower-a")
        assert site_lists.reports(s, scoped, site="tower-b").total == 0
    migrate.downgrade(engine, "0023")  # and back: the bodies are all there was
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(old)).scalar_one() == 10
    engine.dispose()


def test_0024_keeps_a_stored_body_that_is_not_json_with_null_columns(db_url: str) -> None:
    """Before ingest refused them, the hub's parser took ``NaN`` and ``Infinity`` and stored
    them in a body's text, which ``jsonb`` cannot read: the upgrade must not stop on such a
    record (it was stopping the whole hub's migration), and keeps it with null columns,
    counted under no facet, while the records beside it get theirs. (A loan's body was
    read as jsonb by 0021's index already, so only the other kinds could hold one.)"""
    engine = make_engine(db_url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        pytest.skip("SQLite's index on the body's JSON never let such a body be stored")
    migrate.upgrade(engine, "0023")
    cabinet_at_an_old_revision(engine)
    old = sa.table("hub_records", sa.column("kind", sa.String()),
                   sa.column("record_id", sa.Uuid()), sa.column("cabinet_id", sa.String()),
                   sa.column("body", sa.Text()), sa.column("received_at", UTCDateTime()))
    bad, inf, good = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(old.insert(), [
            {"kind": "intake", "record_id": bad, "cabinet_id": "cab-a", "received_at": _at(13),
             "body": '{"received_at": "2026-12-05T10:00:00+00:00", "key_count": NaN}'},
            {"kind": "alarm", "record_id": inf, "cabinet_id": "cab-a", "received_at": _at(13),
             "body": '{"raised_at": "2026-12-05T10:00:00Z", "state": "open", "x": -Infinity}'},
            {"kind": "loan", "record_id": good, "cabinet_id": "cab-a", "received_at": _at(13),
             "body": '{"drawn_at": "2026-12-05T11:00:00+00:00", "due_at": null}'}])
    migrate.upgrade(engine)
    with Session(engine) as s:
        held = {r.record_id: r for r in s.scalars(select(HubRecord))}
        for kept in (bad, inf):
            assert (held[kept].occurred_at, held[kept].due_at, held[kept].facet) == (
                None, None, None)
        assert "NaN" in held[bad].body  # the body is what the cabinet sent, untouched
        assert (held[good].occurred_at, held[good].facet) == (_at(11), "out")
        counts = {(c.kind, c.facet): c.n for c in s.scalars(select(HubRecordCount))}
        assert counts == {("intake", ""): 1, ("alarm", ""): 1, ("loan", "out"): 1}
    engine.dispose()


def _ship(log: AuditLog, runtime: Runtime, records: list[dict[str, Any]]) -> None:
    with Session(runtime.engine) as s:
        head = s.scalars(select(HubCabinet.head_hash).where(HubCabinet.cabinet_id == CAB)).one()
    ingest(log, cabinet_id=CAB, batch=Batch(head_seq=0, head_hash=head, records=records))


def test_each_loans_overdue_flag_agrees_with_the_overdue_filter_across_offsets_K9(
        enrolled: Runtime, hub_log: AuditLog) -> None:  # noqa: F811
    """K9: a loan due 12:00+08:00 (04:00 UTC) is overdue at 06:00 UTC, one due
    05:00-05:00 (10:00 UTC) is not, whatever their text says; the flag on each row is the
    one the ``overdue`` filter applies, on the list and on one loan by id."""
    late, early = str(uuid.uuid4()), str(uuid.uuid4())
    now = _at(6)
    _ship(hub_log, enrolled, [
        {"kind": "loan", "id": late, "body": _loan("2026-12-05T09:00:00+08:00",
                                                   "2026-12-05T12:00:00+08:00")},
        {"kind": "loan", "id": early, "body": _loan("2026-12-05T00:30:00-05:00",
                                                    "2026-12-05T05:00:00-05:00")}])
    with Session(enrolled.engine) as s:
        overdue = site_lists.loans(s, FLEET, now=now, state=site_lists.LoanState.OVERDUE)
        assert [(i["id"], i["overdue"]) for i in overdue.items] == [(late, True)]
        out = site_lists.loans(s, FLEET, now=now)
        assert {i["id"]: i["overdue"] for i in out.items} == {late: True, early: False}
        assert site_lists.loan(s, FLEET, uuid.UUID(late), now=now)["overdue"] is True
        assert site_lists.loan(s, FLEET, uuid.UUID(early), now=now)["overdue"] is False


def test_ingest_keeps_the_columns_and_counts_as_a_key_goes_out_and_comes_back_K9(
        enrolled: Runtime, hub_log: AuditLog) -> None:  # noqa: F811
    """A loan out, then shipped again returned, moves from the out list (and its count) to
    the returned one; a loan due exactly now is not overdue yet; an alarm closed at the
    cabinet leaves the open ones."""
    x, y, alarm = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    now = _at(12)
    _ship(hub_log, enrolled, [
        {"kind": "loan", "id": x, "body": _loan(_at(10).isoformat(), _at(11).isoformat())},
        {"kind": "loan", "id": y, "body": _loan(_at(11).isoformat(), now.isoformat())},
        {"kind": "alarm", "id": alarm, "body": {"state": "open",
                                                "raised_at": _at(10, 5).isoformat()}}])
    with Session(enrolled.engine) as s:
        out = site_lists.loans(s, FLEET, now=now)
        assert (_ids(out), out.total) == ([y, x], 2)
        overdue = site_lists.loans(s, FLEET, now=now, state=site_lists.LoanState.OVERDUE)
        assert (_ids(overdue), overdue.total) == ([x], 1)
        assert site_lists.alarms(s, FLEET, state="open").total == 1

    _ship(hub_log, enrolled, [
        {"kind": "loan", "id": x, "body": _loan(_at(10).isoformat(), _at(11).isoformat(),
                                                _at(11, 30).isoformat())},
        {"kind": "alarm", "id": alarm, "body": {"state": "closed",
                                                "raised_at": _at(10, 5).isoformat()}}])
    _ship(hub_log, enrolled, [  # shipped again, as at least once does: counted once
        {"kind": "alarm", "id": alarm, "body": {"state": "closed",
                                                "raised_at": _at(10, 5).isoformat()}}])
    with Session(enrolled.engine) as s:
        state = site_lists.LoanState
        assert [(_ids(p), p.total) for p in (
            site_lists.loans(s, FLEET, now=now, state=state.OUT),
            site_lists.loans(s, FLEET, now=now, state=state.RETURNED),
            site_lists.loans(s, FLEET, now=now, state=state.ALL))] == [
            ([y], 1), ([x], 1), ([y, x], 2)]
        assert site_lists.loans(s, FLEET, now=now, state=state.OVERDUE).total == 0
        assert site_lists.alarms(s, FLEET, state="open").total == 0
        assert (_ids(site_lists.alarms(s, FLEET, state="closed")), site_lists.alarms(
            s, FLEET).total) == ([alarm], 1)
        assert {(c.kind, c.facet): c.n for c in s.scalars(select(HubRecordCount))} == {
            ("loan", "out"): 1, ("loan", "returned"): 1, ("alarm", "open"): 0,
            ("alarm", "closed"): 1}
