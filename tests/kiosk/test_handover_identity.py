"""Issue 13 in the shift handover (H1): the frozen count says whether the keys "in the
cabinet" were identified by their fobs or only seen present, and the keeper's screen shows
it, so the incoming keeper knows what they sign for. Real drivers, simulated hardware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rig import Rig, close_rig, make_rig

from kiosk.store.models import Role

IDENTITY: dict[str, Any] = {"hardware": {"identity": {"enabled": True}}}


@pytest.fixture
async def irig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path, **IDENTITY)
    yield r
    await close_rig(r)


async def waiting_handover(rig: Rig) -> dict[str, Any]:
    uid, _ = rig.card_of(role=Role.CUSTODIAN, index=0)
    await rig.cabinet.tap(uid)
    await rig.cabinet.start_handover()
    waiting: dict[str, Any] = rig.cabinet.screen()["handover"]["waiting"]
    return waiting


async def test_H1_an_identity_cabinets_handover_counts_identified_keys(irig: Rig) -> None:
    waiting = await waiting_handover(irig)
    assert waiting["compared"] == "identity"
    # every demo key is paired and in: all identified, none only present
    assert waiting["identified"] == waiting["expected_in"] > 0
    assert waiting["present_only"] == 0


async def test_H1_a_presence_only_cabinets_handover_says_so(rig: Rig) -> None:
    waiting = await waiting_handover(rig)
    assert waiting["compared"] == "presence"
    assert waiting["identified"] == 0 and waiting["present_only"] == waiting["expected_in"]
