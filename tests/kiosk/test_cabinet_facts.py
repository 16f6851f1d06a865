"""The keys the cabinet keeps in memory for the tap path (kiosk/cabinet/facts.py) follow the
records: a key taken out of service is no longer offered at the next badge (K2, K3),
whether the change was made in the daemon's own process (the admin API) or by another
process (``kiosk`` on the command line), which the cabinet notices by the audit head."""

from __future__ import annotations

import pytest
from rig import Rig
from sqlalchemy import select

from kiosk.audit import AuditLog, NewEvent
from kiosk.cabinet.options import CabinetError
from kiosk.services import tx
from kiosk.store.db import make_engine
from kiosk.store.models import Key, KeyStatus, Role


def offered(rig: Rig) -> dict[str, str]:
    return {k["key_number"]: k["status"] for k in rig.cabinet.screen()["keys"]}


def retire(audit: AuditLog, key_number: str) -> None:
    """Take the key out of service and log it, as the key service does."""
    with tx.write(audit) as s:
        key = s.scalars(select(Key).where(Key.key_number == key_number)).one()
        key.status = KeyStatus.RETIRED
        tx.log(s, audit, NewEvent(type="key.retired", key_number=key_number, rules=["K2"]))


async def test_a_key_retired_in_this_process_is_not_offered_at_the_next_tap(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    assert offered(rig)["U1203"] == "ok"
    await rig.cabinet.cancel()
    retire(rig.runtime.audit, "U1203")
    await rig.cabinet.tap(uid)
    assert "U1203" not in offered(rig)
    with pytest.raises(CabinetError) as refused:
        await rig.cabinet.choose_draw(["U1203"], "repair")
    assert refused.value.code == "key_retired"
    slot, _ = rig.key("U1203")
    assert not rig.hw.model.is_unlocked(slot)


async def test_a_key_retired_by_another_process_is_not_offered_at_the_next_tap(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    assert offered(rig)["U1204"] == "ok"
    await rig.cabinet.cancel()
    # Another process: its own engine and its own log object, whose events this cabinet's
    # listeners never hear; only the audit head tells the cabinet something changed.
    own = rig.runtime.audit
    other = AuditLog(make_engine(str(rig.runtime.engine.url)), cabinet_id=own.cabinet_id,
                     device_key=own.device_key, checkpoint_every=own.checkpoint_every)
    try:
        retire(other, "U1204")
    finally:
        other.engine.dispose()
    await rig.cabinet.tap(uid)
    assert "U1204" not in offered(rig)


async def test_K10_a_key_drawn_then_returned_is_shown_out_then_in_at_the_next_taps(
        rig: Rig) -> None:
    """A draw or a return re-reads only that key (issue 15): the next person still sees
    it out, then back, and who has it (to a keeper)."""
    uid, person = rig.card_of(dept="ENG")
    other, _ = rig.card_of(dept="ENG", index=1)
    keeper, _ = rig.card_of(role=Role.CUSTODIAN)
    slot, fob = await rig.drawn(uid, "U1203")
    await rig.settle(2)
    await rig.cabinet.tap(other)
    assert offered(rig)["U1203"] == "out"
    assert offered(rig)["U1204"] == "ok"  # the other keys as they were
    await rig.cabinet.cancel()
    await rig.cabinet.tap(keeper)
    held = next(k for k in rig.cabinet.screen()["keys"] if k["key_number"] == "U1203")
    assert person.name in held["why"]["zh"]
    await rig.cabinet.cancel()
    await rig.cabinet.tap(uid)
    await rig.cabinet.tap(fob)  # the borrower's fob: the return opens its slot
    await rig.put_back(fob, slot)
    await rig.settle(2)
    await rig.cabinet.tap(other)
    assert offered(rig)["U1203"] == "ok"
