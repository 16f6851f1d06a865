"""The hub's intake records (K1), handovers (H1) and merged log by site (issue 12), in
``/hub/v1`` and the console, with the cabinet alarms list's filters, scoping and 404 rules:
an account scoped to tower A (a supervisor, and an attacker holding a valid low-privilege
token scoped there) gets tower A's rows only; another site's filter is an empty list and
another site's id is 404 exactly like an id that never existed. The merged log orders by
each event's time, then cabinet and seq, and its pages do not move when events arrive."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kiosk.audit import NewEvent
from kiosk.store.models_auth import AccountRole
from kiosk.store.types import utcnow
from tests.fleet.site_records import Received, Shipped, ship_intake_and_handover, ship_pending
from tests.fleet.test_hub_scope import (  # noqa: F401  (fleet: the fixture)
    Hub,
    _get,
    fleet,
)
from tests.fleet.test_hub_site_lists import _cabinets, _scoped, days  # noqa: F401  (days: the fixture)

EMPTY = {"items": [], "total": 0, "limit": 50, "offset": 0}


@pytest.fixture
def received(fleet: Hub, days: dict[str, Shipped]) -> dict[str, Received]:  # noqa: F811
    """At each tower's cabinet, the day's borrower received a key and handed the shift over:
    at A to 李工 (accepted), at B to a colleague the hub does not know (still waiting)."""
    look = fleet.token("look", AccountRole.ADMIN)
    loans = {code: _get(fleet.client, f"/hub/v1/loans/{days[code].out_loan}", look)
             for code in days}
    people = {code: uuid.UUID(loan["borrower_id"]) for code, loan in loans.items()}
    return {code: ship_intake_and_handover(
        fleet.runtime.audit, fleet.cabinets[code], key_id=uuid.UUID(loans[code]["key_id"]),
        custodian_id=people[code],
        incoming_id=people["cab-b"] if code == "cab-a" else uuid.uuid4(),
        accepted=code == "cab-a") for code in ("cab-a", "cab-b")}


def test_the_fleet_sees_intake_records_and_handovers_of_every_site_K1_H1(
        fleet: Hub, received: dict[str, Received]) -> None:  # noqa: F811
    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    client = fleet.client
    intake = _get(client, "/hub/v1/intake-records", admin)
    assert intake["total"] == 2 and sorted(_cabinets(intake)) == ["cab-a", "cab-b"]
    a = next(r for r in intake["items"] if r["cabinet_id"] == "cab-a")
    assert a["id"] == str(received["cab-a"].intake) and a["site"] == "tower-a"
    # K1: the key, who delivered it, how many, the room, the receiving custodian
    assert (a["key_number"], a["delivered_by_name"], a["delivered_by_department"],
            a["room_number"], a["key_count"], a["deliverer_confirmed"], a["custodian"]) == (
        "K-A1", "送钥人 cab-a", "装修公司", "1208", 2, True, "张工")
    assert _cabinets(_get(client, "/hub/v1/intake-records?site=tower-b", admin)) == ["cab-b"]
    assert _cabinets(_get(client, "/hub/v1/intake-records?cabinet_id=cab-a", admin)) == [
        "cab-a"]
    assert _get(client, f"/hub/v1/intake-records/{received['cab-b'].intake}",
                admin)["custodian"] == "李工"

    handovers = _get(client, "/hub/v1/handovers", admin)
    assert sorted(_cabinets(handovers)) == ["cab-a", "cab-b"]
    done = _get(client, "/hub/v1/handovers?state=accepted", admin)
    assert [(h["cabinet_id"], h["outgoing"], h["incoming"]) for h in done["items"]] == [
        ("cab-a", "张工", "李工")]
    waiting = _get(client, "/hub/v1/handovers?state=started&site=tower-b", admin)
    assert [h["id"] for h in waiting["items"]] == [str(received["cab-b"].handover)]
    assert waiting["items"][0]["accepted_at"] is None
    one = _get(client, f"/hub/v1/handovers/{received['cab-a'].handover}", admin)
    assert one["content"] == {"keys_out": 1, "open_alarms": 1}  # H1: what both signed
    assert one["state"] == "accepted" and one["accepted_at"] is not None
    assert client.get("/hub/v1/handovers?state=bogus", headers=admin).status_code == 422
    assert _get(client, "/hub/v1/handovers?site=tower-zz", admin) == EMPTY


LISTS = ("/hub/v1/intake-records", "/hub/v1/handovers")
READS = {AccountRole.SUPERVISOR: LISTS, AccountRole.DUTY_MANAGER: LISTS,
         AccountRole.DEPT_LEADER: ("/hub/v1/intake-records",)}
"""The lists each role may read (keys:read, handovers:read); the others are 403."""


@pytest.mark.parametrize("role", list(READS))
def test_a_site_scoped_account_gets_its_sites_intake_and_handovers_only(
        fleet: Hub, received: dict[str, Received], role: AccountRole) -> None:  # noqa: F811
    """The attacker holds a valid token of a role, scoped to tower A, and asks for tower
    B's rows by filter and by id: a list its role may read gives tower A's rows and B's
    id is 404 exactly like an id that never existed; one it may not read is 403, naming
    nothing, for the list and for any id alike."""
    if role is AccountRole.DEPT_LEADER:  # a department leader has a department
        caller = _department_leader(fleet, "dept_leader-a")
        put = fleet.client.put("/hub/v1/accounts/dept_leader-a/site",
                               json={"site": "tower-a"},
                               headers=fleet.token("root-dl", AccountRole.ADMIN))
        assert put.status_code == 200, put.text
    else:
        caller = _scoped(fleet, f"{role.value}-a", role)
    client = fleet.client
    a, b = received["cab-a"], received["cab-b"]
    ids = {"/hub/v1/intake-records": (a.intake, b.intake),
           "/hub/v1/handovers": (a.handover, b.handover)}
    for path in LISTS:
        mine, theirs = ids[path]
        first = client.get(path, headers=caller)
        if path not in READS[role]:
            assert first.status_code == 403, (role, path, first.text)
            assert "cab-b" not in first.text and "cab-a" not in first.text
            for one in (mine, theirs, uuid.uuid4()):
                refused = client.get(f"{path}/{one}", headers=caller)
                assert refused.status_code == 403, (role, path, refused.text)
            continue
        assert first.status_code == 200, (role, path, first.text)
        assert [r["id"] for r in first.json()["items"]] == [str(mine)]
        for probe in ("site=tower-b", "cabinet_id=cab-b", "site=tower-a&cabinet_id=cab-b"):
            assert _get(client, f"{path}?{probe}", caller) == EMPTY, (path, probe)
        assert _get(client, f"{path}/{mine}", caller)["site"] == "tower-a"
        other = client.get(f"{path}/{theirs}", headers=caller)
        ghost = uuid.uuid4()
        nothing = client.get(f"{path}/{ghost}", headers=caller)
        assert other.status_code == nothing.status_code == 404, (role, path)
        assert (other.json()["detail"].replace(str(theirs), "ID")
                == nothing.json()["detail"].replace(str(ghost), "ID"))


def _department_leader(fleet: Hub, username: str = "lead-eng") -> dict[str, str]:  # noqa: F811
    """A token of engineering's department leader: loans:read and keys:read, but neither
    alarms, reports nor handovers (the fixture's 张工 at A is engineering's)."""
    from sqlalchemy import select

    from kiosk.services import accounts, credentials, tokens
    from kiosk.store.db import write_session
    from kiosk.store.models import Department
    from tests.api.conftest import FAST_HASHER
    from tests.fleet.test_hub_scope import PASSWORD

    policy = credentials.AuthPolicy(hasher=FAST_HASHER)
    with write_session(fleet.runtime.engine) as s:
        eng = s.scalars(select(Department).where(Department.code == "ENG")).one()
        account = accounts.create_account(
            s, fleet.runtime.audit, by=None, username=username, password=PASSWORD,
            role=AccountRole.DEPT_LEADER, department_id=eng.id, policy=policy)
        _, secret = tokens.issue_access_token(s, account=account, policy=policy)
    return {"Authorization": f"Bearer {secret}"}


def test_the_held_records_route_needs_the_read_permission_of_the_kind_asked_H1_K1(
        fleet: Hub, days: dict[str, Shipped],  # noqa: F811
        received: dict[str, Received]) -> None:
    """``/hub/v1/records`` returns the cabinet's whole rows: a department leader (a valid,
    low-privilege token: loans:read, no handovers:read) must not read a handover's signed
    report (H1) or an alarm through it, nor another department's loans; a request that
    names no kind is refused, whoever asks, as it would mix kinds."""
    client = fleet.client
    lead = _department_leader(fleet)
    for path in ("/hub/v1/records", "/hub/v1/records?cabinet_id=cab-a",
                 "/hub/v1/records?kind=handover", "/hub/v1/records?kind=alarm",
                 "/hub/v1/records?kind=alarm_note", "/hub/v1/records?kind=report",
                 "/hub/v1/records?kind=handover&site=tower-a"):
        refused = client.get(path, headers=lead)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert str(received["cab-a"].handover) not in refused.text
    loans = _get(client, "/hub/v1/records?kind=loan", lead)
    assert {r["id"] for r in loans} == {str(days["cab-a"].out_loan),
                                        str(days["cab-a"].returned_loan)}  # 张工's only
    assert _get(client, "/hub/v1/records?kind=loan&cabinet_id=cab-b", lead) == []
    intake = _get(client, "/hub/v1/records?kind=intake", lead)  # keys:read: K1's reads
    assert sorted(r["cabinet_id"] for r in intake) == ["cab-a", "cab-b"]
    unknown = client.get("/hub/v1/records?kind=bogus", headers=lead)
    assert unknown.status_code == 422, unknown.text

    auditor = _scoped(fleet, "auditor-a", AccountRole.AUDITOR)  # reads all, tower A only
    assert client.get("/hub/v1/records", headers=auditor).status_code == 403
    handovers = _get(client, "/hub/v1/records?kind=handover", auditor)
    assert [r["id"] for r in handovers] == [str(received["cab-a"].handover)]
    assert _get(client, "/hub/v1/records?kind=handover&site=tower-b", auditor) == []
    theirs = client.get("/hub/v1/records?kind=handover&cabinet_id=cab-b", headers=auditor)
    assert theirs.status_code == 404, theirs.text  # as if cab-b were not there
    duty = _scoped(fleet, "duty-a", AccountRole.DUTY_MANAGER)  # no reports:read
    assert client.get("/hub/v1/records?kind=report", headers=duty).status_code == 403
    assert {r["cabinet_id"] for r in _get(client, "/hub/v1/records?kind=alarm",
                                          duty)} == {"cab-a"}


# ------------------------------------------------------------------------ merged log
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)


def _log_at(fleet: Hub, code: str, times: list[dt.datetime]) -> None:  # noqa: F811
    """Events at ``code`` written by its own clock reading ``times`` in turn, shipped."""
    cab = fleet.cabinets[code]
    try:
        for at in times:
            cab.audit.clock = lambda at=at: at  # type: ignore[misc]
            cab.audit.append(NewEvent(type="door.opened", key_number=f"K-{code}"))
    finally:
        cab.audit.clock = utcnow
    ship_pending(fleet.runtime.audit, cab)


def _positions(page: dict[str, Any]) -> list[tuple[str, int]]:
    return [(e["cabinet_id"], e["seq"]) for e in page["items"]]


def _walk(client: TestClient, path: str, headers: dict[str, str],
          limit: int) -> list[tuple[str, int]]:
    """Every page of ``path``, following ``next``, as a person pressing "older" would."""
    seen: list[tuple[str, int]] = []
    before = ""
    while True:
        sep = "&" if "?" in path else "?"
        page = _get(client, f"{path}{sep}limit={limit}{before}", headers)
        assert len(page["items"]) <= limit
        seen += _positions(page)
        if page["next"] is None:
            return seen
        before = f"&before={page['next']}"


def test_the_merged_log_orders_by_time_then_cabinet_and_seq_and_pages_stably(
        fleet: Hub) -> None:  # noqa: F811
    """Two cabinets whose clocks disagree: cab-a's was set back an hour before its seq 4,
    and both wrote events in the same second. The list is newest first by the time each
    cabinet wrote, then cabinet and seq; every row names its cabinet and seq, so cab-a's
    own order (its chain: 2, 3, 4) is always readable even where time disagrees with it."""
    _log_at(fleet, "cab-a", [T0 + dt.timedelta(seconds=10), T0 + dt.timedelta(seconds=10),
                             T0 - dt.timedelta(hours=1)])
    _log_at(fleet, "cab-b", [T0 + dt.timedelta(seconds=10), T0 + dt.timedelta(seconds=20)])
    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    client = fleet.client
    whole = _get(client, "/hub/v1/site-events?limit=100", admin)
    assert whole["next"] is None
    # the fixture's first event at each cabinet (now) comes first, by time
    assert sorted(_positions(whole)[:2]) == [("cab-a", 1), ("cab-b", 1)]
    assert _positions(whole)[2:] == [("cab-b", 3), ("cab-b", 2), ("cab-a", 3), ("cab-a", 2),
                                     ("cab-a", 4)]
    times = [dt.datetime.fromisoformat(e["at"]) for e in whole["items"]]
    assert times == sorted(times, reverse=True)
    row = whole["items"][2]
    assert (row["site"], row["type"], row["key_number"]) == ("tower-b", "door.opened",
                                                             "K-cab-b")
    assert [e["seq"] for e in _get(client, "/hub/v1/site-events?site=tower-a",
                                   admin)["items"]] == [1, 3, 2, 4]
    assert _positions(_get(client, "/hub/v1/site-events?cabinet_id=cab-b", admin)) == [
        ("cab-b", 1), ("cab-b", 3), ("cab-b", 2)]

    # Paging by position: page after page gives the whole list once, in order, at any size.
    for limit in (1, 2, 3):
        assert _walk(client, "/hub/v1/site-events", admin, limit) == _positions(whole)
    # Events that arrive meanwhile (newer, and one older: a cabinet's backlog) never move
    # the rows after a page already shown.
    first = _get(client, "/hub/v1/site-events?limit=3", admin)
    _log_at(fleet, "cab-b", [dt.datetime.now(dt.UTC), T0 - dt.timedelta(days=2)])
    rest = _get(client, f"/hub/v1/site-events?limit=100&before={first['next']}", admin)
    assert _positions(rest) == [*_positions(whole)[3:], ("cab-b", 5)]

    for bad in ("nonsense", "2026-01-01T00:00:00~cab-a~1", "2026-13-01T00:00:00Z~cab-a~1",
                "2026-01-01T00:00:00Z~cab-a~0"):
        answer = client.get(f"/hub/v1/site-events?before={bad}", headers=admin)
        assert answer.status_code == 422, bad


@pytest.mark.parametrize("role", [AccountRole.SUPERVISOR, AccountRole.AUDITOR])
def test_a_site_scoped_account_reads_its_sites_merged_log_only(
        fleet: Hub, role: AccountRole) -> None:  # noqa: F811
    # tower B's cabinet clock runs ahead: its events are the newest of the fleet
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    _log_at(fleet, "cab-b", [ahead, ahead])
    caller = _scoped(fleet, f"{role.value}-a", role)
    client = fleet.client
    mine = _get(client, "/hub/v1/site-events", caller)
    assert _positions(mine) == [("cab-a", 1)] and mine["next"] is None
    # a page of one is tower A's newest, not a page of tower B's rows left out
    assert _get(client, "/hub/v1/site-events?limit=1", caller) == {
        "items": mine["items"], "next": None, "limit": 1}
    for probe in ("site=tower-b", "cabinet_id=cab-b", "site=tower-a&cabinet_id=cab-b",
                  "site=tower-zz"):
        assert _get(client, f"/hub/v1/site-events?{probe}", caller) == {
            "items": [], "next": None, "limit": 50}, probe
    # a position of tower B's log handed in is only a place in the order: still tower A's
    # rows before it (cab-a's event, now, is before cab-b's seq 2, five minutes ahead), and
    # none of tower B's (its seq 2 and 3 are at that very time, its seq 1 is before it)
    theirs = f"{ahead.isoformat().replace('+00:00', 'Z')}~cab-b~2"
    after = _get(client, f"/hub/v1/site-events?before={theirs}", caller)
    assert after == {"items": mine["items"], "next": None, "limit": 50}
    assert _positions(after) == [("cab-a", 1)]


def test_the_console_tabs_list_a_sites_log_intake_and_handovers_within_the_scope(
        fleet: Hub, received: dict[str, Received]) -> None:  # noqa: F811
    fleet.token("fleet-admin", AccountRole.ADMIN)
    _scoped(fleet, "sup-a", AccountRole.SUPERVISOR)
    whole = fleet.console("fleet-admin")
    log = whole.get("/console/fleet/log")
    assert log.status_code == 200, log.text
    rows = re.findall(r'data-cabinet="([\w-]+)" data-seq="(\d+)"', log.text)
    assert {c for c, _ in rows} == {"cab-a", "cab-b"}
    only_b = whole.get("/console/fleet/log?site=tower-b").text
    assert set(re.findall(r'data-cabinet="([\w-]+)" data-seq', only_b)) == {"cab-b"}
    intake = whole.get("/console/fleet/intake").text
    assert "送钥人 cab-a" in intake and "送钥人 cab-b" in intake and "1208" in intake
    handovers = whole.get("/console/fleet/handovers?state=started").text
    assert f'data-handover="{received["cab-b"].handover}"' in handovers
    assert f'data-handover="{received["cab-a"].handover}"' not in handovers
    assert whole.get("/console/fleet/handovers?state=bogus").status_code == 422

    sup = fleet.console("sup-a")
    for what, mine, theirs in (("log", 'data-cabinet="cab-a"', 'data-cabinet="cab-b"'),
                               ("intake", "送钥人 cab-a", "送钥人 cab-b"),
                               ("handovers", str(received["cab-a"].handover),
                                str(received["cab-b"].handover))):
        shown = sup.get(f"/console/fleet/{what}")
        assert shown.status_code == 200 and mine in shown.text and theirs not in shown.text
        other = sup.get(f"/console/fleet/{what}?site=tower-b&cabinet=cab-b")
        assert other.status_code == 200 and theirs not in other.text and mine not in other.text


def test_the_console_site_log_pages_older_by_position_and_keeps_the_filter(
        fleet: Hub) -> None:  # noqa: F811
    _log_at(fleet, "cab-a", [T0 + dt.timedelta(seconds=n) for n in range(55)])
    _log_at(fleet, "cab-b", [T0 + dt.timedelta(seconds=n) for n in range(3)])
    fleet.token("fleet-admin", AccountRole.ADMIN)
    whole = fleet.console("fleet-admin")
    first = whole.get("/console/fleet/log?site=tower-a").text
    rows = re.findall(r'data-cabinet="([\w-]+)" data-seq="(\d+)"', first)
    assert len(rows) == 50 and {c for c, _ in rows} == {"cab-a"}
    older = re.search(r'href="\?([^"]*before=[^"]+)"', first)
    assert older, first
    assert "site=tower-a" in older.group(1)
    second = whole.get("/console/fleet/log?" + older.group(1).replace("&amp;", "&")).text
    more = re.findall(r'data-cabinet="([\w-]+)" data-seq="(\d+)"', second)
    # every event of tower A once: the fixture's first and the 55 written here
    assert sorted(int(n) for _, n in rows + more) == list(range(1, 57))
    assert not re.search(r'href="\?[^"]*before=', second)  # the last page
