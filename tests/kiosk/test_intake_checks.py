"""Issue 14, item 7 (K1 intake at the cabinet): the key number and the room are checked at
the form's first step; the new key's RFID fob is paired by tapping it at the reader while
its slot is open, so a fob-first return (K4) works for the new key; a second delivery of
keys for a room that already has one is possible."""

from __future__ import annotations

import pytest
from rig import Rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk import session as flow
from kiosk.cabinet.options import CabinetError
from kiosk.store.models import Key, Role, Unit

DETAILS = dict(delivered_by="孙伟", delivered_by_department="装修公司", group_code="UNIT")


async def custodian_at_screen(rig: Rig) -> str:
    uid, _ = rig.card_of(role=Role.CUSTODIAN)
    await rig.cabinet.tap(uid)
    return uid


async def test_K1_an_unknown_room_is_refused_at_the_first_step(rig: Rig) -> None:
    await custodian_at_screen(rig)
    with pytest.raises(CabinetError) as err:
        await rig.cabinet.check_intake(key_number="U3099", label="3099 室", room_number="3099")
    assert err.value.code == "unknown_room"
    checked = await rig.cabinet.check_intake(key_number="U3007", label="3007 室",
                                             room_number="3007")
    assert checked["key_number"] == "U3007" and checked["second_delivery"] is None
    # A key number already used for another room is refused at once, too.
    with pytest.raises(CabinetError) as err:
        await rig.cabinet.check_intake(key_number="U606", label="3007 室", room_number="3007")
    assert err.value.code == "duplicate_key_number"
    # And the last step still checks (an API client may skip the first).
    with pytest.raises(CabinetError) as err:
        await rig.cabinet.choose_intake(key_number="U3099", label="3099 室", room_number="3099",
                                        **DETAILS)
    assert err.value.code == "unknown_room"
    assert rig.cabinet.session.state == flow.State.CHOOSING  # nothing opened


async def test_K1_a_second_delivery_for_a_room_with_a_key_gets_its_own_number(rig: Rig) -> None:
    await custodian_at_screen(rig)
    checked = await rig.cabinet.check_intake(key_number="U606", label="606 室", room_number="606")
    assert (checked["key_number"], checked["second_delivery"]) == ("U606-2", 2)
    slot = await rig.cabinet.choose_intake(key_number="U606", label="606 室", room_number="606",
                                           **DETAILS)
    await rig.put_back("04D0D0D0000606", slot)
    with Session(rig.runtime.engine) as s:
        keys = {k.key_number: k for k in s.scalars(
            select(Key).join(Unit).where(Unit.room_number == "606"))}
    assert set(keys) == {"U606", "U606-2"}
    assert keys["U606-2"].label == "606 室（第2套）"
    assert rig.events("key.intake")[-1].key_number == "U606-2"


async def test_K1_K4_the_fob_tapped_during_intake_is_paired_and_returns_fob_first(rig: Rig) -> None:
    await custodian_at_screen(rig)
    slot = await rig.cabinet.choose_intake(key_number="U3008", label="3008 室",
                                           room_number="3008", **DETAILS)
    assert rig.cabinet.session.state == flow.State.INTAKE
    await rig.cabinet.tap("04FEED00003008")  # the new key's fob at the reader
    msg = rig.cabinet.message
    assert msg is not None and msg.code == "fob_paired" and "U3008" in (msg.detail or ("",))[0]
    await rig.put_back("04FEED00003008", slot)
    with Session(rig.runtime.engine) as s:
        key = s.scalars(select(Key).where(Key.key_number == "U3008")).one()
    assert key.fob_tag == "04FEED00003008"

    # Drawn, then returned by tapping its fob (K4 asks for the returner's badge).
    uid, person = rig.card_of(dept="ENG")
    await rig.drawn(uid, "U3008")
    await rig.cabinet.tap("04FEED00003008")
    assert rig.cabinet.session.state == flow.State.AWAIT_RETURNER
    await rig.cabinet.tap(uid)
    await rig.put_back("04FEED00003008", slot)
    assert not rig.open_loans()
    returned = rig.events("key.returned")[-1]
    assert returned.key_number == "U3008" and str(person.id) in returned.actors


async def test_K1_a_fob_of_another_key_is_not_paired(rig: Rig) -> None:
    await custodian_at_screen(rig)
    await rig.cabinet.choose_intake(key_number="U3008", label="3008 室", room_number="3008",
                                    **DETAILS)
    _, other_fob = rig.key("U606")
    await rig.cabinet.tap(other_fob)
    msg = rig.cabinet.message
    assert msg is not None and msg.code == "fob_in_use"
    assert rig.cabinet.visit.intake is not None and "fob_tag" not in rig.cabinet.visit.intake
