"""Every console form, sent empty: each refused field gets its message beside it (the
input points at it with ``aria-describedby``), in Chinese and in English (issue 11)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from kiosk.store.models import Alarm
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World
from tests.console.conftest import ConsoleUser, console_user

ERROR = re.compile(r'<span class="error" id="([a-z0-9_-]+)-error">([^<]+)</span>')
REQUIRED = {"zh": "必填", "en": "Required"}
CHOOSE_ONE = {"zh": "至少选择一项", "en": "Choose at least one"}

# path (with the world's ids) → the fields an empty post must refuse, and their message
FORMS: list[tuple[str, Callable[[World], str], dict[str, dict[str, str]]]] = [
    ("new person", lambda w: "/console/people",
     {"add-staff_no": REQUIRED, "add-name": REQUIRED}),
    ("issue card", lambda w: f"/console/people/{w.ids['staff_a']}/cards", {"card-uid": REQUIRED}),
    ("grant right", lambda w: "/console/rights",
     {"grant-key_group_id": REQUIRED, "grant-weekdays": REQUIRED}),
    ("add shift", lambda w: "/console/roster",
     {"add-person_id": REQUIRED, "add-starts_at": REQUIRED, "add-ends_at": REQUIRED}),
    ("new owner", lambda w: "/console/owners", {"add-name": REQUIRED}),
    ("register letter", lambda w: "/console/authorizations",
     {"add-owner_id": REQUIRED, "add-proxy_id": REQUIRED, "add-letter_ref": REQUIRED,
      "add-unit_ids": CHOOSE_ONE, "add-valid_from": REQUIRED, "add-valid_to": REQUIRED}),
    ("request approval", lambda w: "/console/approvals",
     {"requested_for_id": REQUIRED, "reason": REQUIRED, "valid_until": REQUIRED}),
    ("retire key", lambda w: f"/console/keys/{w.ids['key:U1202']}/retire",
     {"retire-reason": REQUIRED}),
    ("edit key", lambda w: f"/console/keys/{w.ids['key:U1202']}/edit",
     {"edit-label": REQUIRED}),
    ("pair fob", lambda w: f"/console/keys/{w.ids['key:U1202']}/fob", {"fob-rom": REQUIRED}),
    ("acknowledge alarm", lambda w: f"/console/alarms/{w.ids['alarm']}/acknowledge",
     {"acknowledge-note": REQUIRED}),
    ("new account", lambda w: "/console/accounts",
     {"add-username": REQUIRED, "add-password": REQUIRED, "add-role": REQUIRED}),
    ("new API token", lambda w: "/console/api-tokens",
     {"token-account_id": REQUIRED, "token-name": REQUIRED, "token-scopes": CHOOSE_ONE}),
]


@pytest.fixture
def admin(world: World) -> ConsoleUser:
    alarm = Alarm(kind="door_forced", message="门被强行打开")
    world.add(alarm)
    world.ids["alarm"] = alarm.id
    return console_user(world, AccountRole.ADMIN, person=world.ids["custodian"])


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_form_shows_each_error_beside_its_field(world: World, admin: ConsoleUser,
                                                      lang: str) -> None:
    admin.get(f"/console/?lang={lang}")
    problems: list[str] = []
    for name, path, expected in FORMS:
        page = admin.post(path(world), {})
        if page.status_code != 422:
            problems.append(f"{name}: {page.status_code}")
            continue
        shown = dict(ERROR.findall(page.text))
        for field, message in expected.items():
            if shown.get(field) != message[lang]:
                problems.append(f"{name}: {field} shows {shown.get(field)!r}")
            elif f'aria-describedby="{field}-error"' not in page.text:
                problems.append(f"{name}: {field} is not tied to its message")
    assert problems == []


def test_a_value_out_of_bounds_says_so(world: World, admin: ConsoleUser) -> None:
    page = admin.post(f"/console/keys/{world.ids['key:U1202']}/edit",
                      {"label": "x", "copies": "100"})
    assert dict(ERROR.findall(page.text)).get("edit-copies") == "不能大于 99"
    page = admin.post("/console/accounts", {"username": "ab", "password": "short",
                                            "role": "auditor"})
    shown: dict[str, Any] = dict(ERROR.findall(page.text))
    assert shown["add-username"] == "至少 3 个字符" and shown["add-password"] == "至少 10 个字符"
