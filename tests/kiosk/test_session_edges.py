"""kiosk.session beyond the happy paths: what mutation testing found unpinned.

The H1 handover states, stocking a new cabinet (K1/K2) and the identity cabinet's wrong-key
swap, what a finished session leaves behind (nothing: the next person starts clean), which
reason each ending gives (the cabinet logs it), and the messages of the transitions the
table refuses. See docs/testing.md, "Mutation testing".
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
    KeySwapping,
    ManagerConfirmed,
    Received,
    Relock,
    ReturnChosen,
    Session,
    Show,
    State,
    StockChosen,
    Stocked,
    Timeout,
    Timeouts,
    Unlock,
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


def test_K1_K2_stocking_releases_every_slot_and_relocks_each_as_its_key_is_hung() -> None:
    s = Session(timeouts=Timeouts(stock=dt.timedelta(minutes=5)))
    s.handle(Identified(at(0), BOB))
    assert s.handle(StockChosen(at(1), (40, 41, 42))) == [Unlock((40, 41, 42)),
                                                         Show("stock_put")]
    assert (s.state, s.open_slots, s.pending_slots) == (State.STOCKING, (40, 41, 42), ())
    assert s.deadline == at(1 + 300)

    # one key hung: its slot alone relocks and is recorded; the timer starts again
    assert s.handle(KeyInserted(at(100), 41)) == [Relock((41,)), Stocked(41)]
    assert (s.state, s.open_slots, s.deadline) == (State.STOCKING, (40, 42), at(100 + 300))

    assert s.handle(KeyInserted(at(110), 40)) == [Relock((40,)), Stocked(40)]
    # the last one ends the session: nothing is left released
    assert s.handle(KeyInserted(at(120), 42)) == [
        Relock((42,)), Stocked(42), Show("idle"), Ended("stocked")]
    assert_clean(s)


def test_K2_stocking_left_unfinished_times_out_and_relocks_what_is_still_open() -> None:
    s = Session()
    s.handle(Identified(at(0), BOB))
    s.handle(StockChosen(at(1), (40, 41)))
    s.handle(KeyInserted(at(30), 40))
    assert s.handle(Timeout(at(30 + 599))) == []  # ten minutes after the last key, not before
    assert s.handle(Timeout(at(30 + 600))) == [Relock((41,)), Show("idle"),
                                               Ended("stock_timeout")]
    assert_clean(s)


def test_K1_stocking_refuses_no_slot_and_a_slot_it_did_not_release() -> None:
    s = Session()
    s.handle(Identified(at(0), BOB))
    with pytest.raises(IllegalTransition, match=r"^stocking needs at least one slot$"):
        s.handle(StockChosen(at(1), ()))
    assert s.state == State.CHOOSING
    s.handle(StockChosen(at(2), (40,)))
    with pytest.raises(IllegalTransition, match=r"^slot 41 was not released for stocking$"):
        s.handle(KeyInserted(at(3), 41))
    assert (s.state, s.open_slots) == (State.STOCKING, (40,))


def test_K4_a_wrong_key_swap_restarts_the_return_timer_in_the_same_state() -> None:
    s = Session(timeouts=Timeouts(put_back=dt.timedelta(seconds=30)))
    s.handle(Identified(at(0), ALICE))
    s.handle(ReturnChosen(at(1), 12))
    assert s.deadline == at(31)
    assert s.handle(KeySwapping(at(25), 12)) == []  # nothing opens or closes
    assert (s.state, s.open_slots, s.deadline) == (State.RETURNING, (12,), at(55))
    # restarted, not stopped: walking away still ends the return
    assert s.handle(Timeout(at(55))) == [Relock((12,)), Show("idle"), Ended("return_timeout")]
    s.handle(Identified(at(60), ALICE))
    s.handle(ReturnChosen(at(61), 12))
    with pytest.raises(IllegalTransition,
                       match=r"^slot 13 was not opened for a return in this session$"):
        s.handle(KeySwapping(at(62), 13))
