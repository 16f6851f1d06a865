"""Issue 13 in the console: a key's page shows its fob chip and lets a supervisor pair it
(typed, or read from the key's slot) or clear it with a reason, through the same REST
operations (tests/api/test_key_fob.py); a refusal is shown on the page, nothing changes.

The admin app runs with the kiosk tests' identity rig attached (DS2482 simulator, real
drivers), signed in through the console's own form.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from drivers.identity.onewire import FobId
from kiosk.store.models import Key
from kiosk.store.models_auth import AccountRole
from tests.console.rig_console import CSRF, Rig, console_on_rig

ERROR = re.compile(r'<span class="error" id="([a-z0-9_-]+)-error">([^<]+)</span>')


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[tuple[Rig, httpx.AsyncClient]]:
    """A custodian (keys:write) signed in to the console of an identity cabinet."""
    async with console_on_rig(tmp_path, username="cust-13", role=AccountRole.CUSTODIAN,
                              identity=True) as pair:
        yield pair


def key_of(rig: Rig, key_number: str) -> Key:
    with Session(rig.runtime.engine) as s:
        return s.scalars(select(Key).where(Key.key_number == key_number)).one()


async def post(client: httpx.AsyncClient, url: str, data: dict[str, str]) -> httpx.Response:
    page = await client.get(url.rsplit("/fob", 1)[0])
    token = CSRF.search(page.text)
    assert token, page.text[:500]
    return await client.post(url, data={"csrf": token.group(1), **data},
                             headers={"Origin": "http://testserver"})


async def test_the_key_page_pairs_reads_and_clears_its_fob_chip(
    console: tuple[Rig, httpx.AsyncClient],
) -> None:
    rig, client = console
    key = key_of(rig, "U606")
    url = f"/console/keys/{key.id}"
    slot, _ = rig.key("U606")
    rom = key.fob_rom
    assert rom is not None
    page = (await client.get(url)).text
    assert f'<dd id="fob-rom"><code>{rom}</code>' in page  # paired at intake
    assert f'<code id="fob-seen">{rom}</code>' in page  # and read in its slot right now
    assert f"钥匙位 {slot} 上次扫描读到" in page

    cleared = await post(client, f"{url}/fob/clear", {"reason": "钥匙牌损坏"})
    assert cleared.status_code == 303, cleared.text
    page = (await client.get(cleared.headers["location"])).text
    assert "钥匙牌芯片配对已清除" in page and "未配对" in page
    assert 'action="/console/keys/' + str(key.id) + '/fob/clear"' not in page  # nothing to clear
    assert key_of(rig, "U606").fob_rom is None

    read = await post(client, f"{url}/fob/read", {})
    assert read.status_code == 303, read.text
    assert key_of(rig, "U606").fob_rom == rom
    assert "钥匙牌芯片已配对" in (await client.get(url)).text


async def test_a_wrong_or_taken_rom_is_refused_on_the_page_and_changes_nothing(
    console: tuple[Rig, httpx.AsyncClient],
) -> None:
    rig, client = console
    key = key_of(rig, "U606")
    url = f"/console/keys/{key.id}"
    good = FobId.build(0x01, 0x1234)
    bad = good.hex[:14] + f"{good.crc ^ 0x01:02X}"
    refused = await post(client, f"{url}/fob", {"rom": bad})
    assert refused.status_code == 409 and "CRC-8" in refused.text
    empty = await post(client, f"{url}/fob", {"rom": ""})
    assert empty.status_code == 422 and "fob-rom" in dict(ERROR.findall(empty.text))
    theirs = key_of(rig, "U701").fob_rom
    assert theirs is not None
    taken = await post(client, f"{url}/fob", {"rom": theirs})
    assert taken.status_code == 409 and "already paired with key U701" in taken.text
    assert key_of(rig, "U606").fob_rom == key.fob_rom

    typed = await post(client, f"{url}/fob", {"rom": good.hex.lower()})
    assert typed.status_code == 303, typed.text
    assert key_of(rig, "U606").fob_rom == good.hex
