"""Issue 16: the attacks an outside review ran against the admin listener, each refused.

The listener is served by uvicorn exactly as the daemon configures it (``kiosk.daemon``'s
``_server``) on a loopback port, and attacked over a real socket: a request body is what the
server does or does not read, and ``X-Forwarded-For`` is what the server does or does not
believe, so neither can be shown through an in-process client.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypedDict

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.app import create_admin_app
from api.deps import AdminOptions
from api.limits import BodyLimits
from kiosk.config import Settings
from kiosk.daemon import _server
from kiosk.runtime import Runtime
from kiosk.services import accounts, tx
from kiosk.services import events as events_service
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models import Event
from kiosk.store.models_auth import AccountRole
from kiosk.store.types import utcnow
from tests.api.conftest import FAST_HASHER, World, build_world
from tests.ports import free_port

V1 = "/api/v1"
PASSWORD = "correct horse battery"
HUGE = 400 * 1024 * 1024
"""The reviewer's body size: 400 MiB, which the test never actually sends."""


@contextmanager
def serve(app: object, settings: Settings, *, proxies: tuple[str, ...] = ()) -> Iterator[str]:
    """``app`` on uvicorn with the daemon's own server configuration, in a thread."""
    port = free_port()
    server = _server(app, "127.0.0.1", port, settings.model_copy(update={"log_level": "WARNING"}),
                     trusted_proxies=proxies)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _raw(address: str, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` and ``body`` on a socket; the server's answer (status, headers, body).

    A server that waits for the rest of the body never answers: the socket's timeout then
    fails the test.
    """
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before an answer: {data!r}"
            data += chunk
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return status, headers, rest


def _login_head(address: str, framing: str) -> bytes:
    return (f"POST {V1}/auth/login HTTP/1.1\r\nHost: {address}\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n").encode()


# ------------------------------------------------------------------ item 1: body limits
def test_a_huge_login_body_is_refused_before_it_is_read(runtime: Runtime) -> None:
    """400 MiB announced to /auth/login: 413 problem+json while the body is still unsent,
    so the server cannot have buffered it; a chunked body is cut off at the limit."""
    app = create_admin_app(runtime, AdminOptions(auth_policy=AuthPolicy(hasher=FAST_HASHER)))
    with serve(app, runtime.settings) as address:
        # Only the headers and the first bytes go out; the other 400 MiB never do. The answer
        # comes anyway: the server did not wait to read (or hold) the body.
        status, headers, body = _raw(address, _login_head(address, f"Content-Length: {HUGE}"),
                                     b'{"username": "')
        assert status == 413
        assert headers["content-type"] == "application/problem+json"
        problem = json.loads(body)
        assert problem["type"].endswith(":too-large") and str(HUGE) in problem["detail"]

        # Chunked (no length given): counted as it arrives, refused once past the limit,
        # without the terminating chunk ever being sent.
        limit = BodyLimits().json_bytes
        chunk = b"x" * 8192
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk)
                          for _ in range(limit // len(chunk) + 2))
        status, headers, body = _raw(
            address, _login_head(address, "Transfer-Encoding: chunked"), chunks)
        assert status == 413
        assert json.loads(body)["type"].endswith(":too-large")

        # A normal login still works on the same listener.
        ok = httpx.post(f"http://{address}{V1}/auth/login",
                        json={"username": "nobody", "password": "x"}, timeout=10)
        assert ok.status_code == 401


def test_import_routes_take_the_larger_stated_limit() -> None:
    limits = BodyLimits()
    assert limits.for_path(f"{V1}/people/import") == limits.import_bytes
    assert limits.for_path(f"{V1}/keys/imports") == limits.import_bytes
    assert limits.for_path(f"{V1}/imports/people/preview") == limits.import_bytes
    assert limits.for_path(f"{V1}/auth/login") == limits.json_bytes < limits.import_bytes


def test_requests_beyond_the_listener_limit_get_503(world: World, runtime: Runtime) -> None:
    """Open event streams hold the listener's two places; a third request is 503 at once,
    and is served again when a place frees."""
    auditor = world.token(AccountRole.AUDITOR)
    app = create_admin_app(runtime, AdminOptions(
        auth_policy=world.policy, max_concurrent_requests=2, stream_heartbeat_seconds=0.2))
    with serve(app, runtime.settings) as address, httpx.Client(
            base_url=f"http://{address}", headers=auditor, timeout=10) as client:
        with client.stream("GET", f"{V1}/events/stream") as one, \
                client.stream("GET", f"{V1}/events/stream") as two:
            assert one.status_code == two.status_code == 200
            busy = client.get(f"{V1}/health")
            assert busy.status_code == 503
            assert busy.headers["content-type"] == "application/problem+json"
            assert busy.headers["retry-after"] == "1"
        # The server notices the closed streams at their next heartbeat; then it serves again.
        statuses = []
        for _ in range(100):
            statuses.append(client.get(f"{V1}/health").status_code)
            if statuses[-1] == 200:
                break
            threading.Event().wait(0.05)
        assert statuses[-1] == 200, statuses


# ------------------------------------------------------------- item 2: password change
def _login(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    """A password login (a ``TestClient`` is an ``httpx.Client``)."""
    return client.post(f"{V1}/auth/login", json={"username": username, "password": password})


def test_wrong_current_passwords_lock_the_account_and_are_events(world: World) -> None:
    world.token(AccountRole.SUPERVISOR, username="li.na")
    session_token = _login(world.client, "li.na").json()["access_token"]
    headers = {"Authorization": f"Bearer {session_token}"}
    for i in range(world.policy.max_failures):
        got = world.client.post(f"{V1}/auth/password", headers=headers,
                                json={"current_password": f"guess-{i:04d}-x",
                                      "new_password": "a new long password"})
        assert got.status_code == 403, got.text
    # The guesses locked the account: now even the right password is refused, and so is a
    # further guess, however it is made.
    assert _login(world.client, "li.na").status_code == 429
    guess = world.client.post(f"{V1}/auth/password", headers=headers,
                              json={"current_password": PASSWORD,
                                    "new_password": "a new long password"})
    assert guess.status_code == 429 and int(guess.headers["retry-after"]) > 0
    with Session(world.runtime.engine) as session:
        failed = session.scalars(select(Event).where(Event.type == "auth.failed")).all()
        types = session.scalars(select(Event.type)).all()
    assert len(failed) == world.policy.max_failures + 1
    assert json.loads(failed[0].payload)["via"] == "password_change"
    assert "auth.account_locked" in types


def test_an_api_token_cannot_change_the_password(world: World) -> None:
    admin = world.token(AccountRole.ADMIN)
    world.token(AccountRole.AUDITOR, username="reader")
    account_id = world.client.get(f"{V1}/accounts", headers=admin).json()["items"]
    reader = next(a for a in account_id if a["username"] == "reader")
    made = world.client.post(f"{V1}/api-tokens", headers=admin, json={
        "account_id": reader["id"], "name": "feed", "scopes": ["events:read"]})
    api = {"Authorization": f"Bearer {made.json()['token']}"}
    # Even with the right current password: an integration's token never takes the account.
    got = world.client.post(f"{V1}/auth/password", headers=api,
                            json={"current_password": PASSWORD,
                                  "new_password": "a new long password"})
    assert got.status_code == 403 and "API token" in got.json()["detail"]
    assert _login(world.client, "reader").status_code == 200


# ------------------------------------------------------------- item 7: credentials end
def _api_token(world: World, account: str, scopes: list[str],
               expires_at: dt.datetime | None = None) -> dict[str, str]:
    with tx.write(world.audit) as session:
        found = accounts.find_by_username(session, account)
        assert found is not None
        _, secret = accounts.create_api_token(session, world.audit, by=None, account_id=found.id,
                                              name="integration", scopes=scopes,
                                              expires_at=expires_at)
    return {"Authorization": f"Bearer {secret}"}


def test_password_change_and_reset_end_the_accounts_api_tokens(world: World) -> None:
    admin = world.token(AccountRole.ADMIN)
    world.token(AccountRole.AUDITOR, username="wang.fang")
    api = _api_token(world, "wang.fang", ["events:read"])
    assert world.client.get(f"{V1}/events", headers=api).status_code == 200
    own = {"Authorization": f"Bearer {_login(world.client, 'wang.fang').json()['access_token']}"}
    changed = world.client.post(f"{V1}/auth/password", headers=own, json={
        "current_password": PASSWORD, "new_password": "another long password"})
    assert changed.status_code == 204
    assert world.client.get(f"{V1}/events", headers=api).status_code == 401
    assert world.client.get(f"{V1}/auth/me", headers=own).status_code == 200  # this one stays

    api = _api_token(world, "wang.fang", ["events:read"])
    reader = next(a for a in world.client.get(f"{V1}/accounts", headers=admin).json()["items"]
                  if a["username"] == "wang.fang")
    reset = world.client.post(f"{V1}/accounts/{reader['id']}/password", headers=admin,
                              json={"password": "a third long password"})
    assert reset.status_code == 204
    assert world.client.get(f"{V1}/events", headers=api).status_code == 401
    assert world.client.get(f"{V1}/auth/me", headers=own).status_code == 401


class StreamTimes(TypedDict):
    stream_heartbeat_seconds: float
    stream_max_seconds: float


SLOW_STREAM: StreamTimes = {"stream_heartbeat_seconds": 25.0, "stream_max_seconds": 40.0}
"""A stream that, left alone, would send a heartbeat and live on for 40 seconds."""


def _read_until_end(stream: httpx.Response) -> list[str]:
    """Every line until the server ends the stream (a read timeout fails the test)."""
    return list(stream.iter_lines())


def test_an_open_event_stream_ends_when_its_token_is_revoked(
    world: World, runtime: Runtime
) -> None:
    admin = world.token(AccountRole.ADMIN)
    world.token(AccountRole.AUDITOR, username="feed.reader")
    api = _api_token(world, "feed.reader", ["events:read"])
    token_id = world.client.get(f"{V1}/api-tokens", headers=admin).json()[0]["id"]
    app = create_admin_app(runtime, AdminOptions(auth_policy=world.policy, **SLOW_STREAM))
    with serve(app, runtime.settings) as address, httpx.Client(
            base_url=f"http://{address}", timeout=httpx.Timeout(10, read=20)) as client, \
            client.stream("GET", f"{V1}/events/stream", headers=api) as stream:
        assert stream.status_code == 200
        revoked = client.post(f"{V1}/api-tokens/{token_id}/revoke", headers=admin)
        assert revoked.status_code == 200
        lines = _read_until_end(stream)
    # Nothing after the revocation reached the revoked token, not even the revocation itself,
    # and the stream ended before its first heartbeat.
    assert not any(line.startswith(("data:", ": keep-alive")) for line in lines), lines


def test_a_revocation_between_the_check_and_the_read_reaches_no_event(
    world: World, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The revocation commits just before the stream reads its next batch, the race a fresh-clone
    CI run once lost on PostgreSQL: the revoked token received the revocation's own event. The
    stream now reads first and checks the token after, so whatever it read was committed while
    the token still held."""
    admin = world.token(AccountRole.ADMIN)
    world.token(AccountRole.AUDITOR, username="feed.racer")
    api = _api_token(world, "feed.racer", ["events:read"])
    token_id = world.client.get(f"{V1}/api-tokens", headers=admin).json()[0]["id"]
    app = create_admin_app(runtime, AdminOptions(auth_policy=world.policy, **SLOW_STREAM))
    read_after = events_service.after
    with serve(app, runtime.settings) as address, httpx.Client(
            base_url=f"http://{address}", timeout=httpx.Timeout(10, read=20)) as client:
        revoked: list[int] = []

        def revoke_then_read(session: Session, **kwargs: Any) -> Any:
            if not revoked:  # the stream's first read: the administrator is a moment faster
                revoked.append(client.post(f"{V1}/api-tokens/{token_id}/revoke",
                                           headers=admin).status_code)
            return read_after(session, **kwargs)

        monkeypatch.setattr(events_service, "after", revoke_then_read)
        with client.stream("GET", f"{V1}/events/stream", headers=api) as stream:
            assert stream.status_code == 200
            lines = _read_until_end(stream)
    assert revoked == [200]
    assert not any(line.startswith(("data:", ": keep-alive")) for line in lines), lines


def test_an_open_event_stream_ends_when_its_token_expires(world: World, runtime: Runtime) -> None:
    world.token(AccountRole.AUDITOR, username="short.lived")
    app = create_admin_app(runtime, AdminOptions(auth_policy=world.policy, **SLOW_STREAM))
    with serve(app, runtime.settings) as address, httpx.Client(
            base_url=f"http://{address}", timeout=httpx.Timeout(10, read=35)) as client:
        # Made once the server is up, so it is still valid when the stream opens; 12 s, as
        # signing in and making the token took over 6 s once on a loaded CI machine.
        api = _api_token(world, "short.lived", ["events:read"],
                         expires_at=utcnow() + dt.timedelta(seconds=12))
        with client.stream("GET", f"{V1}/events/stream", headers=api) as stream:
            assert stream.status_code == 200
            lines = _read_until_end(stream)
        # It ended when the token did (12 s), before its first heartbeat (25 s).
        assert ": keep-alive" not in lines, lines
        assert client.get(f"{V1}/events", headers=api).status_code == 401


# ---------------------------------------------------------- item 8: client address
def _remotes(runtime: Runtime) -> list[str]:
    with Session(runtime.engine) as session:
        rows = session.scalars(select(Event).where(Event.type == "auth.login_failed")).all()
    return [json.loads(r.payload)["remote"] for r in rows]


def test_x_forwarded_for_is_believed_only_from_configured_proxies(runtime: Runtime) -> None:
    app = create_admin_app(runtime, AdminOptions(auth_policy=AuthPolicy(hasher=FAST_HASHER)))
    spoof = {"X-Forwarded-For": "203.0.113.9"}
    with serve(app, runtime.settings) as address:
        httpx.post(f"http://{address}{V1}/auth/login", headers=spoof,
                   json={"username": "x", "password": "y"}, timeout=10)
    assert _remotes(runtime) == ["127.0.0.1"]  # default: no proxy trusted, the peer counts

    with serve(app, runtime.settings, proxies=("127.0.0.1",)) as address:
        httpx.post(f"http://{address}{V1}/auth/login", headers=spoof,
                   json={"username": "x", "password": "y"}, timeout=10)
    assert _remotes(runtime) == ["127.0.0.1", "203.0.113.9"]  # a configured proxy's word


def test_the_daemon_default_trusts_no_proxy() -> None:
    assert Settings().admin_trusted_proxies == []


def test_successful_logins_do_not_use_up_the_address_budget(runtime: Runtime) -> None:
    policy = AuthPolicy(hasher=FAST_HASHER, remote_max_attempts=3)
    app = create_admin_app(runtime, AdminOptions(auth_policy=policy))
    with TestClient(app) as client:
        world = build_world(runtime, client, policy)
        world.token(AccountRole.CUSTODIAN, username="front.desk")
        for _ in range(5):  # a shared office PC: many colleagues log in fine
            assert _login(client, "front.desk").status_code == 200
        for _ in range(2):
            assert _login(client, "front.desk", "wrong password").status_code == 401
        assert _login(client, "front.desk").status_code == 200
        assert _login(client, "someone", "wrong").status_code == 401
        assert _login(client, "someone", "wrong").status_code == 429
