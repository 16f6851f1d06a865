"""Site-scoped roles at the hub (issue 12): two sites, a cabinet at each with its log shipped
up; a supervisor scoped to tower A sees tower A only, in the API and in the hub's console
(the fleet page with its site and cabinet filter); the fleet's administrator sees both.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.deps import AdminOptions
from api.hub.app import create_hub_app
from kiosk.audit import NewEvent
from kiosk.config import Settings
from kiosk.fleet import hub
from kiosk.fleet.ingest import Batch, ingest
from kiosk.fleet.link import read_batch
from kiosk.runtime import Runtime
from kiosk.services import accounts, credentials, tokens
from kiosk.store.db import write_session
from kiosk.store.models import Cabinet, Key, KeyCategory, KeyGroup, Person, Slot
from kiosk.store.models_auth import AccountRole
from kiosk.store.models_fleet import HubRecord
from tests.api.conftest import FAST_HASHER
from tests.fleet.site_records import Shipped, ship_a_day

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Hub:
    client: TestClient
    runtime: Runtime
    cabinets: dict[str, Runtime] = field(default_factory=dict)

    def token(self, username: str, role: AccountRole) -> dict[str, str]:
        policy = credentials.AuthPolicy(hasher=FAST_HASHER)
        with write_session(self.runtime.engine) as s:
            account = accounts.create_account(s, self.runtime.audit, by=None, username=username,
                                              password=PASSWORD, role=role, policy=policy)
            _, secret = tokens.issue_access_token(s, account=account, policy=policy)
        return {"Authorization": f"Bearer {secret}"}

    def console(self, username: str) -> TestClient:
        """A browser's cookies, signed in to the console through its form."""
        client = TestClient(self.client.app, base_url="http://testserver",
                            follow_redirects=False)
        token = CSRF.search(client.get("/console/login").text)
        assert token
        answer = client.post("/console/login", data={
            "csrf": token.group(1), "username": username, "password": PASSWORD},
            headers={"Origin": "http://testserver"})
        assert answer.status_code == 303, answer.text
        return client


@pytest.fixture
def fleet(runtime: Runtime, tmp_path: Path) -> Iterator[Hub]:
    app = create_hub_app(runtime, AdminOptions(
        auth_policy=credentials.AuthPolicy(hasher=FAST_HASHER)))
    cabinets = []
    with TestClient(app) as client:
        for site, code in (("tower-a", "cab-a"), ("tower-b", "cab-b")):
            with write_session(runtime.engine) as s:
                hub.create_site(s, runtime.audit, code=site, name=site.title(), actors=["t"])
                secret, _ = hub.create_enrolment_code(s, runtime.audit, site_code=site,
                                                      actors=["t"])
            cab = Runtime.open(Settings(data_dir=tmp_path / code, cabinet_id=code))
            cabinets.append(cab)
            with write_session(runtime.engine) as s:
                hub.enrol(s, runtime.audit, code=secret, cabinet_id=code,
                          public_key_hex=cab.device_key.public_hex)
            cab.audit.append(NewEvent(type="key.drawn", key_number=f"K-{code}"))
            ingest(runtime.audit, cabinet_id=code,
                   batch=Batch.parse(read_batch(cab.engine, code, 0, 100)))
            with write_session(runtime.engine) as s:  # a hub alarm at each cabinet
                hub.raise_alarm(s, cabinet_id=code, kind="gap", message=f"test gap at {code}")
        try:
            yield Hub(client, runtime, {c.settings.cabinet_id: c for c in cabinets})
        finally:
            for cab in cabinets:
                cab.close()


def _get(client: TestClient, path: str, headers: dict[str, str]) -> Any:
    answer = client.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_supervisor_scoped_to_one_site_sees_only_that_site(fleet: Hub) -> None:
    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    supervisor = fleet.token("sup-a", AccountRole.SUPERVISOR)
    client = fleet.client
    scoped = client.put("/hub/v1/accounts/sup-a/site", json={"site": "tower-a"}, headers=admin)
    assert scoped.status_code == 200, scoped.text

    assert [s["code"] for s in _get(client, "/hub/v1/sites", admin)] == ["tower-a", "tower-b"]
    assert [s["code"] for s in _get(client, "/hub/v1/sites", supervisor)] == ["tower-a"]
    assert [c["cabinet_id"] for c in _get(client, "/hub/v1/cabinets", supervisor)] == ["cab-a"]
    assert _get(client, "/hub/v1/cabinets?site=tower-b", supervisor) == []
    assert {a["cabinet_id"] for a in _get(client, "/hub/v1/alarms", supervisor)} == {"cab-a"}
    assert {a["cabinet_id"] for a in _get(client, "/hub/v1/alarms", admin)} == {"cab-a",
                                                                               "cab-b"}
    events = _get(client, "/hub/v1/events?cabinet_id=cab-a", supervisor)
    assert [e["key_number"] for e in events if e["type"] == "key.drawn"] == ["K-cab-a"]
    for path in ("/hub/v1/events?cabinet_id=cab-b", "/hub/v1/records?kind=loan&cabinet_id=cab-b"):
        assert client.get(path, headers=supervisor).status_code == 404  # as if not there
    assert client.get("/hub/v1/events?cabinet_id=cab-b", headers=admin).status_code == 200

    # A scoped account cannot widen its own view or add sites.
    sup_admin = fleet.token("adm-a", AccountRole.ADMIN)
    client.put("/hub/v1/accounts/adm-a/site", json={"site": "tower-a"}, headers=admin)
    widen = client.put("/hub/v1/accounts/adm-a/site", json={"site": None}, headers=sup_admin)
    assert widen.status_code == 403, widen.text
    site = client.post("/hub/v1/sites", json={"code": "tower-c", "name": "C"}, headers=sup_admin)
    assert site.status_code == 403
    code = client.post("/hub/v1/sites/tower-b/enrolment-codes", headers=sup_admin)
    assert code.status_code == 404
    assert client.post("/hub/v1/cabinets/cab-b/revoke", headers=sup_admin).status_code == 404


def test_the_hub_console_shows_every_site_to_the_fleet_and_one_to_its_supervisor(
        fleet: Hub) -> None:
    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    fleet.token("sup-a", AccountRole.SUPERVISOR)
    fleet.client.put("/hub/v1/accounts/sup-a/site", json={"site": "tower-a"}, headers=admin)

    whole = fleet.console("fleet-admin")
    page = whole.get("/console/fleet")
    assert page.status_code == 200, page.text
    assert 'data-cabinet="cab-a"' in page.text and 'data-cabinet="cab-b"' in page.text
    assert 'href="/console/fleet"' in whole.get("/console/").text  # in the navigation
    one = whole.get("/console/fleet?site=tower-b&cabinet=cab-b")
    assert 'data-cabinet="cab-a"' not in one.text and "K-cab-b" in one.text

    sup = fleet.console("sup-a")
    mine = sup.get("/console/fleet")
    assert mine.status_code == 200
    assert 'data-cabinet="cab-a"' in mine.text and "cab-b" not in mine.text
    assert "test gap at cab-a" in mine.text and "test gap at cab-b" not in mine.text
    assert "K-cab-a" in sup.get("/console/fleet?cabinet=cab-a").text
    other = sup.get("/console/fleet?site=tower-b&cabinet=cab-b")
    assert other.status_code == 404 and "K-cab-b" not in other.text


def test_a_days_backlog_of_500_events_ships_in_one_batch(fleet: Hub, tmp_path: Path) -> None:
    """The shipper's default batch (500 events, a day's backlog after the hub was away) is
    taken by the hub over HTTP: the ingest route's body limit is the log's, not 64 KiB."""
    from kiosk.fleet import protocol

    with write_session(fleet.runtime.engine) as s:
        secret, _ = hub.create_enrolment_code(s, fleet.runtime.audit, site_code="tower-a",
                                              actors=["t"])
    cab = Runtime.open(Settings(data_dir=tmp_path / "cab-big", cabinet_id="cab-big"))
    try:
        with write_session(fleet.runtime.engine) as s:
            hub.enrol(s, fleet.runtime.audit, code=secret, cabinet_id="cab-big",
                      public_key_hex=cab.device_key.public_hex)
        with write_session(cab.engine) as s:
            for n in range(500):
                cab.audit.append_in(s, NewEvent(
                    type="key.drawn", key_number=f"U{1000 + n}", actors=[f"person:{n}"],
                    rules=["K3"], payload={"reason": "repair", "note": "维修" * 40}))
        raw = json.dumps(read_batch(cab.engine, "cab-big", 0, 500)).encode()
        assert len(raw) > 64 * 1024
        headers = protocol.sign_request(cab.device_key.sign, method="POST",
                                        path="/hub/v1/ingest", cabinet_id="cab-big",
                                        body=raw).as_dict()
        answer = fleet.client.post("/hub/v1/ingest", content=raw, headers={
            **headers, "Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["acked_seq"] == 500
    finally:
        cab.close()


# ------------------------------------------------------------ site scope everywhere
SITE_B = ("cab-b", "tower-b", "K-B1", "test gap at cab-b", "李工乙")
"""What only site B has; none of it may reach an account scoped to site A."""
SIGNED_ONLY = {"/hub/v1/cursor", "/hub/v1/changes"}  # cabinets' signed requests, no account
PROBES = ("", "?site=tower-b", "?cabinet=cab-b", "?cabinet_id=cab-b", "?site=tower-b&limit=5")


def _swap(text: str, swaps: dict[str, str]) -> str:
    for old, new in swaps.items():
        text = text.replace(old, new)
    return text


def _home_keys(runtime: Runtime) -> dict[str, uuid.UUID]:
    """A key homed in slot 1 of each site's cabinet, as the hub's administrator sets it."""
    found = {}
    with write_session(runtime.engine) as s:
        group = KeyGroup(code="OFFICE", name="办公室")
        s.add(group)
        s.flush()
        for code, number in (("cab-a", "K-A1"), ("cab-b", "K-B1")):
            cabinet = s.scalars(select(Cabinet).where(Cabinet.code == code)).one()
            slot = Slot(cabinet_id=cabinet.id, number=1)
            s.add(slot)
            s.flush()
            key = Key(key_number=number, label=f"{number} office", group_id=group.id,
                      category=KeyCategory.OTHER, home_slot_id=slot.id)
            s.add(key)
            s.flush()
            found[number] = key.id
    return found


def _ship_days(fleet: Hub, keys: dict[str, uuid.UUID]) -> dict[str, Shipped]:
    """A day at each site's cabinet, shipped up (tests/fleet/site_records.py); B's borrower
    is 李工乙, a name only site B's rows carry."""
    with write_session(fleet.runtime.engine) as s:
        people = {"cab-a": Person(staff_no="E-A", name="张工甲"),
                  "cab-b": Person(staff_no="E-B", name="李工乙")}
        s.add_all(people.values())
        s.flush()
        who = {code: (p.id, p.staff_no, p.name) for code, p in people.items()}
    return {code: ship_a_day(fleet.runtime.audit, fleet.cabinets[code], key_id=keys[number],
                             key_number=number, person_id=who[code][0], staff_no=who[code][1],
                             name=who[code][2])
            for code, number in (("cab-a", "K-A1"), ("cab-b", "K-B1"))}


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every route with its full path, also those inside included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes, prefix + route.include_context.prefix)
        else:
            yield prefix + getattr(route, "path", ""), route


def _get_paths(app: Any, key_b: uuid.UUID) -> list[str]:
    """Every GET path of the hub app, path parameters filled with site B's key id (a uuid),
    a plausible kind and format: the routes a scoped caller could try."""
    paths = []
    for full, route in _routes(app.routes):
        if not isinstance(route, APIRoute) or "GET" not in (route.methods or {"GET"}):
            continue
        if full in SIGNED_ONLY:
            continue
        path = re.sub(r"\{[^}]*:uuid\}|\{[a-z_]*_id\}", str(key_b), full)
        path = path.replace("{kind}", "people").replace("{fmt}", "csv")
        path = re.sub(r"\{seq:int\}", "1", path)
        path = re.sub(r"\{[^}]+\}", "x", path)
        paths.append(path)
    return sorted(set(paths))


def test_site_scope_everywhere_on_the_hub(fleet: Hub) -> None:
    """Item 1 of issue 12's last gaps: a supervisor scoped to tower A, and an attacker with
    a valid low-privilege token scoped there too, try every GET route of the hub's API and
    console with site B's ids and filters; nothing of site B comes back, and B's key by id
    is answered 404 exactly like an id that does not exist."""
    keys = _home_keys(fleet.runtime)
    shipped = _ship_days(fleet, keys)  # keys out, alarms, reports at each site, by site
    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    callers = {"sup-a": fleet.token("sup-a", AccountRole.SUPERVISOR),
               "duty-a": fleet.token("duty-a", AccountRole.DUTY_MANAGER)}
    client = fleet.client
    for username in callers:
        put = client.put(f"/hub/v1/accounts/{username}/site", json={"site": "tower-a"},
                         headers=admin)
        assert put.status_code == 200, put.text

    # The whole fleet's administrator sees both sites and filters by site and cabinet.
    assert [k["key_number"] for k in _get(client, "/hub/v1/keys", admin)] == ["K-A1", "K-B1"]
    assert [k["key_number"] for k in _get(client, "/hub/v1/keys?site=tower-b", admin)] == [
        "K-B1"]
    assert [k["cabinet_id"] for k in _get(client, "/hub/v1/keys?cabinet_id=cab-a",
                                          admin)] == ["cab-a"]
    assert _get(client, f"/hub/v1/keys/{keys['K-B1']}", admin)["site"] == "tower-b"
    assert "K-B1" in client.get("/api/v1/keys", headers=admin).text  # unscoped: unchanged

    # Records (loans, alarms ...) by site: the fleet's for the administrator, one site's else.
    loan = {"kind": "loan", "id": str(uuid.uuid4())}
    for code in ("cab-a", "cab-b"):
        with write_session(fleet.runtime.engine) as s:
            s.add(HubRecord(kind="loan", record_id=uuid.uuid4(), cabinet_id=code,
                            body=json.dumps({**loan, "key_number": f"K-{code}-loan"})))
    everyone = _get(client, "/hub/v1/records?kind=loan", admin)
    assert {r["cabinet_id"] for r in everyone} == {"cab-a", "cab-b"}
    assert {r["cabinet_id"] for r in _get(client, "/hub/v1/records?kind=loan&site=tower-b",
                                          admin)} == {"cab-b"}
    assert {r["cabinet_id"] for r in _get(client, "/hub/v1/records?kind=loan",
                                          callers["sup-a"])} == {"cab-a"}

    # The scoped supervisor sees its site's key, and B's key is not there (404, like none).
    sup = callers["sup-a"]
    assert [k["key_number"] for k in _get(client, "/hub/v1/keys", sup)] == ["K-A1"]
    assert _get(client, "/hub/v1/keys?site=tower-b", sup) == []
    assert _get(client, "/hub/v1/keys?cabinet_id=cab-b", sup) == []
    assert client.get(f"/hub/v1/keys/{keys['K-B1']}", headers=sup).status_code == 404
    assert client.get(f"/hub/v1/keys/{uuid.uuid4()}", headers=sup).status_code == 404
    assert client.get(f"/api/v1/keys/{keys['K-B1']}", headers=sup).status_code == 404
    assert client.get("/api/v1/keys", headers=sup).status_code == 404

    key_b = str(keys["K-B1"])
    b = shipped["cab-b"]
    by_id = {"/hub/v1/loans/": str(b.out_loan), "/hub/v1/cabinet-alarms/": str(b.alarm),
             "/hub/v1/reports/": str(b.report)}  # B's own records by id, not B's key's
    paths = [next((p.replace(key_b, rid) for pre, rid in by_id.items() if p.startswith(pre)),
                  p) for p in _get_paths(client.app, keys["K-B1"])]
    assert "/api/v1/loans" in paths and "/console/audit" in paths and "/hub/v1/keys" in paths
    for opened in ("/hub/v1/loans", "/hub/v1/cabinet-alarms", "/hub/v1/reports",
                   "/console/fleet/loans", "/console/fleet/alarms", "/console/fleet/reports",
                   "/console/fleet/settings", *(pre + rid for pre, rid in by_id.items())):
        assert opened in paths, opened
    ghosts = {key_b: str(uuid.uuid4()), "cab-b": "cab-zz", "tower-b": "tower-zz",
              **{rid: str(uuid.uuid4()) for rid in by_id.values()}}

    def normal(text: str, swaps: dict[str, str]) -> str:
        for value in swaps:
            text = text.replace(value, "ID")
        return text

    for username, headers in callers.items():
        browser = fleet.console(username)

        def fetch(url: str, browser: TestClient = browser,
                  headers: dict[str, str] = headers) -> Any:
            return (browser.get(url) if url.startswith("/console")
                    else client.get(url, headers=headers))

        for path in paths:
            for probe in PROBES:
                url = path + probe
                answer = fetch(url)
                assert answer.status_code != 500, (username, url)
                if answer.status_code == 200:  # what is shown holds nothing of site B
                    shown = [m for m in (*SITE_B, key_b, *by_id.values())
                             if m in answer.text]
                    assert not shown, f"{username} {url} shows {shown}"
                    continue
                # A refusal names nothing of B but what was asked, and is the refusal a
                # name that never existed gets: it does not confirm that B's exists.
                assert answer.status_code in (303, 403, 404, 422), (username, url)
                other = fetch(_swap(url, ghosts))
                assert other.status_code == answer.status_code, (username, url)
                assert (normal(answer.text, ghosts) ==
                        normal(other.text, {v: k for k, v in ghosts.items()})), (username, url)
        # The console opens on the site's fleet page and offers nothing else.
        home = browser.get("/console/")
        assert home.status_code == 303 and home.headers["location"] == "/console/fleet"
        page = browser.get("/console/fleet")
        assert page.status_code == 200 and 'data-cabinet="cab-a"' in page.text
        assert 'href="/console/people"' not in page.text
        assert 'href="/console/keys"' not in page.text
        assert browser.get("/console/keys").status_code == 404
        # A scoped session's cookie with the fleet administrator's bearer header beside it:
        # the console goes by its cookie, and so does the gate.
        assert browser.get("/console/keys", headers=admin).status_code == 404
        if username == "sup-a":  # keys:read: the chosen cabinet's keys on the fleet page
            assert 'data-key="K-A1"' in browser.get("/console/fleet?cabinet=cab-a").text


def test_the_cabinets_list_pages_by_cabinet_id(fleet: Hub) -> None:
    """Item 4: ``/hub/v1/cabinets`` takes ``limit`` and ``after`` (the last cabinet id seen)
    like the events list, and a scoped account's pages hold its site only."""
    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    first = _get(fleet.client, "/hub/v1/cabinets?limit=1", admin)
    assert [c["cabinet_id"] for c in first] == ["cab-a"]
    rest = _get(fleet.client, "/hub/v1/cabinets?limit=1&after=cab-a", admin)
    assert [c["cabinet_id"] for c in rest] == ["cab-b"]
    assert _get(fleet.client, "/hub/v1/cabinets?after=cab-b", admin) == []
    sup = fleet.token("sup-a2", AccountRole.SUPERVISOR)
    fleet.client.put("/hub/v1/accounts/sup-a2/site", json={"site": "tower-a"}, headers=admin)
    assert _get(fleet.client, "/hub/v1/cabinets?after=cab-a", sup) == []
    assert fleet.client.get("/hub/v1/cabinets?limit=0", headers=admin).status_code == 422


def test_site_settings_are_set_at_the_hub_per_site_within_the_scope(fleet: Hub) -> None:
    """Settings per site (business hours, PIN, alarm owners, letterhead) are written at the
    hub; a setting that is the cabinet's own (hardware) is refused with 422; an account
    scoped to tower A neither reads nor writes tower B's (404, as if it did not exist)."""
    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    client = fleet.client
    hours = {"business_hours": {"start": "07:00", "end": "20:00"}, "site": {
        "company_name": "百富物业", "building_name": "B 座"}}
    put = client.put("/hub/v1/sites/tower-b/settings", json=hours, headers=admin)
    assert put.status_code == 200, put.text
    assert put.json()["settings"]["business_hours"]["start"] == "07:00:00"
    got = _get(client, "/hub/v1/sites/tower-b/settings", admin)
    assert got["settings"]["site"]["building_name"] == "B 座"
    wrong = client.put("/hub/v1/sites/tower-b/settings",
                       json={"hardware": {"bus": "rs485"}}, headers=admin)
    assert wrong.status_code == 422 and "hardware" in wrong.text
    assert _get(client, "/hub/v1/sites/tower-b/settings", admin)["settings"] == got[
        "settings"]  # a refused write loses nothing

    adm_a = fleet.token("adm-a", AccountRole.ADMIN)
    client.put("/hub/v1/accounts/adm-a/site", json={"site": "tower-a"}, headers=admin)
    assert client.get("/hub/v1/sites/tower-b/settings", headers=adm_a).status_code == 404
    assert client.put("/hub/v1/sites/tower-b/settings", json={},
                      headers=adm_a).status_code == 404
    mine = client.put("/hub/v1/sites/tower-a/settings", json={"pin": {"after_hours": True}},
                      headers=adm_a)
    assert mine.status_code == 200 and mine.json()["settings"]["pin"]["after_hours"] is True
