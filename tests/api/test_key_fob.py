"""Issue 13: a key's fob chip paired or cleared from the admin API (keys:write), against a
whole simulated identity cabinet (the kiosk tests' rig: DS2482 bridge simulator, real
drivers) attached to the admin app.

What an administrator notices: the key shows its chip's ROM ID; a typed ROM is checked
(64 bits, 1-Wire CRC-8) and refused with the reason; "read from slot" takes what the
receptor read in the key's home slot at the last scan; a ROM another key has is a 409 that
names that key (K4: a return is never credited to the wrong key); every change is an
audit event with who and why.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from rig import Rig, close_rig, make_rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.app import create_admin_app
from api.deps import AdminOptions
from drivers.identity.onewire import FobId
from kiosk.services import accounts, tokens, tx
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models import Key
from kiosk.store.models_auth import AccountRole

V1 = "http://admin/api/v1"
POLICY = AuthPolicy(hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))
IDENTITY = {"hardware": {"identity": {"enabled": True}}}


@dataclass
class Admin:
    rig: Rig
    client: httpx.AsyncClient
    custodian: dict[str, str]

    def key_id(self, key_number: str) -> uuid.UUID:
        with Session(self.rig.runtime.engine) as s:
            return s.scalars(select(Key.id).where(Key.key_number == key_number)).one()

    async def key(self, key_number: str) -> dict[str, object]:
        got = await self.client.get(f"{V1}/keys/{self.key_id(key_number)}",
                                    headers=self.custodian)
        assert got.status_code == 200, got.text
        return dict(got.json())

    async def post(self, key_number: str, path: str, body: dict[str, object]) -> httpx.Response:
        return await self.client.post(f"{V1}/keys/{self.key_id(key_number)}{path}", json=body,
                                      headers=self.custodian)


def _token(rig: Rig, role: AccountRole, name: str) -> dict[str, str]:
    with tx.write(rig.runtime.audit) as session:
        account = accounts.create_account(
            session, rig.runtime.audit, by=None, username=name,
            password="correct horse battery", role=role, person_id=None, department_id=None,
            policy=POLICY,
        )
        _, secret = tokens.issue_access_token(session, account=account, policy=POLICY)
    return {"Authorization": f"Bearer {secret}"}


async def _admin(tmp_path: Path, **settings: Any) -> AsyncIterator[Admin]:
    rig = await make_rig(tmp_path, **settings)
    app = create_admin_app(rig.runtime, AdminOptions(auth_policy=POLICY), cabinet=rig.cabinet)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://admin") as client:
        yield Admin(rig, client, _token(rig, AccountRole.CUSTODIAN, "cust-13"))
    await close_rig(rig)


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async for a in _admin(tmp_path, **IDENTITY):
        yield a


def payload(rig: Rig, type_: str) -> list[dict[str, object]]:
    return [json.loads(e.payload) for e in rig.events(type_)]


async def test_a_key_shows_its_chip_and_a_cleared_one_is_logged_with_the_reason(
    admin: Admin,
) -> None:
    rig = admin.rig
    slot, _ = rig.key("U606")
    rom = rig.hw.model.fob_rom(slot)
    assert rom is not None
    assert (await admin.key("U606"))["fob_rom"] == rom.hex  # paired at intake (the demo)

    cleared = await admin.post("U606", "/fob/clear", {"reason": "钥匙牌损坏，已更换"})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["fob_rom"] is None
    event = rig.events("key.fob_cleared")[-1]
    assert event.key_number == "U606" and "K4" in event.rules and event.actors
    assert payload(rig, "key.fob_cleared")[-1]["fob_rom"] == rom.hex
    assert payload(rig, "key.fob_cleared")[-1]["reason"] == "钥匙牌损坏，已更换"

    again = await admin.post("U606", "/fob/clear", {"reason": "again"})
    assert again.status_code == 409 and "no fob paired" in again.json()["detail"]
    no_reason = await admin.post("U606", "/fob/clear", {})
    assert no_reason.status_code == 422
    assert len(rig.events("key.fob_cleared")) == 1


async def test_a_typed_rom_is_checked_and_stored_in_its_wire_form(admin: Admin) -> None:
    rig = admin.rig
    await admin.post("U606", "/fob/clear", {"reason": "新钥匙牌"})
    good = FobId.build(0x01, 0x0000_1234_5678)
    bad_crc = good.hex[:14] + f"{(good.crc ^ 0xFF):02X}"
    refused = await admin.post("U606", "/fob", {"rom": bad_crc})
    assert refused.status_code == 422 and "CRC-8" in refused.json()["detail"]
    short = await admin.post("U606", "/fob", {"rom": "01AB"})
    assert short.status_code == 422
    both = await admin.post("U606", "/fob", {"rom": good.hex, "from_slot": True})
    assert both.status_code == 422
    assert (await admin.key("U606"))["fob_rom"] is None  # nothing changed by a refusal

    typed = " ".join(good.hex[i:i + 2] for i in range(0, 16, 2)).lower()  # as on a label
    paired = await admin.post("U606", "/fob", {"rom": typed})
    assert paired.status_code == 200, paired.text
    assert paired.json()["fob_rom"] == good.hex
    assert payload(rig, "key.fob_paired")[-1] == {
        "key": str(admin.key_id("U606")), "fob_rom": good.hex, "previous": None, "at": "typed"}


async def test_a_rom_another_key_has_is_a_409_naming_that_key_K4(admin: Admin) -> None:
    rig = admin.rig
    theirs = (await admin.key("U701"))["fob_rom"]
    assert isinstance(theirs, str)
    mine = (await admin.key("U606"))["fob_rom"]
    refused = await admin.post("U606", "/fob", {"rom": theirs})
    assert refused.status_code == 409, refused.text
    assert "already paired with key U701" in refused.json()["detail"]
    assert (await admin.key("U606"))["fob_rom"] == mine
    assert (await admin.key("U701"))["fob_rom"] == theirs
    assert not rig.events("key.fob_paired")


async def test_read_from_slot_pairs_what_the_receptor_read_at_the_last_scan(
    admin: Admin,
) -> None:
    rig = admin.rig
    slot, _ = rig.key("U606")
    in_slot = rig.hw.model.fob_rom(slot)
    assert in_slot is not None
    await admin.post("U606", "/fob/clear", {"reason": "重新配对"})
    assert (rig.cabinet.last_fobs() or {}).get(slot) == in_slot.hex  # the scan still reads it

    paired = await admin.post("U606", "/fob", {"from_slot": True})
    assert paired.status_code == 200, paired.text
    assert paired.json()["fob_rom"] == in_slot.hex
    event = rig.events("key.fob_paired")[-1]
    assert event.slot == slot and json.loads(event.payload)["at"] == "slot"

    uid, _ = rig.card_of(dept="ENG")
    await rig.drawn(uid, "U606")  # the key is out: its slot reads no chip
    empty = await admin.post("U606", "/fob", {"from_slot": True})
    assert empty.status_code == 422
    assert f"no fob read in slot {slot}" in empty.json()["detail"]
    assert (await admin.key("U606"))["fob_rom"] == in_slot.hex


async def test_read_from_slot_on_a_presence_only_cabinet_says_so(tmp_path: Path) -> None:
    async for a in _admin(tmp_path):
        refused = await a.post("U606", "/fob", {"from_slot": True})
        assert refused.status_code == 422
        assert "senses presence only" in refused.json()["detail"]


async def test_who_may_not_write_keys_may_not_pair(admin: Admin) -> None:
    auditor = _token(admin.rig, AccountRole.AUDITOR, "aud-13")
    key_id = admin.key_id("U606")
    for path, body in (("/fob", {"from_slot": True}), ("/fob/clear", {"reason": "x"})):
        got = await admin.client.post(f"{V1}/keys/{key_id}{path}", json=body, headers=auditor)
        assert got.status_code == 403
    assert (await admin.key("U606"))["fob_rom"] is not None
