"""``[notifications]``: every mistake is a start-up error that names the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.config import Settings, load_settings
from kiosk.errors import ConfigError

SMTP = """
[notifications.smtp]
host = "mail.tower.example"
from_address = "kiosk@tower.example"
"""
HOOK = """
[notifications.webhooks.ops]
url = "https://ops.tower.example/hooks/kiosk"
secret = "0123456789abcdef-secret"
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("KIOSK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def load(tmp_path: Path, text: str) -> Settings:
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(text, encoding="utf-8")
    return load_settings(cfg)


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    return str(err.value)


def test_defaults_are_off_and_bounded(tmp_path: Path) -> None:
    n = load(tmp_path, "").notifications
    assert n.active is False and n.routes == [] and n.smtp is None
    assert (n.max_attempts, n.backoff_initial_s, n.backoff_max_s) == (8, 30.0, 3600.0)


def test_a_full_section_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_NOTIFICATIONS__SMTP__PASSWORD", "from-the-environment")
    n = load(tmp_path, SMTP + 'username = "kiosk"\nsecurity = "tls"\nport = 465\n' + HOOK + """
[notifications]
max_attempts = 5
backoff_initial_s = 10
backoff_max_s = 600

[[notifications.routes]]
events = ["alarm.*", "report.generated"]
email = ["supervisor@tower.example"]
webhooks = ["ops"]
""").notifications
    assert n.active and n.max_attempts == 5
    assert n.smtp is not None and n.smtp.password is not None
    assert n.smtp.password.get_secret_value() == "from-the-environment"
    assert "from-the-environment" not in repr(n) and "0123456789abcdef" not in repr(n)
    assert str(n.webhooks["ops"].url) == "https://ops.tower.example/hooks/kiosk"
    assert n.routes[0].events == ["alarm.*", "report.generated"]


def test_a_route_naming_an_unknown_webhook(tmp_path: Path) -> None:
    message = refused(tmp_path, HOOK + """
[[notifications.routes]]
events = ["alarm.*"]
webhooks = ["opz"]
""")
    assert "option 'notifications'" in message
    assert "routes[0].webhooks: unknown webhook 'opz'" in message and "ops" in message


def test_email_routes_need_an_smtp_server(tmp_path: Path) -> None:
    message = refused(tmp_path, """
[[notifications.routes]]
events = ["alarm.*"]
email = ["supervisor@tower.example"]
""")
    assert "routes[0].email" in message and "[notifications.smtp]" in message


@pytest.mark.parametrize("address", ["supervisor.tower.example", "a b@tower.example",
                                     "a@b@tower.example", "sup@tower..example", "<x@y.z>"])
def test_malformed_addresses_are_named(tmp_path: Path, address: str) -> None:
    message = refused(tmp_path, SMTP + f"""
[[notifications.routes]]
events = ["alarm.*"]
email = ["ok@tower.example", "{address}"]
""")
    assert "notifications.routes.0.email.1" in message and "not an email address" in message


def test_malformed_from_address(tmp_path: Path) -> None:
    message = refused(tmp_path, SMTP.replace("kiosk@tower.example", "kiosk"))
    assert "notifications.smtp.from_address" in message


@pytest.mark.parametrize("url", ["ftp://ops.tower.example/x", "ops.tower.example/hook", ""])
def test_malformed_webhook_urls_are_named(tmp_path: Path, url: str) -> None:
    message = refused(tmp_path, HOOK.replace("https://ops.tower.example/hooks/kiosk", url))
    assert "notifications.webhooks.ops.url" in message


def test_a_short_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    message = refused(tmp_path, HOOK.replace("0123456789abcdef-secret", "hunter2"))
    assert "notifications.webhooks.ops.secret" in message and "16 to 256 characters" in message
    assert "hunter2" not in message


def test_routes_for_notification_events_are_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, HOOK + """
[[notifications.routes]]
events = ["notification.failed"]
webhooks = ["ops"]
""")
    assert "notifications.routes.0" in message and "never routed" in message


def test_a_route_needs_a_target_and_events(tmp_path: Path) -> None:
    assert "at least one email address, webhook, wecom or dingtalk robot" in refused(tmp_path, """
[[notifications.routes]]
events = ["alarm.*"]
""")
    assert "notifications.routes.0.events" in refused(tmp_path, HOOK + """
[[notifications.routes]]
events = []
webhooks = ["ops"]
""")


def test_bounds_and_unknown_options_are_named(tmp_path: Path) -> None:
    message = refused(tmp_path, "[notifications]\nmax_attempts = 0\nbackoff_max_s = 0\n")
    assert "notifications.max_attempts" in message and "ge 1" in message
    assert "notifications.backoff_max_s" in message
    assert "notifications.smtp.securty" in refused(tmp_path, SMTP + 'securty = "tls"\n')
    assert "must not exceed backoff_max_s" in refused(
        tmp_path, "[notifications]\nbackoff_initial_s = 120\nbackoff_max_s = 60\n")
    assert "username and password" in refused(tmp_path, SMTP + 'username = "kiosk"\n')


def test_disabled_routes_do_not_run(tmp_path: Path) -> None:
    n = load(tmp_path, HOOK + """
[notifications]
enabled = false
[[notifications.routes]]
events = ["alarm.*"]
webhooks = ["ops"]
""").notifications
    assert n.active is False
