"""The handover flow (H1): a keeper freezes the shift's report at the screen, and another
keeper's badge accepts it. No slot opens, so after hours no duty manager is needed."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid

from sqlalchemy.orm import Session as DbSession

from kiosk import policy, records
from kiosk import session as flow
from kiosk.cabinet.contract import Core
from kiosk.cabinet.options import CabinetError
from kiosk.errors import Conflict, InvalidRequest
from kiosk.policy import Decision
from kiosk.services import handovers
from kiosk.store.models import Cabinet as CabinetRow


class HandoverFlow:
    name = "handover"

    def __init__(self, core: Core) -> None:
        self.core = core
        core.register_flow(self.name, self)
        core.on_tap(flow.State.AWAIT_INCOMING, self.incoming_tap)
        core.on_cancel(flow.State.AWAIT_INCOMING, self.cancelled)

    async def start(self, notes: str | None) -> None:
        core = self.core
        person, card = core.visit.person, core.visit.card
        if core.session.state not in flow.SIGNED_IN or person is None or card is None:
            raise core.busy("handover can start")
        decision = policy.decide_handover_signer(person, Decision.allow("identified", ""))
        if not decision.allowed:
            core.deny(decision, uid=card.uid, person=person)
            raise CabinetError(decision.code)
        now = core.clock()
        sensed = core.last_scan() or None
        fobs = core.last_fobs()

        def start(s: DbSession) -> uuid.UUID:
            return handovers.start(
                s, core.audit, cabinet=s.get_one(CabinetRow, core.cabinet_id),
                outgoing_id=person.id, card=card.uid, zone=core.calendar.zone,
                sensed=sensed, fobs=fobs, notes=notes, now=now,
                valid_for=core.options.handover_valid_for,
            ).id

        try:
            core.visit.handover_id = await core.writer.run(start, "handover.started")
        except Conflict as exc:
            raise CabinetError("handover_pending", str(exc)) from None
        await core.apply(core.session.handle(flow.HandoverStarted(now)))

    async def incoming_tap(self, uid: str, card: policy.CardFacts | None,
                           person: policy.PersonFacts | None, now: dt.datetime) -> None:
        await self.accept(person, card, uid=uid)

    async def accept(self, person: policy.PersonFacts | None, card: policy.CardFacts | None,
                     *, uid: str | None = None) -> None:
        """The incoming keeper's badge signs: tapped while waiting, or from their own menu."""
        core = self.core
        now = core.clock()
        state = core.session.state
        if state not in (flow.State.AWAIT_INCOMING, *flow.SIGNED_IN):
            raise core.busy("handover can be accepted")
        identified = policy.identify(card, person, now)
        with DbSession(core.engine) as s:
            waiting = handovers.pending(s, cabinet_id=core.cabinet_id, now=now)
            outgoing = records.person_facts(waiting.outgoing) if waiting is not None else None
        if waiting is None or outgoing is None:
            raise CabinetError("handover_none")
        decision = policy.decide_handover_signer(
            person or policy.PersonFacts(uuid.uuid4(), uid or "?", frozenset()), identified,
            outgoing=outgoing,
        )
        if not decision.allowed:
            core.deny(decision, uid=uid or (card.uid if card else None), person=person)
            if state in flow.SIGNED_IN:
                raise CabinetError(decision.code)
            return  # keep waiting for the right person's tap
        assert person is not None and card is not None
        waiting_id = waiting.id
        try:
            await core.writer.run(lambda s: handovers.accept(
                s, core.audit, cabinet_id=core.cabinet_id, incoming_id=person.id,
                card=card.uid, zone=core.calendar.zone, language=core.options.report_language,
                handover_id=waiting_id, now=now, site=core.runtime.settings.site,
            ), "handover.accepted")
        except (Conflict, InvalidRequest) as exc:
            raise CabinetError("handover_none", str(exc)) from None
        core.beep("ok")
        await core.apply(core.session.handle(flow.HandoverAccepted(now, person.id)))

    def cancelled(self) -> None:
        """Cancel at the screen while waiting for the incoming keeper: the handover lapses."""
        core = self.core
        if core.visit.handover_id is None:
            return
        person = core.visit.person
        handover_id, now = core.visit.handover_id, core.clock()

        def cancel(s: DbSession) -> None:
            with contextlib.suppress(Conflict):
                handovers.cancel(s, core.audit, handover_id=handover_id,
                                 actors=[str(person.id)] if person else [],
                                 reason="cancelled_at_kiosk", now=now)

        core.write(cancel, "handover.cancelled")
