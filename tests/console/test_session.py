"""The console's sign-in, session cookie, CSRF defence, idle timeout and lockout: the API's
own login service behind a cookie (issue 11, item 2)."""

from __future__ import annotations

import datetime as dt

import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from kiosk.store.models import Alarm, AlarmState, Event
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World
from tests.console.conftest import CSRF, PASSWORD, ConsoleUser, console_user


def test_sign_in_sets_a_strict_httponly_cookie_and_logs_the_login(world: World) -> None:
    world.token(AccountRole.SUPERVISOR, username="sup-one")
    user = ConsoleUser(world)
    response = user.login("sup-one")
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "kc_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over HTTPS the flag is set (next test)
    with world.audit.engine.connect() as c:
        types = [t for (t,) in c.execute(select(Event.type).where(Event.type == "auth.login"))]
    assert types  # the API's own login ran: same audit event


def test_over_https_the_session_cookie_is_secure(world: World) -> None:
    world.token(AccountRole.AUDITOR, username="aud-tls")
    client = TestClient(world.client.app, base_url="https://testserver", follow_redirects=False)
    page = client.get("/console/login")
    token = CSRF.search(page.text)
    assert token
    response = client.post("/console/login", data={
        "csrf": token.group(1), "username": "aud-tls", "password": PASSWORD},
        headers={"Origin": "https://testserver"})
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


def test_wrong_password_is_shown_beside_the_field_in_both_languages(world: World) -> None:
    world.token(AccountRole.AUDITOR, username="aud-two")
    user = ConsoleUser(world)
    response = user.login("aud-two", "not the password")
    assert response.status_code == 401
    assert 'id="password-error">用户名或密码错误' in response.text
    user.client.get("/console/login?lang=en")
    response = user.login("aud-two", "still not it")
    assert 'id="password-error">Wrong username or password' in response.text


def test_the_api_lockout_applies_to_the_console(world: World) -> None:
    """Five failures lock the account (AuthPolicy.max_failures), whichever door they came by."""
    world.token(AccountRole.AUDITOR, username="aud-lock")
    user = ConsoleUser(world)
    for _ in range(5):
        assert user.login("aud-lock", "wrong password!").status_code == 401
    locked = user.login("aud-lock")  # the right password, too late
    assert locked.status_code == 429 and "尝试次数过多" in locked.text
    api = world.client.post("/api/v1/auth/login",
                            json={"username": "aud-lock", "password": PASSWORD})
    assert api.status_code == 429


def test_a_cross_site_form_post_is_refused(world: World) -> None:
    """Another site's page posting to the console: refused by the Origin check even with a
    valid token, and by the token check without one (issue 11 tests: CSRF)."""
    alarm = Alarm(kind="door_forced", message="门被强行打开")
    world.add(alarm)
    user = console_user(world, AccountRole.DUTY_MANAGER, person=world.ids["manager"])
    path = f"/console/alarms/{alarm.id}/acknowledge"
    evil = user.client.post(path, data={"csrf": user.csrf, "note": "x"},
                            headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and "其他网站" in evil.text
    no_token = user.client.post(path, data={"note": "x"}, headers={"Origin": "http://testserver"})
    assert no_token.status_code == 403
    wrong = user.client.post(path, data={"csrf": "0" * 64, "note": "x"})
    assert wrong.status_code == 403
    fetch_meta = user.client.post(path, data={"csrf": user.csrf, "note": "x"},
                                  headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch_meta.status_code == 403
    null_origin = user.client.post(path, data={"csrf": user.csrf, "note": "x"},
                                   headers={"Origin": "null"})
    assert null_origin.status_code == 403
    with world.audit.engine.connect() as c:
        state = c.execute(select(Alarm.state).where(Alarm.id == alarm.id)).scalar_one()
    assert state == AlarmState.OPEN  # nothing was done
    ok = user.post(path, {"note": "到场"})
    assert ok.status_code == 303


def test_login_form_needs_its_own_token(world: World) -> None:
    world.token(AccountRole.AUDITOR, username="aud-csrf")
    client = TestClient(world.client.app, follow_redirects=False)
    response = client.post("/console/login", data={"username": "aud-csrf", "password": PASSWORD})
    assert response.status_code == 403


def test_logout_ends_the_session_everywhere(world: World) -> None:
    user = console_user(world, AccountRole.SUPERVISOR)
    secret = user.client.cookies.get("kc_session")
    assert user.post("/console/logout").status_code == 303
    again = TestClient(world.client.app, follow_redirects=False)
    again.cookies.set("kc_session", secret or "", path="/console")
    assert again.get("/console/alarms").status_code == 303  # to the sign-in page
    api = world.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 401  # the same token, revoked by the API's logout


def test_idle_timeout_but_activity_keeps_the_session(world: World) -> None:
    """15 minutes idle signs out; a page every 10 minutes keeps the person signed in."""
    start = dt.datetime.now(dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        user = console_user(world, AccountRole.SUPERVISOR)
        for _ in range(3):  # 30 minutes of work, a page every 10 minutes
            clock.shift(dt.timedelta(minutes=10))
            assert user.get("/console/alarms").status_code == 200
        clock.shift(dt.timedelta(minutes=16))
        gone = user.get("/console/alarms")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/console/login")


def test_the_dashboards_own_refresh_is_not_activity(world: World) -> None:
    """An unattended dashboard polls every 5 s; that alone does not keep it signed in."""
    start = dt.datetime.now(dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        user = console_user(world, AccountRole.SUPERVISOR)
        for _ in range(3):  # polled for 12 minutes: still signed in, and no longer
            clock.shift(dt.timedelta(minutes=4))
            assert user.get("/console/live", headers={"HX-Request": "true"}).status_code == 200
        clock.shift(dt.timedelta(minutes=4))
        gone = user.get("/console/live", headers={"HX-Request": "true"})
        assert gone.status_code == 401 and gone.headers["HX-Redirect"] == "/console/login"


def test_an_api_token_is_not_a_console_session(world: World) -> None:
    """A long-lived API token put in the cookie does not open the console."""
    from kiosk.services import accounts, tx

    with tx.write(world.audit) as session:
        account = accounts.create_account(
            session, world.audit, by=None, username="int-bot", password=PASSWORD,
            role=AccountRole.ADMIN, policy=world.policy)
        _, secret = accounts.create_api_token(
            session, world.audit, by=None, account_id=account.id, name="bot",
            scopes=["alarms:read"], expires_at=None)
    client = TestClient(world.client.app, follow_redirects=False)
    client.cookies.set("kc_session", secret, path="/console")
    assert client.get("/console/alarms").status_code == 303


def test_a_stored_name_renders_as_text(world: World) -> None:
    """Issue 11: ``<img src=x onerror=alert(1)>`` stored as a name shows as text."""
    evil = "<img src=x onerror=alert(1)>"
    person = world.person("X001", dept="A")
    with world.audit.engine.begin() as c:
        from kiosk.store.models import Person

        c.execute(update(Person).where(Person.id == person).values(name=evil))
    user = console_user(world, AccountRole.ADMIN)
    for path in ("/console/people", f"/console/people/{person}", "/console/rights"):
        page = user.get(path)
        assert page.status_code == 200
        assert evil not in page.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in page.text


def test_next_never_leaves_the_console(world: World) -> None:
    world.token(AccountRole.AUDITOR, username="aud-next")
    user = ConsoleUser(world)
    page = user.client.get("/console/login?next=//evil.example/x")
    token = CSRF.search(page.text)
    assert token
    response = user.client.post("/console/login", data={
        "csrf": token.group(1), "username": "aud-next", "password": PASSWORD,
        "next": "//evil.example/x"}, headers={"Origin": "http://testserver"})
    assert response.headers["location"] == "/console/"


def test_a_link_opens_its_page_after_signing_in(world: World) -> None:
    """A link from a message (``/console/alarms?state=open``) survives the sign-in."""
    world.token(AccountRole.SUPERVISOR, username="sup-link")
    user = ConsoleUser(world)
    first = user.client.get("/console/alarms?state=open&kind=door_forced")
    assert first.status_code == 303
    login = user.client.get(first.headers["location"])
    token = CSRF.search(login.text)
    assert token and 'name="next" value="/console/alarms?state=open&amp;kind=door_forced"' in \
        login.text
    done = user.client.post("/console/login", data={
        "csrf": token.group(1), "username": "sup-link", "password": PASSWORD,
        "next": "/console/alarms?state=open&kind=door_forced"},
        headers={"Origin": "http://testserver"})
    assert done.headers["location"] == "/console/alarms?state=open&kind=door_forced"
