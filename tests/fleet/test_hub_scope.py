"""Site-scoped roles at the hub (issue 12): two sites, a cabinet at each with its log shipped
up; a supervisor scoped to tower A sees tower A only, in the API and in the hub's console
(the fleet page with its site and cabinet filter); the fleet's administrator sees both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.deps import AdminOptions
from api.hub.app import create_hub_app
from kiosk.audit import NewEvent
from kiosk.config import Settings
from kiosk.fleet import hub
from kiosk.fleet.ingest import Batch, ingest
from kiosk.fleet.link import read_batch
from kiosk.runtime import Runtime
from kiosk.services import accounts
from kiosk.store.db import write_session
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import FAST_HASHER

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Hub:
    client: TestClient
    runtime: Runtime

    def token(self, username: str, role: AccountRole) -> dict[str, str]:
        policy = accounts.AuthPolicy(hasher=FAST_HASHER)
        with write_session(self.runtime.engine) as s:
            account = accounts.create_account(s, self.runtime.audit, by=None, username=username,
                                              password=PASSWORD, role=role, policy=policy)
            _, secret = accounts.issue_access_token(s, account=account, policy=policy)
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
        auth_policy=accounts.AuthPolicy(hasher=FAST_HASHER)))
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
            yield Hub(client, runtime)
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
    for path in ("/hub/v1/events?cabinet_id=cab-b", "/hub/v1/records?cabinet_id=cab-b"):
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
