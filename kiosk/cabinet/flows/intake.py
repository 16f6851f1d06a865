"""The intake flow (K1): a custodian registers a received key and a free slot opens for it;
the key, its intake record and the event are stored once the sensor sees the key in."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from kiosk import policy, records
from kiosk import session as flow
from kiosk.audit import NewEvent
from kiosk.cabinet.contract import Core
from kiosk.cabinet.options import CabinetError
from kiosk.services import tx
from kiosk.store.models import IntakeRecord, Key, KeyCategory, KeyGroup, Unit

REQUIRED = ("key_number", "label", "delivered_by", "delivered_by_department", "group_code")


class IntakeFlow:
    name = "intake"

    def __init__(self, core: Core) -> None:
        self.core = core
        core.register_flow(self.name, self)
        core.on_command(flow.Received, self.received)
        core.on_intent("intake", self.intent)
        core.on_tap(flow.State.INTAKE, self.fob_tap)

    def _custodian(self) -> policy.PersonFacts:
        core = self.core
        person = core.visit.person
        if core.session.state != flow.State.CHOOSING or person is None:
            raise CabinetError("busy")
        if "custodian" not in person.roles:
            core.deny(policy.Decision.deny("intake_not_custodian", "intake needs a custodian",
                                           "K1"), person=person)
            raise CabinetError("intake_not_custodian")
        return person

    def check(self, details: dict[str, Any]) -> dict[str, Any]:
        """The intake form's first step (issue 14, item 7): the key number and the room
        against the building's units, before the deliverer's details are typed.

        A room the building does not have is refused (a typo caught now, not after the
        whole form). A key number already in use for *the same room* is a second delivery
        of keys for that room: it is registered as ``<number>-2`` (``-3``...), its own key
        with its own fob and slot. A key number in use for another room is refused.
        """
        self._custodian()
        key_number = str(details.get("key_number") or "").strip()
        room = str(details.get("room_number") or "").strip()
        label = str(details.get("label") or "").strip()
        if not key_number:
            raise CabinetError("intake_incomplete", "missing: key_number")
        with DbSession(self.core.engine) as s:
            unit = s.query(Unit).filter(Unit.room_number == room).first() if room else None
            if room and unit is None:
                raise CabinetError("unknown_room", f"room {room} is not a unit of this building")
            existing = s.query(Key).filter(Key.key_number == key_number).first()
            delivery = None
            if existing is not None:
                if unit is None or existing.unit_id != unit.id:
                    raise CabinetError("duplicate_key_number", key_number)
                taken = set(s.scalars(select(Key.key_number)
                                      .where(Key.key_number.like(f"{key_number}-%"))))
                delivery = next(n for n in range(2, 100) if f"{key_number}-{n}" not in taken)
                key_number = f"{key_number}-{delivery}"
                label = f"{label}（第{delivery}套）" if label else label
            if details.get("group_code") and s.query(KeyGroup).filter(
                    KeyGroup.code == details["group_code"]).first() is None:
                raise CabinetError("intake_incomplete", f"unknown key group {details['group_code']}")
            free = records.free_slots(s, cabinet_id=self.core.cabinet_id)
        if not free:
            raise CabinetError("no_free_slot")
        return {"key_number": key_number, "label": label, "room_number": room or None,
                "second_delivery": delivery, "free_slots": len(free)}

    async def choose(self, details: dict[str, Any]) -> int:
        core = self.core
        self._custodian()
        missing = [k for k in REQUIRED if not str(details.get(k) or "").strip()]
        if missing:
            raise CabinetError("intake_incomplete", f"missing: {', '.join(missing)}")
        key_count = int(details.get("key_count") or 1)
        if not 1 <= key_count <= 99:
            raise CabinetError("intake_incomplete", "key_count must be 1..99")
        checked = self.check(details)
        with DbSession(core.engine) as s:
            free = records.free_slots(s, cabinet_id=core.cabinet_id)
        slot = int(details.get("slot") or free[0])
        if slot not in free:
            raise CabinetError("no_free_slot", f"slot {slot} is not free")
        core.visit.intake = {**details, "key_count": key_count,
                             "key_number": checked["key_number"], "label": checked["label"]}
        await core.apply(core.session.handle(flow.IntakeChosen(core.clock(), slot)))
        return slot

    async def fob_tap(self, uid: str, card: policy.CardFacts | None,
                      person: policy.PersonFacts | None, now: dt.datetime) -> None:
        """While the new key's slot is open, its RFID fob tapped at the reader is paired with
        it (issue 14, item 7), so the key can later be returned fob-first (K4). A badge, or a
        fob already paired with another key, is refused."""
        core = self.core
        intake = core.visit.intake
        if intake is None or card is not None or person is not None:
            core.say("busy", "info")
            return
        with DbSession(core.engine) as s:
            if s.query(Key).filter(Key.fob_tag == uid).first() is not None:
                core.say("fob_in_use", "error", detail=(
                    f"此钥匙牌已属于其他钥匙（{uid}）", f"This fob already belongs to another key ({uid})"))
                core.beep("deny")
                return
        intake["fob_tag"] = uid
        core.say("fob_paired", "ok", detail=(
            f"钥匙牌 {uid} 已配对 {intake.get('key_number')}，请将钥匙放入格口",
            f"Fob {uid} paired with {intake.get('key_number')}: hang the key in the slot"))
        core.beep("ok")
        core.changed()

    def intent(self, slot: int, actors: list[str]) -> NewEvent:
        intake = self.core.visit.intake or {}
        return NewEvent(type="intake.intent", actors=actors, slot=slot,
                        key_number=intake.get("key_number"), rules=["K1"],
                        payload={k: str(val) for k, val in intake.items()})

    async def received(self, command: flow.Received) -> None:
        core, slot = self.core, command.slot
        details = core.visit.intake or {}
        custodian = core.visit.person
        assert custodian is not None
        fob_rom = (core.last_fobs() or {}).get(slot)
        intent_seq = core.visit.intents.get(slot)

        def receive(s: DbSession) -> None:
            """The new key, its event and its intake record, in one transaction."""
            group = s.query(KeyGroup).filter(KeyGroup.code == details["group_code"]).one()
            room = str(details.get("room_number") or "").strip()
            unit = s.query(Unit).filter(Unit.room_number == room).first() if room else None
            key = Key(
                key_number=str(details["key_number"]), label=str(details["label"]),
                group_id=group.id, unit_id=unit.id if unit else None,
                category=KeyCategory(details.get("category") or "unit"),
                copies=int(details.get("key_count") or 1),
                fob_tag=str(details["fob_tag"]).upper() if details.get("fob_tag") else None,
                # issue 13: an identity cabinet pairs the fob's chip as the key is hung
                fob_rom=fob_rom,
                home_slot_id=records.slot_id(s, cabinet_id=core.cabinet_id, number=slot),
            )
            s.add(key)
            s.flush()
            event = tx.log(s, core.audit, NewEvent(
                type="key.intake", slot=slot, key_number=key.key_number, decision="allow",
                rules=["K1"], actors=[str(custodian.id)],
                payload={"delivered_by": details["delivered_by"],
                         "delivered_by_department": details["delivered_by_department"],
                         "room_number": room, "key_count": key.copies,
                         "received_by": custodian.name, "fob_rom": key.fob_rom,
                         "intent_seq": intent_seq},
            ))
            s.add(IntakeRecord(
                key_id=key.id, delivered_by_name=str(details["delivered_by"]),
                delivered_by_department=str(details["delivered_by_department"]),
                room_number=room or "-", key_count=key.copies,
                deliverer_confirmed=bool(details.get("deliverer_confirmed", True)),
                custodian_id=custodian.id, slot_id=key.home_slot_id,
                note=details.get("note"), event_seq=event.seq,
            ))

        try:
            await core.writer.run(receive, "key.intake")
        except IntegrityError as exc:
            core.log(core.outcome("intake.failed", slot, rules=["K1"], detail=str(exc.orig)))
            core.visit.resolved.add(slot)
            core.say("duplicate_key_number", "error")
            return
        core.visit.resolved.add(slot)
