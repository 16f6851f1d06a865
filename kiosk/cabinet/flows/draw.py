"""The draw flow (K3, K6, K7, K10): the keys a person may draw now, their choice and reason,
the custodian's co-sign for master keys, and the loan once the sensor sees the key leave."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import uuid

from sqlalchemy.orm import Session as DbSession

from kiosk import policy, records
from kiosk import session as flow
from kiosk.audit import NewEvent
from kiosk.cabinet.contract import Core
from kiosk.cabinet.facts import Snapshot
from kiosk.cabinet.flows.pin import PinFlow
from kiosk.cabinet.options import CabinetError
from kiosk.errors import Conflict
from kiosk.messages import REASONS
from kiosk.services import approvals
from kiosk.visit import DecidedFromList, DrawPlan, PreparedDecision

MAX_KEYS = 5


def check_reason(reason_code: str, reason_text: str | None) -> None:
    """K3: every draw has a reason; "other" needs it in words."""
    if reason_code not in REASONS or (reason_code == "other" and not (reason_text or "").strip()):
        raise CabinetError("reason_required")


class DrawFlow:
    name = "draw"

    def __init__(self, core: Core) -> None:
        self.core = core
        core.register_flow(self.name, self)
        core.on_tap(flow.State.AWAIT_COSIGN, self.cosign_tap)
        core.on_command(flow.Taken, self.taken)
        core.on_intent("draw", self.intent)
        core.on_ended("drawn", self.tell_drawn)

    def context(self, s: DbSession, now: dt.datetime) -> policy.DrawContext:
        person, card = self.core.visit.person, self.core.visit.card
        assert person is not None and card is not None
        return policy.DrawContext(
            person=person, card=card, now=now, calendar=self.core.calendar,
            rights=records.rights_for(s, person=person),
            approvals=records.approvals_for(s, person_id=person.id),
            authorizations=records.authorizations_for(s, person_id=person.id),
            phone_confirmation_required=self.core.options.phone_confirmation_required,
        )

    def load_choices(self, now: dt.datetime) -> None:
        """The keys this person is shown, each with why it can or cannot be drawn now
        (``policy.screen_keys``: K6 keeps other owners' units from a proxy's eyes)."""
        mark = self.core.facts.commit_mark()  # first: the reads are at least this new
        with DbSession(self.core.engine) as s:
            head = self.core.audit.head_seq_in(s)
            ctx = self.context(s, now)
            # the keys and who has them out, from memory and grouped by standing (issue
            # 15), as of the same head; those imported and not stocked yet are not in the
            # cabinet to draw
            facts = self.core.facts.snapshot_at(s.connection(), head)
        self.core.visit.choices = policy.screen_keys(ctx, facts.offered, facts.holders)
        self.core.visit.prepared = PreparedDecision(head, ctx, facts, mark)

    def inputs(self, now: dt.datetime, *,
               fresh: bool = False) -> tuple[policy.DrawContext, Snapshot, int | None]:
        """The decision's inputs at the choice: those read for the list if nothing has
        changed since (the choice is then decided with no read at all, not even a session
        made, and the log's head they were read at comes third: its intent must go onto it),
        else read afresh (None)."""
        prepared = self.core.visit.prepared
        if not fresh and prepared is not None and self.unchanged_since(prepared):
            return dataclasses.replace(prepared.context, now=now), prepared.facts, prepared.head
        with DbSession(self.core.engine) as s:
            return self.context(s, now), self.core.facts.snapshot(), None

    async def choose(self, key_numbers: list[str], reason_code: str,
                     reason_text: str | None) -> None:
        core = self.core
        if core.session.state != flow.State.CHOOSING:
            raise core.busy("draw can be chosen")
        check_reason(reason_code, reason_text)
        if not key_numbers or len(set(key_numbers)) != len(key_numbers) \
                or len(key_numbers) > MAX_KEYS:
            raise CabinetError("key_unknown", "choose one to five different keys")
        now = core.clock()
        plans, needs, head = self.plan(key_numbers, reason_code, reason_text, now, fresh=False)
        pin_for = self.pin_causes(now, plans)
        if head is not None and (policy.Need.COSIGN in needs or pin_for):
            # Its unlock waits for a co-signer or a PIN, so the intent's head check would
            # meet the visit's own events: decided again from fresh reads instead.
            plans, needs, head = self.plan(key_numbers, reason_code, reason_text, now,
                                           fresh=True)
            pin_for = self.pin_causes(now, plans)
        if policy.Need.DUTY_MANAGER in needs and core.visit.manager is None:
            raise CabinetError("await_manager")  # cannot happen: night visits start there
        core.visit.draws = plans
        event = flow.DrawChosen(now, tuple(plans), needs_cosign=policy.Need.COSIGN in needs)
        if self.pin_asked(now, pin_for, event):
            return  # the PIN pad is up; the PIN flow goes on with ``event`` once it is right
        if head is not None:  # this draw's intents, and nothing else, use it
            core.visit.decided = DecidedFromList(head, functools.partial(
                self.recheck, key_numbers, reason_code, reason_text, now, needs))
        await core.apply(core.session.handle(event))

    def recheck(self, key_numbers: list[str], reason_code: str, reason_text: str | None,
                now: dt.datetime, needs: set[policy.Need]) -> None:
        """Something was logged between the choice, decided from the list's facts, and its
        intent: the same choice decided again from fresh reads (``kiosk.cabinet.opening``).
        A key refused now is refused as at the choice (``plan`` logs it with its rule). A
        draw that would now wait for a co-signer, a PIN or the duty manager cannot take that
        step on its way to the lock, and one whose key now has another home slot would open
        the slot chosen for the old one: refused as stale, logged under K2, chosen again."""
        core = self.core
        plans, again, _ = self.plan(key_numbers, reason_code, reason_text, now, fresh=True)
        if again != needs or plans.keys() != core.visit.draws.keys() \
                or self.pin_causes(now, plans):
            core.deny(policy.Decision.deny(
                "decision_stale", "what the draw needs changed between the choice and the "
                "unlock", "K2"), person=core.visit.person, keys=key_numbers)
            raise CabinetError("decision_stale")
        core.visit.draws = plans

    def unchanged_since(self, prepared: PreparedDecision) -> bool:
        """Nothing logged in this process since the list, and on SQLite nothing committed by
        anyone (``CabinetFacts.commit_mark``)."""
        facts = self.core.facts
        if facts.heard != prepared.head:
            return False
        return prepared.mark is None or facts.commit_mark() == prepared.mark

    def plan(self, key_numbers: list[str], reason_code: str, reason_text: str | None,
             now: dt.datetime, *, fresh: bool,
             ) -> tuple[dict[int, DrawPlan], set[policy.Need], int | None]:
        """Each chosen key decided (``fresh``: from new reads, else as ``inputs`` says): the
        plans by home slot, what they need and the head they were decided at (None: fresh
        reads); a refusal is logged and raised."""
        core = self.core
        plans: dict[int, DrawPlan] = {}
        needs: set[policy.Need] = set()
        ctx, facts, head = self.inputs(now, fresh=fresh)
        for number in key_numbers:
            key = facts.key(number)
            if key is None:
                raise CabinetError("key_unknown", number)
            if key.id in facts.awaiting:
                core.deny(policy.Decision.deny(
                    "key_not_stocked", "the key is on record but not in the cabinet yet",
                    "K2"), person=core.visit.person, key=key)
                raise CabinetError("key_not_stocked", number)
            decision = policy.decide_draw(ctx, key)
            if not decision.allowed:
                core.deny(decision, person=core.visit.person, key=key)
                raise CabinetError(decision.code, decision.reason)
            assert key.home_slot is not None
            plans[key.home_slot] = DrawPlan(key, decision, reason_code, reason_text)
            needs |= decision.needs
        return plans, needs, head

    def pin_causes(self, now: dt.datetime, plans: dict[int, DrawPlan]) -> tuple[str, ...]:
        """Why this draw would wait for a PIN (none on a cabinet built without the PIN flow)."""
        try:
            pin = self.core.lookup("pin", PinFlow)
        except KeyError:
            return ()
        return pin.causes(now, [plan.key for plan in plans.values()])

    def pick(self, key_numbers: list[str]) -> int:
        """Keys picked on the screen, before the reason: arm the boards of those this person
        may draw now, for as long as they have to choose (issue 15: the choice is then one
        frame from the lock). Anything else picked is ignored: a pick opens nothing and
        decides nothing; the draw is decided in full when it is chosen. Counts as a touch."""
        core = self.core
        if core.session.state != flow.State.CHOOSING:
            return 0
        # a touch: the choice's timer starts again (the screen is not redrawn for it: the
        # reasons the person is reading stay as they are)
        core.session.handle(flow.StillHere(core.clock()))
        wanted = set(key_numbers[:MAX_KEYS])
        slots = [view.key.home_slot for view in core.visit.choices
                 if view.key.key_number in wanted and view.decision.allowed
                 and view.key.home_slot is not None]
        return core.arming.picked(slots, core.options.timeouts.choose.total_seconds())

    def pin_asked(self, now: dt.datetime, causes: tuple[str, ...],
                  event: flow.DrawChosen) -> bool:
        """Whether the draw now waits for the person's PIN, for ``causes`` (``pin_causes``;
        a cabinet built without the PIN flow asks for none)."""
        try:
            pin = self.core.lookup("pin", PinFlow)
        except KeyError:
            return False
        return pin.ask(now, causes, event)

    async def request_approval(self, key_number: str) -> None:
        """K7 at the screen: refused a special-room key, the person touches 申请审批; the
        request goes to their department leader (the ``approval.requested`` event, carried
        by the notification routes) and the screen says whom it went to."""
        core = self.core
        person = core.visit.person
        if core.session.state != flow.State.CHOOSING or person is None:
            raise core.busy("approval can be requested")
        now = core.clock()
        with DbSession(core.engine) as s:
            key = records.key_by_number(s, cabinet_id=core.cabinet_id, key_number=key_number)
            if key is None:
                raise CabinetError("key_unknown", key_number)
            if policy.decide_draw(self.context(s, now), key).code != "approval_required":
                raise CabinetError("approval_not_needed", key_number)
        def request(s: DbSession) -> tuple[list[str], bool]:
            _, leaders, new = approvals.request_at_cabinet(
                s, core.audit, key_id=key.id, person_id=person.id, cabinet=core.code, now=now)
            return [p.name for p in leaders], new

        try:
            names, new = await core.writer.run(request, "approval.requested")
        except Conflict:
            core.say("no_leader", "error")
            return
        who = "、".join(names)
        core.say("approval_requested" if new else "approval_pending", "ok" if new else "info",
                 detail=(f"{key.label}（{key.key_number}）：已发送给 {who}",
                         f"{key.key_number}: sent to {', '.join(names)}"))
        core.session.handle(flow.StillHere(now))  # the person is still here, reading

    async def cosign_tap(self, uid: str, card: policy.CardFacts | None,
                         person: policy.PersonFacts | None, now: dt.datetime) -> None:
        """K3: a master key waits for a custodian's badge; the custodian is the issuer."""
        core = self.core
        decision = policy.decide_cosign(
            core.visit.person,  # type: ignore[arg-type]
            person or policy.PersonFacts(uuid.uuid4(), "?", frozenset()),
            policy.identify(card, person, now),
        )
        if not decision.allowed:
            core.deny(decision, uid=uid, person=person)
            return
        assert person is not None
        core.visit.cosigner = person
        await core.apply(core.session.handle(flow.Cosigned(now, person.id)))

    def intent(self, slot: int, actors: list[str]) -> NewEvent:
        v = self.core.visit
        plan = v.draws[slot]
        return NewEvent(
            type="draw.intent", actors=actors, slot=slot, key_number=plan.key.key_number,
            decision="allow", rules=list(plan.decision.rules),
            payload={
                "borrower": str(v.person.id) if v.person else None,
                "duty_manager": str(v.manager.id) if v.manager else None,
                "issuer": str(v.cosigner.id) if v.cosigner else None,
                "reason_code": plan.reason_code, "reason_text": plan.reason_text,
                "approval": str(plan.decision.approval_id) if plan.decision.approval_id else None,
                "authorization": str(plan.decision.authorization_id)
                if plan.decision.authorization_id else None,
                **({"remote_admins": list(v.remote_admins)} if v.remote_admins else {}),
                **({"second_factor": "pin"} if v.pin_checked else {}),
            },
        )

    def taken(self, command: flow.Taken) -> None:
        """The sensor saw the key leave: the loan, through the one loan write path."""
        core, v = self.core, self.core.visit
        slot = command.slot
        plan = v.draws[slot]
        assert v.person is not None
        now = core.clock()
        terms = records.LoanTerms(
            key=plan.key, cabinet_id=core.cabinet_id, borrower_id=v.person.id,
            issuer_id=v.cosigner.id if v.cosigner else None,
            duty_manager_id=v.manager.id if v.manager else None,
            approval_id=plan.decision.approval_id,
            authorization_id=plan.decision.authorization_id,
            reason_code=plan.reason_code, reason_text=plan.reason_text,
            drawn_at=now, due_at=policy.due_at(plan.key, now, core.calendar),
        )
        actors = [str(p.id) for p in (v.person, v.manager, v.cosigner) if p]
        payload = {"intent_seq": v.intents.get(slot), "reason_code": plan.reason_code,
                   "reason_text": plan.reason_text, "borrower_name": v.person.name,
                   "issuer": v.cosigner.name if v.cosigner else "cabinet",
                   **({"remote_admins": list(v.remote_admins)} if v.remote_admins else {})}
        rules = list(plan.decision.rules)
        # The writer thread records it (in order, retried while the database is busy).
        core.write(lambda s: records.record_loan(
            s, core.audit, terms, event_type="key.drawn", slot=slot, rules=rules,
            actors=actors, payload=payload), "key.drawn")
        v.resolved.add(slot)
        v.drawn[slot] = terms.due_at

    def tell_drawn(self) -> tuple[str, tuple[str, str] | None]:
        """After a draw: which key, from which slot, due back when (K3, K9), in both
        languages; the person leaves knowing when to be back."""
        v, zone = self.core.visit, self.core.calendar.zone
        today = self.core.clock().astimezone(zone).date()
        zh, en = [], []
        for slot, due in sorted(v.drawn.items()):
            key = v.draws[slot].key
            local = due.astimezone(zone)
            day_zh = "今天" if local.date() == today else f"{local.month}月{local.day}日"
            day_en = "today" if local.date() == today else local.strftime("%a %d %b")
            zh.append(f"{key.label}（{key.key_number}，格口 {slot}）请于{day_zh} "
                      f"{local:%H:%M} 前归还")
            en.append(f"{key.key_number} from slot {slot}: due back {day_en} {local:%H:%M}")
        if not zh:
            return "drawn", None
        return "drawn", ("；".join(zh), "; ".join(en))
