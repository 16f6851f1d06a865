"""The hub's day-to-day lists by site (issue 12): keys out, the cabinets' alarms and issued
reports, in ``/hub/v1`` and in the console, each with a site and cabinet filter; an account
scoped to tower A gets tower A's rows only (another site's filter: an empty list; another
site's id: 404 exactly like an id that never existed). And the console's form for a site's
settings, within the caller's scope and ``cabinets:write``."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy.orm import Session

from kiosk.fleet import hub, site_settings_hub
from kiosk.store.db import write_session
from kiosk.store.models import Department, Person
from kiosk.store.models_auth import AccountRole
from tests.fleet.site_records import Shipped, ship_a_day
from tests.fleet.test_hub_scope import (  # noqa: F401  (fleet: the fixture)
    CSRF,
    PASSWORD,
    Hub,
    _get,
    _home_keys,
    fleet,
)

ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def days(fleet: Hub) -> dict[str, Shipped]:  # noqa: F811
    """A day of records at each tower's cabinet, shipped up; the hub knows the keys (homed
    at each cabinet) and the borrowers (张工 of engineering at A, 李工 of security at B)."""
    keys = _home_keys(fleet.runtime)
    shipped = {}
    with write_session(fleet.runtime.engine) as s:
        eng, sec = Department(code="ENG", name="工程部"), Department(code="SEC", name="保安部")
        s.add_all([eng, sec])
        s.flush()
        people = {"cab-a": Person(staff_no="E1", name="张工", department_id=eng.id),
                  "cab-b": Person(staff_no="S1", name="李工", department_id=sec.id)}
        s.add_all(people.values())
        s.flush()
        who = {code: (p.id, p.staff_no, p.name) for code, p in people.items()}
    for code, number in (("cab-a", "K-A1"), ("cab-b", "K-B1")):
        person_id, staff_no, name = who[code]
        shipped[code] = ship_a_day(fleet.runtime.audit, fleet.cabinets[code],
                                   key_id=keys[number], key_number=number,
                                   person_id=person_id, staff_no=staff_no, name=name)
    return shipped


def _scoped(fleet: Hub, username: str, role: AccountRole,  # noqa: F811
            site: str | None = "tower-a") -> dict[str, str]:
    admin = fleet.token(f"root-{uuid.uuid4().hex[:6]}", AccountRole.ADMIN)
    headers = fleet.token(username, role)
    if site:
        put = fleet.client.put(f"/hub/v1/accounts/{username}/site", json={"site": site},
                               headers=admin)
        assert put.status_code == 200, put.text
    return headers


def _cabinets(page: dict[str, Any]) -> list[str]:
    return [row["cabinet_id"] for row in page["items"]]


def test_the_fleet_sees_keys_out_alarms_and_reports_of_every_site_and_filters_K9_F1(
        fleet: Hub, days: dict[str, Shipped]) -> None:  # noqa: F811
    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    client = fleet.client
    out = _get(client, "/hub/v1/loans", admin)
    assert out["total"] == 2 and sorted(_cabinets(out)) == ["cab-a", "cab-b"]
    mine = next(r for r in out["items"] if r["cabinet_id"] == "cab-a")
    assert mine["id"] == str(days["cab-a"].out_loan)  # the key out, not the one returned
    assert (mine["key_number"], mine["borrower"], mine["site"]) == ("K-A1", "张工", "tower-a")
    assert mine["overdue"] is True and mine["returned_at"] is None  # K9: past due, still out
    assert _cabinets(_get(client, "/hub/v1/loans?site=tower-b", admin)) == ["cab-b"]
    assert _cabinets(_get(client, "/hub/v1/loans?cabinet_id=cab-a", admin)) == ["cab-a"]
    back = _get(client, "/hub/v1/loans?state=returned&site=tower-a", admin)
    assert [r["id"] for r in back["items"]] == [str(days["cab-a"].returned_loan)]
    assert _get(client, "/hub/v1/loans?state=all", admin)["total"] == 4
    assert _get(client, "/hub/v1/loans?state=overdue&site=tower-b", admin)["total"] == 1
    assert _get(client, "/hub/v1/loans?site=tower-zz", admin)["total"] == 0

    alarms = _get(client, "/hub/v1/cabinet-alarms?site=tower-b", admin)["items"]
    assert [(a["kind"], a["message"], a["state"]) for a in alarms] == [
        ("door_forced", "door forced at cab-b", "open")]
    assert [n["text"] for n in alarms[0]["notes"]] == ["checked at cab-b"]
    assert _get(client, "/hub/v1/cabinet-alarms?state=closed", admin)["total"] == 0
    reports = _get(client, "/hub/v1/reports", admin)
    assert sorted(_cabinets(reports)) == ["cab-a", "cab-b"]
    one = _get(client, f"/hub/v1/reports/{days['cab-b'].report}", admin)
    assert one["sha256"] == "ab" * 32 and one["site"] == "tower-b"


def test_a_site_scoped_supervisor_gets_its_sites_rows_only(
        fleet: Hub, days: dict[str, Shipped]) -> None:  # noqa: F811
    sup = _scoped(fleet, "sup-a", AccountRole.SUPERVISOR)
    client = fleet.client
    for path in ("/hub/v1/loans", "/hub/v1/loans?state=all", "/hub/v1/cabinet-alarms",
                 "/hub/v1/reports"):
        assert set(_cabinets(_get(client, path, sup))) == {"cab-a"}, path
        for probe in ("site=tower-b", "cabinet_id=cab-b", "site=tower-a&cabinet_id=cab-b"):
            sep = "&" if "?" in path else "?"
            page = _get(client, f"{path}{sep}{probe}", sup)
            assert page == {"items": [], "total": 0, "limit": 50, "offset": 0}, (path, probe)
    b = days["cab-b"]
    for path in (f"/hub/v1/loans/{b.out_loan}", f"/hub/v1/cabinet-alarms/{b.alarm}",
                 f"/hub/v1/reports/{b.report}"):
        theirs = client.get(path, headers=sup)
        ghost = uuid.uuid4()
        nothing = client.get(path.rsplit("/", 1)[0] + f"/{ghost}", headers=sup)
        assert theirs.status_code == nothing.status_code == 404
        assert (theirs.json()["detail"].replace(path.rsplit("/", 1)[1], "ID")
                == nothing.json()["detail"].replace(str(ghost), "ID"))
    a = days["cab-a"]
    assert _get(client, f"/hub/v1/loans/{a.out_loan}", sup)["key_number"] == "K-A1"


def test_a_department_leader_at_the_hub_sees_its_departments_loans_only(
        fleet: Hub, days: dict[str, Shipped]) -> None:  # noqa: F811
    """As on a cabinet: a department leader reads the loans of its own department's people
    (here engineering: 张工's loan at A, not 李工's at B)."""
    from sqlalchemy import select

    from kiosk.services import accounts, credentials, tokens
    from tests.api.conftest import FAST_HASHER

    policy = credentials.AuthPolicy(hasher=FAST_HASHER)
    with write_session(fleet.runtime.engine) as s:
        eng = s.scalars(select(Department).where(Department.code == "ENG")).one()
        account = accounts.create_account(
            s, fleet.runtime.audit, by=None, username="lead-eng", password=PASSWORD,
            role=AccountRole.DEPT_LEADER, department_id=eng.id, policy=policy)
        _, secret = tokens.issue_access_token(s, account=account, policy=policy)
    headers = {"Authorization": f"Bearer {secret}"}
    page = _get(fleet.client, "/hub/v1/loans?state=all", headers)
    assert {r["borrower"] for r in page["items"]} == {"张工"} and page["total"] == 2
    assert fleet.client.get(f"/hub/v1/loans/{days['cab-b'].out_loan}",
                            headers=headers).status_code == 404


def test_the_console_lists_by_site_with_a_filter_and_a_scoped_supervisor_sees_one_site(
        fleet: Hub, days: dict[str, Shipped]) -> None:  # noqa: F811
    fleet.token("fleet-admin", AccountRole.ADMIN)
    _scoped(fleet, "sup-a", AccountRole.SUPERVISOR)
    whole = fleet.console("fleet-admin")
    page = whole.get("/console/fleet/loans")
    assert page.status_code == 200, page.text
    assert "K-A1" in page.text and "K-B1" in page.text and "张工" in page.text
    assert '<select id="f-site" name="site">' in page.text  # the filter control
    only_b = whole.get("/console/fleet/loans?site=tower-b").text
    assert "K-B1" in only_b and "K-A1" not in only_b
    assert "door forced at cab-a" in whole.get("/console/fleet/alarms?cabinet=cab-a").text
    assert 'data-report="' in whole.get("/console/fleet/reports").text

    sup = fleet.console("sup-a")
    for what, mine, theirs in (("loans", "K-A1", "K-B1"),
                               ("alarms", "door forced at cab-a", "door forced at cab-b"),
                               ("reports", str(days["cab-a"].report), str(days["cab-b"].report))):
        shown = sup.get(f"/console/fleet/{what}")
        assert shown.status_code == 200 and mine in shown.text and theirs not in shown.text
        other = sup.get(f"/console/fleet/{what}?site=tower-b&cabinet=cab-b")
        assert other.status_code == 200 and theirs not in other.text and mine not in other.text
        assert 'value="tower-b"' not in shown.text  # not offered in the filter either
    assert sup.get("/console/fleet/loans?state=bogus").status_code == 422


def _post_settings(browser: Any, site: str, form: dict[str, str]) -> Any:
    page = browser.get(f"/console/fleet/settings?site={site}")
    token = CSRF.search(page.text)
    assert token, page.text
    return browser.post(f"/console/fleet/settings/{site}", data={"csrf": token.group(1), **form},
                        headers=ORIGIN)


def test_a_sites_settings_are_edited_in_the_console_within_the_scope_K8(
        fleet: Hub) -> None:  # noqa: F811
    """The form for ``PUT /hub/v1/sites/{site}/settings``: each section as JSON; a bad
    value is refused beside its box and changes nothing; a site outside the caller's scope
    is not there (404); a supervisor (no ``cabinets:write``) reads the settings only."""
    fleet.token("fleet-admin", AccountRole.ADMIN)
    _scoped(fleet, "adm-a", AccountRole.ADMIN)
    _scoped(fleet, "sup-a", AccountRole.SUPERVISOR)
    admin = fleet.console("adm-a")
    page = admin.get("/console/fleet/settings")
    assert page.status_code == 200 and 'id="site-settings"' in page.text  # its one site
    saved = _post_settings(admin, "tower-a", {
        "business_hours": '{"start": "07:00", "end": "20:00", "weekdays": [1, 2, 3, 4, 5, 6]}',
        "pin": "", "alarms": "", "site": '{"building_name": "A 座"}'})
    assert saved.status_code == 303, saved.text
    with Session(fleet.runtime.engine) as s:
        held = site_settings_hub.for_site(s, hub.site_by_code(s, "tower-a").id)
    assert held["business_hours"]["start"] == "07:00:00" and "pin" not in held
    assert held["site"]["building_name"] == "A 座"
    again = admin.get("/console/fleet/settings?site=tower-a").text
    assert "A 座" in again and "07:00:00" in again

    bad_json = _post_settings(admin, "tower-a", {"business_hours": "{start: 7}", "pin": "",
                                                 "alarms": "", "site": ""})
    assert bad_json.status_code == 422
    assert re.search(r'id="business_hours-error">[^<]*JSON', bad_json.text)
    bad_value = _post_settings(admin, "tower-a", {
        "business_hours": '{"start": "20:00", "end": "08:00"}', "pin": "", "alarms": "",
        "site": ""})
    assert bad_value.status_code == 422 and 'id="business_hours-error"' in bad_value.text
    with Session(fleet.runtime.engine) as s:  # refused: nothing changed
        assert site_settings_hub.for_site(s, hub.site_by_code(s, "tower-a").id) == held

    assert admin.get("/console/fleet/settings?site=tower-b").status_code == 404
    token = CSRF.search(admin.get("/console/fleet/settings").text)
    assert token
    theirs = admin.post("/console/fleet/settings/tower-b", headers=ORIGIN, data={
        "csrf": token.group(1), "pin": '{"after_hours": true}'})
    assert theirs.status_code == 404
    with Session(fleet.runtime.engine) as s:
        assert site_settings_hub.for_site(s, hub.site_by_code(s, "tower-b").id) == {}

    sup = fleet.console("sup-a")
    shown = sup.get("/console/fleet/settings").text
    assert "A 座" in shown and 'id="site-settings"' not in shown  # read only
    token = CSRF.search(shown)
    assert token
    for pin in ('{"after_hours": true}', "{not json"):  # refused whatever the boxes hold
        refused = sup.post("/console/fleet/settings/tower-a", headers=ORIGIN,
                           data={"csrf": token.group(1), "pin": pin})
        assert refused.status_code == 403


def test_the_console_shows_a_sites_keys_and_a_cabinets_log_newest_first(
        fleet: Hub, days: dict[str, Shipped]) -> None:  # noqa: F811
    """The keys page lists the keys homed at the chosen site's cabinets; the log page reads
    one cabinet's log (each is its own chain), newest first, by type; a scoped supervisor
    gets its site's keys only and another site's cabinet log is not there (404)."""
    fleet.token("fleet-admin", AccountRole.ADMIN)
    _scoped(fleet, "sup-a", AccountRole.SUPERVISOR)
    whole = fleet.console("fleet-admin")
    keys = whole.get("/console/fleet/keys").text
    assert 'data-key="K-A1"' in keys and 'data-key="K-B1"' in keys
    only_b = whole.get("/console/fleet/keys?site=tower-b").text
    assert 'data-key="K-B1"' in only_b and 'data-key="K-A1"' not in only_b
    log = whole.get("/console/fleet/events?cabinet=cab-b").text
    seqs = [int(n) for n in re.findall(r'data-seq="(\d+)"', log)]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 4  # newest first
    drawn = whole.get("/console/fleet/events?cabinet=cab-b&type=key.drawn").text
    assert re.findall(r'data-seq="(\d+)"', drawn) == ["2", "1"]
    older = whole.get("/console/fleet/events?cabinet=cab-b&before=2").text
    assert re.findall(r'data-seq="(\d+)"', older) == ["1"]
    assert "cab-a" in whole.get("/console/fleet/events").text  # choose a cabinet first

    sup = fleet.console("sup-a")
    mine = sup.get("/console/fleet/keys").text
    assert 'data-key="K-A1"' in mine and "K-B1" not in mine
    assert "K-B1" not in sup.get("/console/fleet/keys?site=tower-b&cabinet=cab-b").text
    assert sup.get("/console/fleet/events?cabinet=cab-a").status_code == 200
    theirs = sup.get("/console/fleet/events?cabinet=cab-b")
    ghost = sup.get("/console/fleet/events?cabinet=cab-zz")
    assert theirs.status_code == ghost.status_code == 404
    assert "cab-b" not in sup.get("/console/fleet/events").text
