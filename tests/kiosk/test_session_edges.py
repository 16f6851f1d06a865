"""kiosk.session beyond the happy paths: what mutation testing found unpinned.

The H1 handover states, what a finished session leaves behind (nothing: the next person
starts clean), which reason each ending gives (the cabinet logs it), and the messages of
the transitions the table refuses. See docs/testing.md, "Mutation testing".
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from kiosk.session import (
    Cancelled,
    DrawChosen,
    Ended,
    FobTapped,
    HandoverAccepted,
    HandoverStarted,
    Identified,
    IllegalTransition,
    IntakeChosen,
    KeyInserted,
    KeyRemoved,
    ManagerConfirmed,
    Received,
    Relock,
    ReturnChosen,
    Session,
    Show,
    State,
    Timeout,
    Timeouts,
)

T0 = dt.datetime(2026, 11, 27, 15, 0, tzinfo=dt.UTC)
ALICE, BOB, MGR = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def assert_clean(s: Session) -> None:
    """A finished session keeps nothing of the person who used it."""
    assert s.state == State.IDLE
    assert (s.person_id, s.manager_id, s.custodian_id) == (None, None, None)
    assert (s.open_slots, s.pending_slots, s.deadline, s.started_at) == ((), (), None, None)


def test_H1_handover_waits_for_the_incoming_and_ends_handed_over() -> None:
    s = Session()
    s.handle(Identified(at(0), BOB))
    assert s.handle(HandoverStarted(at(5))) == [Show("await_incoming")]
    assert s.state == State.AWAIT_INCOMING and s.deadline == at(5 + 120)
    assert s.handle(HandoverAccepted(at(30), MGR)) == [Show("idle"), Ended("handed_over")]
    assert_clean(s)


def test_H1_a_handover_nobody_accepts_times_out() -> None:
    s = Session()
    s.handle(Identified(at(0), BOB, night=True))
    s.handle(HandoverStarted(at(5)))  # after hours too: a handover opens no lock
    assert s.handle(Timeout(at(124))) == []
    assert s.handle(Timeout(at(125))) == [Show("idle"), Ended("incoming_timeout")]
    assert_clean(s)


def test_K8_the_duty_managers_tap_starts_the_choice_timer() -> None:
    s = Session(timeouts=Timeouts(choose=dt.timedelta(seconds=45)))
    s.handle(Identified(at(0), ALICE, night=True))
    assert s.handle(ManagerConfirmed(at(10), MGR)) == [Show("choose")]
    assert (s.state, s.manager_id, s.deadline) == (State.CHOOSING, MGR, at(55))


def test_a_finished_draw_leaves_nothing_behind() -> None:
    s = Session()
    s.handle(Identified(at(0), ALICE, night=True))
    s.handle(ManagerConfirmed(at(5), MGR))
    s.handle(DrawChosen(at(6), (12,)))
    s.handle(KeyRemoved(at(8), 12))
    assert_clean(s)


def test_a_cancel_ends_with_its_own_reason() -> None:
    s = Session()
    s.handle(Identified(at(0), ALICE))
    assert s.handle(Cancelled(at(1), "card_lost")) == [Show("idle"), Ended("card_lost")]
    assert_clean(s)


def test_K1_an_intake_ends_received_not_returned() -> None:
    s = Session()
    s.handle(Identified(at(0), BOB))
    s.handle(IntakeChosen(at(1), 40))
    assert s.handle(KeyInserted(at(5), 40)) == [
        Relock((40,)), Received(40), Show("idle"), Ended("received")]
    assert_clean(s)


def test_K4_a_return_after_a_fob_tap_is_timed_from_the_fob() -> None:
    s = Session()
    s.handle(FobTapped(at(0), 12))
    s.handle(ReturnChosen(at(7), 12))
    assert s.started_at == at(0)
    fresh = Session()
    fresh.handle(Identified(at(3), ALICE))
    fresh.started_at = None  # a session that has not recorded its start yet
    fresh.handle(ReturnChosen(at(9), 12))
    assert fresh.started_at == at(9)


def test_refused_transitions_say_what_and_where() -> None:
    with pytest.raises(IllegalTransition, match=r"^DrawChosen is not accepted in state idle$"):
        Session().handle(DrawChosen(at(0), (1,)))
    s = Session()
    s.handle(Identified(at(0), ALICE))
    with pytest.raises(IllegalTransition, match=r"^a draw needs at least one slot$"):
        s.handle(DrawChosen(at(1), ()))
    s.handle(ReturnChosen(at(2), 12))
    with pytest.raises(IllegalTransition,
                       match=r"^slot 13 was not opened for a return in this session$"):
        s.handle(KeyInserted(at(3), 13))
