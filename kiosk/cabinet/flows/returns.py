"""The return flow (K4, K5): a key's fob or 归还 under 我借的, the returner's badge (or "no
badge with me"), the home slot opens, and the loan is closed when the sensor sees the key
back, through the one return write path (``kiosk.records.record_return``) that start-up
reconciliation uses too."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy.orm import Session as DbSession

from kiosk import policy, records
from kiosk import session as flow
from kiosk.audit import NewEvent
from kiosk.cabinet.contract import Core
from kiosk.cabinet.options import CabinetError
from kiosk.visit import Visit


class ReturnFlow:
    name = "return"

    def __init__(self, core: Core) -> None:
        self.core = core
        core.register_flow(self.name, self)
        core.on_fob(self.fob_tapped)
        core.on_tap(flow.State.AWAIT_RETURNER, self.returner_tap)
        core.on_command(flow.Returned, self.returned)
        core.on_intent("return", self.intent)
        core.on_ended("returned", self.tell_returned)

    async def choose(self, key_number: str, slot: int | None = None) -> None:
        """归还 for ``key_number``: its home slot opens, or ``slot``, a free slot, for a key
        whose group may go back anywhere (``KeyGroup.return_anywhere``, identity cabinets)."""
        core = self.core
        if core.session.state not in (flow.State.CHOOSING, flow.State.IDLE):
            raise CabinetError("busy")
        with DbSession(core.engine) as s:
            key = records.key_by_number(s, cabinet_id=core.cabinet_id, key_number=key_number)
            if key is not None and slot is not None and slot != key.home_slot:
                if not records.returns_anywhere(s, key_id=key.id) \
                        or not core.runtime.settings.hardware.identity.enabled:
                    raise CabinetError("return_home_only", f"{key_number} goes back to its slot")
                if slot not in records.free_slots(s, cabinet_id=core.cabinet_id):
                    raise CabinetError("no_free_slot", f"slot {slot} is not free")
        if key is None:
            raise CabinetError("key_unknown", key_number)
        if slot is not None and core.session.state == flow.State.CHOOSING:
            await self.start(key, returner=core.visit.person, slot=slot)
            return
        await self.fob_tapped(key, core.session.state)

    async def fob_tapped(self, key: policy.KeyFacts, state: flow.State) -> None:
        """A key named at the screen or by its fob: signed in, it opens for the person at the
        screen; nobody signed in, the cabinet first asks who is returning it (K4)."""
        if state == flow.State.IDLE:
            await self._ask_returner(key)
        else:
            await self.start(key, returner=self.core.visit.person)

    async def _ask_returner(self, key: policy.KeyFacts) -> None:
        """K4: a return records who returned the key, so a fob tap with nobody signed in asks
        for the returner's badge before the slot opens (or an explicit "without badge")."""
        core = self.core
        if not key.on_loan or key.home_slot is None:
            core.say("not_on_loan", "error")
            return
        core.visit = Visit(returning=key)
        await core.apply(core.session.handle(flow.FobTapped(core.clock(), key.home_slot)))

    async def returner_tap(self, uid: str, card: policy.CardFacts | None,
                           person: policy.PersonFacts | None, now: dt.datetime) -> None:
        core = self.core
        decision = policy.decide_returner(card, person, now)
        if not decision.allowed:
            core.deny(decision, uid=uid, person=person)
            return  # still waiting for a badge that identifies someone
        assert person is not None and core.visit.returning is not None
        core.visit.person, core.visit.card = person, card
        await self.start(core.visit.returning, returner=person)

    async def without_badge(self) -> None:
        """K5: the returner has no badge with them: the return opens and is flagged."""
        core = self.core
        if core.session.state != flow.State.AWAIT_RETURNER or core.visit.returning is None:
            raise CabinetError("busy", f"nothing to return in state {core.session.state}")
        await self.start(core.visit.returning, returner=None)

    async def start(self, key: policy.KeyFacts, returner: policy.PersonFacts | None,
                    slot: int | None = None) -> None:
        core = self.core
        if not key.on_loan or key.home_slot is None:
            core.say("not_on_loan", "error")
            return
        if core.session.state == flow.State.IDLE:
            core.visit = Visit(person=returner)
        core.visit.returning = key
        await core.apply(core.session.handle(
            flow.ReturnChosen(core.clock(), slot if slot is not None else key.home_slot)))

    def intent(self, slot: int, actors: list[str]) -> NewEvent:
        v = self.core.visit
        assert v.returning is not None
        return NewEvent(type="return.intent", actors=actors, slot=slot,
                        key_number=v.returning.key_number, rules=["K4"],
                        payload={"returner": str(v.person.id) if v.person else None})

    def returned(self, command: flow.Returned) -> None:
        """The sensor saw the key back (an identity cabinet: *this* key, by its fob ROM):
        close the loan. A key back in a slot other than its home (a free slot, for a group
        that may go back anywhere) has that slot as its home from now on."""
        core, v = self.core, self.core.visit
        key, returner, slot = v.returning, v.person, command.slot
        assert key is not None
        with DbSession(core.engine) as s:
            loan = records.open_loan(s, key_id=key.id)
        v.resolved.add(slot)
        if loan is None:  # closed meanwhile by a start-up resolution: nothing to close
            return
        returner_id = returner.id if returner else None
        home, at, intent_seq = key.home_slot, core.clock(), v.intents.get(slot)
        if home != slot:
            v.returning = key = dataclasses.replace(key, home_slot=slot)
        by = policy.decide_return(borrower_id=loan.borrower_id, returner_id=returner_id).code
        if by == "returned":
            v.returned_code = "returned"
        else:
            v.returned_code = "returned_unidentified" if returner is None \
                else "returned_by_other"
        closing = key

        def close(s: DbSession) -> None:
            """The writer thread closes the loan (the one return path, K5 alarm included)."""
            row = records.open_loan(s, key_id=closing.id)
            if row is None:
                return
            moved = {}
            if home != slot:
                moved = {"moved_from": records.rehome(s, key_id=closing.id,
                                                      cabinet_id=core.cabinet_id, slot=slot)}
            records.record_return(
                s, core.audit, loan=row, key=closing, cabinet_id=core.cabinet_id, slot=slot,
                returner_id=returner_id, at=at, event_type="key.returned",
                actors=[str(returner_id)] if returner_id else [],
                payload={"intent_seq": intent_seq, **moved}, alarm_owners=core.alarm_owners,
            )

        core.write(close, "key.returned")

    def tell_returned(self) -> tuple[str, tuple[str, str] | None]:
        """After a return: which key went back to which slot; a return by someone other than
        the borrower, or without a badge, says that it was recorded and flagged (K5)."""
        v = self.core.visit
        key = v.returning
        detail = None
        if key is not None and key.home_slot is not None:
            detail = (f"{key.label}（{key.key_number}）已放回格口 {key.home_slot}",
                      f"{key.key_number} is back in slot {key.home_slot}")
        return v.returned_code or "returned", detail
