"""Card enrolment by tapping (issue 11): the console puts the cabinet into enrolment for a
chosen person; the next UNKNOWN card tapped at the idle screen is bound to that person.

Why at the cabinet: badges arrive without their number printed, and typing a UID is how
cards end up on the wrong person. The custodian starts an enrolment in the console, hands
the new badge to the person (or taps it themselves) and the reader does the rest.

While an enrolment waits, the idle screen says "登记卡片：请刷新卡 / Enrolling a card: tap
the new card". A card already on record (active, lost or revoked) is refused with an
``access.denied`` and the enrolment keeps waiting; at the deadline it ends with an event.
Only one enrolment waits at a time; it lives in memory like a night opening's window (a
restart simply ends it: the start is an audit event and nothing was bound).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session as DbSession

from kiosk import policy
from kiosk import session as flow
from kiosk.audit import NewEvent
from kiosk.cabinet.contract import Core
from kiosk.errors import Conflict
from kiosk.policy import Decision
from kiosk.services import cards, tx
from kiosk.services.authz import Principal
from kiosk.services.people import visible_person
from kiosk.store.models import CardKind

ENROL_FOR = dt.timedelta(seconds=60)
WAITING_TEXT = ("登记卡片：请刷新卡", "Enrolling a card: tap the new card")


@dataclass
class Enrolment:
    """One enrolment and how it ended: waiting, enrolled or timed_out."""

    id: uuid.UUID
    person_id: uuid.UUID
    person_name: str
    started_by: Principal
    started_at: dt.datetime
    deadline: dt.datetime
    state: str = "waiting"
    card_uid: str | None = None
    card_id: uuid.UUID | None = None
    refused: int = 0
    """Known cards tapped (and refused) while waiting."""
    ended_at: dt.datetime | None = None


class EnrolmentFlow:
    name = "enrolment"

    def __init__(self, core: Core) -> None:
        self.core = core
        self.current: Enrolment | None = None
        core.register_flow(self.name, self)
        core.on_idle_tap(self.idle_tap)
        core.on_tick(self.tick)

    # ---------------------------------------------------------------- from the API
    async def start(self, person_id: uuid.UUID, by: Principal, *,
                    window: dt.timedelta = ENROL_FOR) -> Enrolment:
        """Wait ``window`` for the next unknown card; ``NotFound`` for a person ``by`` may
        not see, ``Conflict`` for an inactive person or while another enrolment waits."""
        core = self.core
        now = core.clock()
        with DbSession(core.engine) as s:
            person = visible_person(s, by=by, person_id=person_id)
            if not person.active:
                raise Conflict(f"person {person.staff_no} is not active")
            name = person.name
        waiting = self.current
        if waiting is not None and waiting.state == "waiting" and now < waiting.deadline:
            raise Conflict("another card enrolment is waiting at the cabinet until "
                           f"{waiting.deadline.isoformat()}")
        enrolment = Enrolment(id=uuid.uuid4(), person_id=person_id, person_name=name,
                              started_by=by, started_at=now, deadline=now + window)
        started = NewEvent(
            type="card.enrolment_started", actors=by.actors(),
            payload={"enrolment": str(enrolment.id), "person": str(person_id),
                     "cabinet": core.code, "deadline": enrolment.deadline.isoformat()})
        # Logged by the writer thread and awaited: the enrolment waits only once it is on
        # record (a database that refuses the write refuses the enrolment, as before).
        await core.writer.run(lambda s: tx.log(s, core.audit, started), started.type)
        self.current = enrolment
        if core.session.state == flow.State.IDLE:
            self._show(now)  # someone at the screen keeps their messages; tick shows it later
        core.changed()
        return enrolment

    def cancel(self, actors: list[str]) -> Enrolment | None:
        """End a waiting enrolment before its deadline (logged); the one ended, if any."""
        enrolment = self.current
        if enrolment is None or enrolment.state != "waiting":
            return None
        core = self.core
        enrolment.state, enrolment.ended_at = "cancelled", core.clock()
        core.log(NewEvent(
            type="card.enrolment_cancelled", actors=actors,
            payload={"enrolment": str(enrolment.id), "person": str(enrolment.person_id),
                     "cabinet": core.code},
        ))
        if core.message is not None and core.message.code == "enrolling":
            core.message = None
        core.changed()
        return enrolment

    def state_of(self, enrolment_id: uuid.UUID) -> Enrolment | None:
        current = self.current
        return current if current is not None and current.id == enrolment_id else None

    # ------------------------------------------------------------------ at the cabinet
    def idle_tap(self, uid: str, card: policy.CardFacts | None,
                 person: policy.PersonFacts | None, now: dt.datetime) -> bool:
        """A tap at the idle screen while an enrolment waits is the enrolment's."""
        enrolment = self.current
        if enrolment is None or enrolment.state != "waiting" or now >= enrolment.deadline:
            return False
        core = self.core
        if card is not None:
            enrolment.refused += 1
            core.deny(Decision.deny("card_known", f"card {uid} is already on record; "
                                    "enrolment needs a new card", "K3"),
                      uid=uid, person=person, state="enrolling", enrolment=str(enrolment.id))
            return True

        def bind(s: DbSession) -> None:
            """The writer thread issues the card (queued in order, retried while the database
            is busy; the tap's turn waits for it to land before the next input)."""
            row = cards.issue_card(
                s, core.audit, by=enrolment.started_by, uid=uid,
                person_id=enrolment.person_id, kind=CardKind.STAFF, valid_from=None,
                valid_to=None, event="card.enrolled",
                extra={"enrolment": str(enrolment.id), "cabinet": core.code,
                       "started_by": enrolment.started_by.actor},
            )
            enrolment.card_id = row.id

        core.write(bind, "card.enrolled")
        enrolment.state, enrolment.card_uid, enrolment.ended_at = "enrolled", uid, now
        core.say("card_enrolled", "ok", detail=(f"{enrolment.person_name} · {uid}",
                                                f"{enrolment.person_name} · {uid}"))
        core.beep("ok")
        return True

    async def tick(self, now: dt.datetime) -> None:
        enrolment = self.current
        if enrolment is None or enrolment.state != "waiting":
            return
        core = self.core
        if now >= enrolment.deadline:
            enrolment.state, enrolment.ended_at = "timed_out", now
            core.log(NewEvent(
                type="card.enrolment_timed_out", actors=enrolment.started_by.actors(),
                payload={"enrolment": str(enrolment.id), "person": str(enrolment.person_id),
                         "cabinet": core.code, "refused": enrolment.refused},
            ))
            core.say("enrol_timeout", "info")
            core.changed()
        elif core.session.state == flow.State.IDLE and core.message is None:
            self._show(now)  # after a refusal's (or a visit's) message, say what is awaited
            core.changed()

    def _show(self, now: dt.datetime) -> None:
        enrolment = self.current
        if enrolment is None:
            return
        left = (enrolment.deadline - now).total_seconds()
        self.core.say("enrolling", "info", for_s=max(left, 1.0),
                      detail=(enrolment.person_name, enrolment.person_name))
