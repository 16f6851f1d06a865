"""Remote unlock (K2, K8): two different admins, over the API, release one key's slot for a
named person; the draw flow then records the loan when the key leaves, as for a night
opening (the intent and the loan name both admins)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session as DbSession

from kiosk import policy, records
from kiosk import session as flow
from kiosk.cabinet.contract import Core
from kiosk.cabinet.flows.draw import check_reason
from kiosk.cabinet.options import CabinetError
from kiosk.store.models import Person
from kiosk.visit import DrawPlan, Visit


class RemoteUnlockFlow:
    name = "remote"

    def __init__(self, core: Core) -> None:
        self.core = core
        core.register_flow(self.name, self)

    def check(self, key_number: str, person_id: uuid.UUID, reason_code: str,
              reason_text: str | None) -> tuple[policy.KeyFacts, policy.PersonFacts]:
        """Whether a remote unlock of ``key_number`` for ``person_id`` could be carried out
        now, the session aside: raises ``CabinetError`` if not. Reads only."""
        check_reason(reason_code, reason_text)
        core = self.core
        with DbSession(core.engine) as s:
            key = records.key_by_number(s, cabinet_id=core.cabinet_id, key_number=key_number)
            person = s.get(Person, person_id)
            facts = records.person_facts(person) if person is not None else None
        if key is None:
            raise CabinetError("key_unknown", key_number)
        if key.status != "active":
            raise CabinetError("key_retired", key_number)
        if key.home_slot is None:
            raise CabinetError("key_no_slot", key_number)
        if key.on_loan:
            raise CabinetError("key_out", key_number)
        if not core.last_scan().get(key.home_slot, False):
            raise CabinetError("key_not_in_slot", f"the sensor of slot {key.home_slot} sees no key")
        if facts is None:
            raise CabinetError("person_unknown", str(person_id))
        if not facts.active:
            raise CabinetError("person_inactive", facts.name)
        return key, facts

    async def draw(self, key_number: str, person_id: uuid.UUID, reason_code: str,
                   reason_text: str | None, admins: tuple[str, str]) -> int:
        """Refused (``CabinetError``) unless the cabinet is idle and the key is in and active.
        Returns the slot number."""
        core = self.core
        if core.session.state != flow.State.IDLE:
            raise CabinetError("busy", f"the cabinet is in use ({core.session.state})")
        if len(set(admins)) != 2:
            raise CabinetError("same_person_twice", "a remote unlock needs two different admins")
        key, person = self.check(key_number, person_id, reason_code, reason_text)
        assert key.home_slot is not None
        now = core.clock()
        decision = policy.Decision.allow(
            "remote_unlock", f"remote unlock confirmed by {admins[0]} and {admins[1]}", "K2", "K8")
        core.visit = Visit(person=person, first_tap_at=now, remote_admins=tuple(admins))
        core.visit.draws = {key.home_slot: DrawPlan(key, decision, reason_code, reason_text)}
        await core.apply(core.session.handle(flow.Identified(now, person.id)))
        await core.apply(core.session.handle(flow.DrawChosen(now, (key.home_slot,))))
        if core.session.state != flow.State.RELEASING:
            raise CabinetError("lock_fault", f"slot {key.home_slot} did not unlock")
        return key.home_slot
