"""Real receivers on loopback for the notification tests, and a clock the tests move.

- ``smtp``: an aiosmtpd ``Controller`` on 127.0.0.1 and a free port; every message that
  arrives is kept, parsed, in ``smtp.messages`` (optionally with AUTH LOGIN/PLAIN over
  plain text, which aiosmtpd allows when told to: loopback only).
- ``receiver``: a ``ThreadingHTTPServer`` on 127.0.0.1 that answers each POST with the next
  scripted status (the last one repeats) and records method, headers and body.
- ``clock``: the dispatcher's time; backoff is driven by advancing it, never by sleeping.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from kiosk.config import Settings
from kiosk.notify.settings import NotificationSettings
from kiosk.runtime import Runtime
from kiosk.services import tx
from kiosk.store.models import Key, KeyCategory, KeyGroup, Slot
from kiosk.store.types import utcnow
from tests.api.conftest import policy, world  # noqa: F401  (the admin API fixtures)
from tests.ports import free_port

SECRET = "s3cret-shared-with-the-receiver"


# ------------------------------------------------------------------------------- clock
class Clock:
    """A settable UTC clock, started at the real time so signatures look current."""

    def __init__(self) -> None:
        self.now = utcnow().replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


# -------------------------------------------------------------------------------- SMTP
@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, _server: Any, _session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.server.messages.append(parsed)
        self.server.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


def _start_smtp(*, users: dict[str, str] | None = None) -> tuple[SmtpServer, Controller]:
    server = SmtpServer("127.0.0.1", free_port())

    def authenticate(_server: Any, _session: Session, _envelope: Envelope, _mechanism: str,
                     data: Any) -> AuthResult:
        if isinstance(data, LoginPassword) and users is not None:
            login, password = data.login.decode(), data.password.decode()
            if users.get(login) == password:
                server.logins.append((login, password))
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    kwargs: dict[str, Any] = {}
    if users is not None:
        kwargs = {"authenticator": authenticate, "auth_require_tls": False,
                  "auth_required": True}
    controller = Controller(_Handler(server), hostname=server.host, port=server.port, **kwargs)
    controller.start()
    return server, controller


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server, controller = _start_smtp()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def smtp_with_login() -> Iterator[SmtpServer]:
    server, controller = _start_smtp(users={"kiosk": "mail-password-123"})
    try:
        yield server
    finally:
        controller.stop()


# ----------------------------------------------------------------------------- webhook
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A loopback HTTP receiver answering with scripted statuses."""

    url: str
    statuses: list[int]
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, *statuses: int) -> None:
        with self.lock:
            self.statuses[:] = list(statuses)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            time.sleep(0.01)


def _start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    receiver = Receiver(url="", statuses=[200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status = receiver.next_status()
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
            payload = b'{"ok": true}' if status < 300 else b'{"error": "scripted"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/kiosk"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return receiver, server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec, server = _start_receiver()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------ runtime
OpenRuntime = Callable[..., Runtime]


@pytest.fixture
def open_runtime(settings: Settings) -> Iterator[OpenRuntime]:
    """``open_runtime(notifications={...})``: a runtime on the test database with that
    ``[notifications]`` section; may be called again (a restart) on the same database."""
    opened: list[Runtime] = []

    def make(**notifications: Any) -> Runtime:
        section = NotificationSettings.model_validate(notifications)
        rt = Runtime.open(settings.model_copy(update={"notifications": section}))
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        rt.close()


def webhook_section(receiver: Receiver, *, events: list[str] | None = None,
                    **options: Any) -> dict[str, Any]:
    return {
        "backoff_initial_s": 10, "backoff_max_s": 60, "max_attempts": 3, **options,
        "webhooks": {"ops": {"url": receiver.url, "secret": SECRET, "timeout_s": 5}},
        "routes": [{"events": events or ["alarm.*"], "webhooks": ["ops"]}],
    }


@dataclass
class Tower:
    cabinet_id: Any
    slot_id: Any
    key_id: Any


def add_key(runtime: Runtime, *, key_number: str = "U1201", slot: int = 7) -> Tower:
    """A cabinet slot with a key at home, for alarms that name both."""
    cabinet = runtime.ensure_cabinet()
    with tx.write(runtime.audit) as session:
        group = KeyGroup(code=f"G-{key_number}", name="单元钥匙")
        row = Slot(cabinet_id=cabinet.id, number=slot)
        session.add_all([group, row])
        session.flush()
        key = Key(key_number=key_number, label=f"{key_number} 室", group_id=group.id,
                  category=KeyCategory.UNIT, home_slot_id=row.id)
        session.add(key)
        session.flush()
        return Tower(cabinet.id, row.id, key.id)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "kiosk.toml"
