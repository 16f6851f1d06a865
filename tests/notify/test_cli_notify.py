"""``kiosk notify test`` and ``kiosk notify log`` as an installer runs them: a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.config import load_settings
from kiosk.notify.webhook import verify_signature
from kiosk.store.types import utcnow
from tests.notify.conftest import SECRET, Receiver, SmtpServer


def kiosk(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    return subprocess.run([sys.executable, "-m", "kiosk", "--config", str(config), *args],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def config(tmp_path: Path, smtp: SmtpServer, receiver: Receiver) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(f"""
data_dir = "{tmp_path / 'var'}"
cabinet_id = "cab-cli"

[notifications.smtp]
host = "{smtp.host}"
port = {smtp.port}
security = "none"
from_address = "kiosk@tower.example"

[notifications.webhooks.ops]
url = "{receiver.url}"
secret = "{SECRET}"

[[notifications.routes]]
events = ["alarm.*"]
email = ["supervisor@tower.example"]
webhooks = ["ops"]
""", encoding="utf-8")
    return path


def test_notify_test_webhook_sends_a_signed_request(config: Path, receiver: Receiver) -> None:
    out = kiosk(config, "notify", "test", "--webhook", "ops")
    assert out.returncode == 0, out.stderr
    assert "webhook ops" in out.stdout and "delivered (200" in out.stdout
    [request] = receiver.requests
    h = request.headers
    assert h["X-Kiosk-Event"] == "notification.test"
    assert verify_signature(SECRET, h["X-Kiosk-Timestamp"], request.body,
                            h["X-Kiosk-Signature"], now=utcnow())


def test_notify_test_email_arrives(config: Path, smtp: SmtpServer) -> None:
    out = kiosk(config, "notify", "test", "--email", "installer@tower.example")
    assert out.returncode == 0, out.stderr
    assert f"via {smtp.host}:{smtp.port} (none)" in out.stdout and "delivered" in out.stdout
    [mail] = smtp.messages
    assert "测试通知 Test notification" in str(mail["Subject"])
    assert "cab-cli" in mail.get_content()


def test_notify_test_reports_failures_and_usage(config: Path, receiver: Receiver) -> None:
    receiver.script(503)
    out = kiosk(config, "notify", "test", "--webhook", "ops")
    assert out.returncode == 1 and "failed, will be retried 503" in out.stdout
    unknown = kiosk(config, "notify", "test", "--webhook", "chat")
    assert unknown.returncode == 1 and "no webhook 'chat' (configured: ops)" in unknown.stdout
    assert kiosk(config, "notify", "test").returncode == 2
    bad = kiosk(config, "notify", "test", "--email", "not-an-address")
    assert bad.returncode == 2 and "not an email address" in bad.stderr


async def test_notify_log_lists_recent_deliveries(config: Path, receiver: Receiver) -> None:
    from kiosk.audit import NewEvent
    from kiosk.notify.dispatcher import Dispatcher
    from kiosk.runtime import Runtime

    runtime = Runtime.open(load_settings(config))
    try:
        dispatcher = Dispatcher(runtime)
        await dispatcher.tick()
        receiver.script(400)
        runtime.audit.append(NewEvent(type="alarm.door_forced"))
        dispatcher.route()
        await dispatcher.send_due()
    finally:
        runtime.close()
    out = kiosk(config, "notify", "log")
    assert out.returncode == 0, out.stderr
    assert "alarm.door_forced" in out.stdout and "webhook" in out.stdout
    assert "failed" in out.stdout and "HTTP 400" in out.stdout
    assert "supervisor@tower.example" in out.stdout and "delivered" in out.stdout
    assert "2 of 2 deliveries" in out.stdout  # the email and the webhook
    failed = kiosk(config, "notify", "log", "--state", "failed")
    assert "1 of 1 deliveries (failed)" in failed.stdout
