"""Issue 13 in the console: the live cabinet grid says whether the cabinet reads key identity
or only presence, and per slot whether its key was identified, only seen present, or is
another key (K4, K10); the dashboard's K9 count card says how the count compared.

The admin app runs with a whole simulated cabinet attached (the kiosk tests' rig: real
drivers against the DS2482 and Kerong simulators), signed in through the console's own form.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kiosk.reports.data import COUNT_JOB
from kiosk.scheduler import Scheduler
from kiosk.store.models_auth import AccountRole
from tests.console.rig_console import Rig, console_on_rig


@pytest.fixture
async def identity_console(tmp_path: Path) -> AsyncIterator[tuple[Rig, httpx.AsyncClient]]:
    async with console_on_rig(tmp_path, username="sup-13", role=AccountRole.SUPERVISOR,
                              identity=True) as pair:
        yield pair


@pytest.fixture
async def presence_console(tmp_path: Path) -> AsyncIterator[tuple[Rig, httpx.AsyncClient]]:
    async with console_on_rig(tmp_path, username="sup-13", role=AccountRole.SUPERVISOR,
                              identity=False) as pair:
        yield pair


def tile(html: str, slot: int) -> str:
    found = re.search(rf'<li class="slot [^"]*" role="listitem" data-slot="{slot}"[^>]*>.*?</li>',
                      html, re.S)
    assert found, f"no tile for slot {slot}"
    return found.group(0)


async def test_the_grid_says_identity_and_which_slots_are_identified_K10(
    identity_console: tuple[Rig, httpx.AsyncClient],
) -> None:
    rig, client = identity_console
    (a, fob_a), (b, _) = rig.key("U606"), rig.key("U701")
    # U606's chip hung where U701 belongs (U701 taken out by someone with the service key)
    rig.hw.locks.unlock(b)
    rig.hw.model.take(b)
    rig.hw.locks.unlock(a)
    rig.hw.model.take(a)
    rig.hw.model.insert(fob_a, b)
    rig.hw.model.shut_slot(a)
    rig.hw.model.shut_slot(b)
    await rig.settle()
    rig.clock.advance(11 * 60)  # the receptors are swept while idle (a swap keeps presence)
    await rig.settle()

    live = (await client.get("/console/live")).text
    assert "钥匙识别：逐格读取钥匙牌芯片" in live
    slot_1 = min(n for n in rig.hw.model.slots if n not in (a, b))
    assert 'data-check="identified"' in tile(live, slot_1) and "已识别" in tile(live, slot_1)
    assert 'data-check="wrong_key"' in tile(live, b) and "错放" in tile(live, b)
    assert "data-check" not in tile(live, a)  # empty: nothing to identify

    # the K9 count card: compared by identity, with the tallies
    scheduler = Scheduler(rig.runtime, presence=rig.cabinet.last_scan,
                          identities=rig.cabinet.last_fobs, clock=rig.clock)
    now = rig.clock()
    job = next(j for j in scheduler.jobs if j.name == COUNT_JOB)
    assert scheduler.run_job(job, now.astimezone(rig.runtime.settings.zone).date(), now=now,
                             catch_up=False)
    dash = await client.get("/console/")
    assert dash.status_code == 200, dash.text[:2000]
    assert re.search(r"按钥匙身份核对：已识别 \d+，仅感应 \d+", dash.text)
    assert "处不符" in dash.text  # the count found the mismatches, and the card shows them


async def test_a_presence_only_cabinet_says_so_and_marks_every_key_present_only(
    presence_console: tuple[Rig, httpx.AsyncClient],
) -> None:
    rig, client = presence_console
    live = (await client.get("/console/live")).text
    assert "仅感应有无：本柜不能分辨钥匙" in live
    slot, _ = rig.key("U606")
    assert 'data-check="present_only"' in tile(live, slot) and "仅感应" in tile(live, slot)
    assert 'data-check="identified"' not in live
