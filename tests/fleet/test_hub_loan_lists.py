"""The hub's loan lists (issue 12, migration 0027) on each backend: the returned loans (read
from their own index), the keys out and the overdue ones (K9), for the whole fleet, a site
and a cabinet, page by page across the border where out and returned loans interleave in
draw time; and a department leader's loans, whose totals are sums of the counts ingest keeps
per borrower: right after draws, returns, a batch sent twice, and a person who changes
department; a leader of another department sees none of them."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog
from kiosk.fleet import site_lists
from kiosk.fleet.scope import Scope
from kiosk.runtime import Runtime
from kiosk.store import migrate
from kiosk.store.db import make_engine, write_session
from kiosk.store.models import Department, Person
from kiosk.store.models_fleet import HubBorrowerCount, HubRecord
from kiosk.store.types import UTCDateTime
from tests.fleet.test_hub_overdue_counts import OTHER, _enrol_other, _ship
from tests.fleet.test_hub_record_times import cabinet_at_an_old_revision
from tests.fleet.test_ingest import CAB, enrolled, hub_log  # noqa: F401  (fixtures)

FLEET = Scope(site_id=None, site_code=None)
State = site_lists.LoanState
NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


def _at(hour: float) -> str:
    return (dt.datetime(2026, 12, 5, tzinfo=dt.UTC) + dt.timedelta(hours=hour)).isoformat()


@dataclass
class Loan:
    """One loan as the test shipped it last, and what the lists must make of it."""

    id: str
    cabinet: str
    drawn: float
    due: float
    returned: float | None = None
    borrower: uuid.UUID | None = None

    def body(self) -> dict[str, Any]:
        return {"drawn_at": _at(self.drawn), "due_at": _at(self.due),
                "returned_at": _at(self.returned) if self.returned is not None else None,
                "borrower_id": str(self.borrower) if self.borrower else None, "quantity": 1}

    def shows(self, state: State) -> bool:
        out = self.returned is None
        return {State.ALL: True, State.OUT: out, State.RETURNED: not out,
                State.OVERDUE: out and _at(self.due) < NOW.isoformat()}[state]


def _ship_loans(log: AuditLog, loans: list[Loan]) -> None:
    for cabinet in sorted({loan.cabinet for loan in loans}):
        _ship(log, cabinet, [(loan.id, loan.body()) for loan in loans if loan.cabinet == cabinet])


def _expected(loans: list[Loan], state: State, cabinet: str | None = None) -> list[str]:
    """Newest draw first, loans drawn at the same instant newest id first; the overdue ones
    most overdue first (the key to chase at the top, K9), loans due at the same instant in
    id order."""
    kept = [loan for loan in loans if loan.shows(state) and cabinet in (None, loan.cabinet)]
    if state is State.OVERDUE:
        return [loan.id for loan in sorted(kept, key=lambda loan: (loan.due,
                                                                   uuid.UUID(loan.id)))]
    return [loan.id for loan in sorted(kept, key=lambda loan: (loan.drawn, uuid.UUID(loan.id)),
                                       reverse=True)]


def _walk(session: Session, limit: int, **where: Any) -> tuple[list[str], set[int]]:
    """Every page of a list, as the console's pager reads it: the ids in order, the totals."""
    ids: list[str] = []
    totals: set[int] = set()
    offset = 0
    while True:
        page = site_lists.loans(session, FLEET, now=NOW, limit=limit, offset=offset, **where)
        totals.add(page.total)
        ids += [item["id"] for item in page.items]
        if len(page.items) < limit:
            return ids, totals
        offset += limit


def _loans_of_a_day() -> list[Loan]:
    """Out and returned interleaved in draw time at both cabinets (the returned loans'
    page passes keys out at every step), two drawn and due at the same instant, overdue ones
    and ones due after the clock's now (K9)."""
    loans = []
    for n in range(14):
        cabinet = CAB if n % 3 else OTHER
        drawn = 1 + n * 0.5 if n != 9 else 1 + 8 * 0.5  # n 8 and 9: the same instant
        late = n % 4 == 1 and n != 9  # n 1, 5, 13: due after now
        loans.append(Loan(str(uuid.uuid4()), cabinet, drawn, due=drawn + (30 if late else 2)))
    return loans


def test_each_list_of_loans_pages_through_exactly_its_rows_across_out_and_returned_K9(
        enrolled: Runtime, hub_log: AuditLog) -> None:  # noqa: F811
    _enrol_other(enrolled, hub_log)
    loans = _loans_of_a_day()
    _ship_loans(hub_log, loans)
    # Keys come back in a later batch, the newest draws among them, so the returned loans
    # and the keys out interleave at both ends of the day.
    for n in (0, 2, 3, 6, 9, 11, 13):
        loans[n].returned = loans[n].drawn + 1
    _ship_loans(hub_log, [loans[n] for n in (0, 2, 3, 6, 9, 11, 13)])
    wheres: list[tuple[dict[str, Any], str | None]] = [
        ({}, None), ({"site": "tower-a"}, CAB), ({"cabinet_id": OTHER}, OTHER)]
    with Session(enrolled.engine) as s:
        for state in State:
            for where, cabinet in wheres:
                expected = _expected(loans, state, cabinet)
                assert expected, (state, where)  # every list has rows to page through
                for limit in (1, 2, 3, 50):
                    ids, totals = _walk(s, limit, state=state, **where)
                    assert ids == expected, (state, where, limit)
                    assert totals == {len(expected)}, (state, where, limit)
        returned = site_lists.loans(s, FLEET, now=NOW, state=State.RETURNED).items
        assert all(r["returned_at"] is not None and not r["overdue"] for r in returned)
        out = site_lists.loans(s, FLEET, now=NOW).items
        assert all(r["returned_at"] is None for r in out)
        # a page past the end is empty and still says how many there are
        past = site_lists.loans(s, FLEET, now=NOW, state=State.RETURNED, offset=100)
        assert past.items == [] and past.total == 7


def _people(runtime: Runtime) -> dict[str, uuid.UUID]:
    """Engineering (two people), security (one) and a department with nobody in it."""
    with write_session(runtime.engine) as s:
        depts = {code: Department(code=code, name=code) for code in ("ENG", "SEC", "NONE")}
        s.add_all(depts.values())
        s.flush()
        people = {"e1": Person(staff_no="E1", name="E1", department_id=depts["ENG"].id),
                  "e2": Person(staff_no="E2", name="E2", department_id=depts["ENG"].id),
                  "s1": Person(staff_no="S1", name="S1", department_id=depts["SEC"].id)}
        s.add_all(people.values())
        s.flush()
        return {**{k: d.id for k, d in depts.items()}, **{k: p.id for k, p in people.items()}}


def _department(session: Session, department: uuid.UUID, state: State,
                **where: Any) -> tuple[int, list[str]]:
    page = site_lists.loans(session, FLEET, now=NOW, state=state, department_id=department,
                            **where)
    return page.total, sorted(item["id"] for item in page.items)


def _row_by_row(session: Session, department: uuid.UUID, state: State,
                cabinet: str | None = None) -> list[str]:
    """A department's loans the slow way: every loan body read, the borrower looked up."""
    members = {str(p) for p in session.scalars(select(Person.id).where(
        Person.department_id == department))}
    found = []
    for r in session.scalars(select(HubRecord).where(HubRecord.kind == "loan")):
        body = json.loads(r.body)
        if body.get("borrower_id") not in members or cabinet not in (None, r.cabinet_id):
            continue
        out = body.get("returned_at") is None
        due = body.get("due_at")
        if {State.ALL: True, State.OUT: out, State.RETURNED: not out,
                State.OVERDUE: out and due is not None
                and dt.datetime.fromisoformat(due) < NOW}[state]:
            found.append(str(r.record_id))
    return sorted(found)


def _kept_counts_match_the_loans(session: Session) -> None:
    kept = {(c.borrower_id, c.facet, c.cabinet_id): c.n
            for c in session.scalars(select(HubBorrowerCount)) if c.n}
    recount = Counter((r.borrower_id, r.facet, r.cabinet_id) for r in session.scalars(
        select(HubRecord).where(HubRecord.kind == "loan", HubRecord.borrower_id.is_not(None))))
    assert kept == dict(recount)


def _all_agree(session: Session, ids: dict[str, uuid.UUID]) -> None:
    """Every department's total and page, in every state, fleet-wide and per cabinet, equal
    a row-by-row count; and the kept counts equal the loans held."""
    _kept_counts_match_the_loans(session)
    for dept in ("ENG", "SEC", "NONE"):
        for state in State:
            for where, cabinet in (({}, None), ({"site": "tower-a"}, CAB),
                                   ({"cabinet_id": OTHER}, OTHER)):
                expected = _row_by_row(session, ids[dept], state, cabinet)
                assert _department(session, ids[dept], state, **where) == (
                    len(expected), expected), (dept, state, where)


def test_a_department_leaders_totals_are_sums_that_follow_draws_returns_and_resends(
        enrolled: Runtime, hub_log: AuditLog) -> None:  # noqa: F811
    _enrol_other(enrolled, hub_log)
    ids = _people(enrolled)
    loans = [Loan(str(uuid.uuid4()), CAB, 1, 3, borrower=ids["e1"]),
             Loan(str(uuid.uuid4()), CAB, 2, 30, borrower=ids["e1"]),
             Loan(str(uuid.uuid4()), OTHER, 3, 4, borrower=ids["e2"]),
             Loan(str(uuid.uuid4()), CAB, 4, 5, borrower=ids["s1"]),
             Loan(str(uuid.uuid4()), OTHER, 5, 6, borrower=None)]  # nobody's department
    _ship_loans(hub_log, loans)
    with Session(enrolled.engine) as s:
        _all_agree(s, ids)
        assert _department(s, ids["ENG"], State.OUT)[0] == 3
        assert _department(s, ids["ENG"], State.OVERDUE)[0] == 2  # K9: due 03:00 and 04:00
        assert _department(s, ids["SEC"], State.ALL) == (1, [loans[3].id])
        assert _department(s, ids["NONE"], State.ALL) == (0, [])

    loans[0].returned = 2.5  # a key comes back ...
    _ship_loans(hub_log, [loans[0]])
    _ship_loans(hub_log, [loans[0]])  # ... and its record is sent again (at least once)
    _ship_loans(hub_log, loans)  # the whole day again: nothing changes
    with Session(enrolled.engine) as s:
        _all_agree(s, ids)
        assert _department(s, ids["ENG"], State.OUT)[0] == 2
        assert _department(s, ids["ENG"], State.RETURNED) == (1, [loans[0].id])
        assert _department(s, ids["ENG"], State.ALL)[0] == 3
        assert _department(s, ids["ENG"], State.ALL, cabinet_id=OTHER) == (1, [loans[2].id])
        # security's leader sees none of engineering's loans, in any state, anywhere
        for state in State:
            assert not set(_department(s, ids["SEC"], state)[1]) & {
                loans[0].id, loans[1].id, loans[2].id}

    # A loan shipped with another borrower (a cabinet's correction) moves its count.
    loans[3].borrower = ids["e2"]
    _ship_loans(hub_log, [loans[3]])
    with write_session(enrolled.engine) as s:  # e1 moves to security: their loans go along
        person = s.get(Person, ids["e1"])
        assert person is not None
        person.department_id = ids["SEC"]
    with Session(enrolled.engine) as s:
        _all_agree(s, ids)
        assert _department(s, ids["SEC"], State.ALL) == (2, sorted([loans[0].id, loans[1].id]))
        assert _department(s, ids["ENG"], State.ALL) == (2, sorted([loans[2].id, loans[3].id]))
        # one loan by id: the leader of the borrower's department only
        assert site_lists.loan(s, FLEET, uuid.UUID(loans[0].id), now=NOW,
                               department_id=ids["SEC"])["id"] == loans[0].id


def test_0027_fills_the_borrower_and_its_counts_of_loans_held_before_it(db_url: str) -> None:
    """Loans held at 0026 get their borrower column and the counts per borrower from their
    bodies; a body without a borrower, with one that is no id, or that is no JSON object
    keeps its loan with no borrower."""
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0026")
    cabinet_at_an_old_revision(engine)
    records = sa.table("hub_records", sa.column("kind", sa.String()),
                       sa.column("record_id", sa.Uuid()), sa.column("cabinet_id", sa.String()),
                       sa.column("body", sa.Text()), sa.column("received_at", UTCDateTime()),
                       sa.column("facet", sa.String()))
    alice, bob = uuid.uuid4(), uuid.uuid4()
    bodies = [({"borrower_id": str(alice)}, "out"), ({"borrower_id": str(alice)}, "returned"),
              ({"borrower_id": str(alice)}, "returned"), ({"borrower_id": str(bob)}, "out"),
              ({"borrower_id": "not-an-id"}, "out"), ({}, "returned"), ([1, 2], None)]
    with engine.begin() as conn:
        conn.execute(records.insert(), [
            {"kind": "loan", "record_id": uuid.uuid4(), "cabinet_id": "cab-a",
             "body": json.dumps(body), "received_at": NOW, "facet": facet}
            for body, facet in bodies])
        conn.execute(records.insert(), [{  # an alarm names no borrower
            "kind": "alarm", "record_id": uuid.uuid4(), "cabinet_id": "cab-a",
            "body": json.dumps({"borrower_id": str(bob)}), "received_at": NOW,
            "facet": "open"}])
    migrate.upgrade(engine)
    with Session(engine) as s:
        assert {(c.borrower_id, c.facet, c.cabinet_id): c.n
                for c in s.scalars(select(HubBorrowerCount))} == {
            (alice, "out", "cab-a"): 1, (alice, "returned", "cab-a"): 2,
            (bob, "out", "cab-a"): 1}
        assert Counter(s.scalars(select(HubRecord.borrower_id))) == {
            alice: 3, bob: 1, None: 4}
        _kept_counts_match_the_loans(s)
    migrate.downgrade(engine, "0026")
    engine.dispose()
