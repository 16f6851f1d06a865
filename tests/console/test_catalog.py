"""Every label the console shows exists in zh-CN and English (issue 11: zh-CN first with
an English switch), and the pages switch language by cookie or query."""

from __future__ import annotations

import re
from pathlib import Path

from api.console.messages import MESSAGES
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World
from tests.console.conftest import console_user

CONSOLE = Path(__file__).resolve().parents[2] / "api" / "console"
USES = [
    re.compile(r"""\bt\(\s*'([a-z_.0-9]+)'"""),  # templates: t('nav.keys')
    re.compile(r"""\bctx\.t\(\s*"([a-z_.0-9]+)\""""),  # modules: ctx.t("form.refused")
    re.compile(r"""'(?:label|title|button|hint)':\s*'([a-z_.0-9]+)'"""),  # form field dicts
    re.compile(r"""\b(?:title_id|message_id)=["']([a-z_.0-9]+)["']"""),
    re.compile(r"""\bRefused\(\d+,\s*"([a-z_.0-9]+)"\)"""),
]


FLASH = re.compile(r'flash\s*=\s*"([a-z_]+)"')


def _used_ids() -> set[str]:
    found: set[str] = set()
    for path in list(CONSOLE.glob("*.py")) + list((CONSOLE / "templates").glob("*.html")):
        text = path.read_text(encoding="utf-8")
        for pattern in USES:
            found.update(i for i in pattern.findall(text) if not i.endswith("."))
        found.update(f"flash.{f}" for f in FLASH.findall(text))
    return found


def test_every_used_label_has_both_languages() -> None:
    used = _used_ids()
    assert len(used) > 150  # the scan does find the labels
    missing = sorted(i for i in used if i not in MESSAGES)
    assert missing == []
    for message_id, (zh, en) in MESSAGES.items():
        assert zh.strip() and en.strip(), message_id
        assert re.search(r"[\u4e00-\u9fff]", zh) or zh == en or message_id == "lang.other" or (
            not re.search(r"[A-Za-z]{4,}", zh)), message_id


def test_chinese_first_then_english_by_query_and_cookie(world: World) -> None:
    user = console_user(world, AccountRole.SUPERVISOR)
    page = user.get("/console/alarms")
    assert '<html lang="zh-CN">' in page.text and "告警" in page.text
    page = user.get("/console/alarms?lang=en")
    assert '<html lang="en">' in page.text and "Alarms" in page.text
    page = user.get("/console/alarms")  # the choice is remembered
    assert '<html lang="en">' in page.text


def test_a_filter_left_at_all_is_no_filter(world: World) -> None:
    """Filter forms send every field; an empty one (all states, any floor) is no filter."""
    user = console_user(world, AccountRole.CUSTODIAN)
    assert user.get("/console/keys?q=&room=1201&floor=&status=").status_code == 200
    assert user.get("/console/alarms?state=&kind=&owner_id=").status_code == 200
    assert user.get("/console/keys?floor=abc").status_code == 422


def test_pages_run_no_inline_script_or_style() -> None:
    """Every script is a vendored or own file and no markup carries a handler or a style
    attribute, so a strict Content-Security-Policy (script-src 'self') can be applied."""
    offending = []
    for path in (CONSOLE / "templates").glob("*.html"):
        text = path.read_text(encoding="utf-8")
        for pattern in (r"<script(?![^>]*\bsrc=)", r"\son[a-z]+\s*=", r"\sstyle\s*=",
                        r"javascript:", r"https?://"):
            if re.search(pattern, text):
                offending.append(f"{path.name}: {pattern}")
    assert offending == []
