"""kiosk.session: every transition of the table, every timeout, and the illegal ones."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from kiosk.session import (
    TRANSITIONS,
    Cancelled,
    Cosigned,
    DrawChosen,
    Ended,
    FobTapped,
    Identified,
    IllegalTransition,
    IntakeChosen,
    KeyInserted,
    KeyRemoved,
    ManagerConfirmed,
    NotTaken,
    Received,
    Relock,
    ReturnChosen,
    Returned,
    Session,
    Show,
    State,
    StillHere,
    Taken,
    Timeout,
    Unlock,
)

T0 = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
ALICE, BOB, MGR = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_day_draw_unlocks_then_records_the_loan_when_the_key_leaves_K3() -> None:
    s = Session()
    assert s.handle(Identified(at(0), ALICE)) == [Show("choose")]
    assert s.state == State.CHOOSING
    assert s.handle(DrawChosen(at(5), (12,))) == [Unlock((12,)), Show("take_key")]
    assert s.state == State.RELEASING
    out = s.handle(KeyRemoved(at(8), 12))
    assert out[:2] == [Relock((12,)), Taken(12)]
    assert Ended("drawn") in out and s.state == State.IDLE


def test_two_keys_in_one_draw_end_when_both_have_left() -> None:
    s = Session()
    s.handle(Identified(at(0), ALICE))
    s.handle(DrawChosen(at(1), (3, 4)))
    assert s.handle(KeyRemoved(at(2), 4)) == [Relock((4,)), Taken(4)]
    assert s.state == State.RELEASING
    assert Ended("drawn") in s.handle(KeyRemoved(at(3), 3))


def test_key_not_taken_in_time_relocks_and_is_recorded() -> None:
    s = Session()
    s.handle(Identified(at(0), ALICE))
    s.handle(DrawChosen(at(1), (7,)))
    assert s.handle(Timeout(at(10))) == []  # not yet: a stale timer changes nothing
    out = s.handle(Timeout(at(21)))
    assert out[0] == NotTaken((7,)) and Relock((7,)) in out and Ended("not_taken") in out
    assert s.state == State.IDLE and s.open_slots == ()


def test_cosign_holds_the_slot_shut_until_a_custodian_taps_K3() -> None:
    s = Session()
    s.handle(Identified(at(0), ALICE))
    assert s.handle(DrawChosen(at(1), (9,), needs_cosign=True)) == [Show("await_cosign")]
    assert s.state == State.AWAIT_COSIGN
    assert s.handle(Cosigned(at(5), BOB)) == [Unlock((9,)), Show("take_key")]
    assert s.custodian_id == BOB


def test_night_opening_waits_for_the_duty_manager_K8() -> None:
    s = Session()
    assert s.handle(Identified(at(0), ALICE, night=True)) == [Show("await_manager")]
    with pytest.raises(IllegalTransition):
        s.handle(DrawChosen(at(1), (1,)))  # nothing opens before the manager taps
    assert s.handle(ManagerConfirmed(at(30), MGR)) == [Show("choose")]
    assert s.manager_id == MGR


def test_night_opening_times_out_without_the_manager_K8() -> None:
    s = Session()
    s.handle(Identified(at(0), ALICE, night=True))
    assert Ended("manager_timeout") in s.handle(Timeout(at(61)))


def test_return_opens_the_home_slot_and_closes_on_insert_K4() -> None:
    s = Session()
    assert s.handle(FobTapped(at(0), 12)) == [Show("await_returner")]  # nothing opens yet
    assert s.pending_slots == (12,)
    assert s.handle(ReturnChosen(at(0), 12)) == [Unlock((12,)), Show("put_back")]
    out = s.handle(KeyInserted(at(4), 12))
    assert out[:2] == [Relock((12,)), Returned(12)] and Ended("returned") in out


def test_intake_opens_a_free_slot_for_the_new_key_K1() -> None:
    s = Session()
    s.handle(Identified(at(0), BOB))
    assert s.handle(IntakeChosen(at(1), 200)) == [Unlock((200,)), Show("intake_put")]
    assert Received(200) in s.handle(KeyInserted(at(3), 200))


@pytest.mark.parametrize(
    "setup,timeout_at,reason",
    [
        ([Identified(at(0), ALICE)], 61, "choose_timeout"),
        ([Identified(at(0), ALICE), DrawChosen(at(0), (1,), True)], 61, "cosign_timeout"),
        ([FobTapped(at(0), 5)], 21, "returner_timeout"),
        ([FobTapped(at(0), 5), ReturnChosen(at(0), 5)], 31, "return_timeout"),
        ([Identified(at(0), BOB), IntakeChosen(at(0), 6)], 31, "intake_timeout"),
    ],
)
def test_every_waiting_state_times_out_and_relocks(
    setup: list[object], timeout_at: int, reason: str
) -> None:
    s = Session()
    for event in setup:
        s.handle(event)  # type: ignore[arg-type]
    out = s.handle(Timeout(at(timeout_at)))
    assert Ended(reason) in out and s.state == State.IDLE
    if any(isinstance(e, (ReturnChosen, IntakeChosen)) for e in setup):
        assert any(isinstance(c, Relock) for c in out)


def test_cancel_from_any_active_state_relocks_open_slots() -> None:
    s = Session()
    s.handle(Identified(at(0), ALICE))
    s.handle(DrawChosen(at(1), (2, 3)))
    out = s.handle(Cancelled(at(2)))
    assert out[0] == Relock((2, 3)) and s.state == State.IDLE


def test_illegal_transitions_raise() -> None:
    s = Session()
    for event in (
        KeyRemoved(at(0), 1),
        Cosigned(at(0), BOB),
        Timeout(at(0)),
        Cancelled(at(0)),
        ManagerConfirmed(at(0), MGR),
        DrawChosen(at(0), (1,)),
    ):
        with pytest.raises(IllegalTransition):
            s.handle(event)
    s.handle(Identified(at(0), ALICE))
    with pytest.raises(IllegalTransition):
        s.handle(Identified(at(1), BOB))  # a second badge mid-session is not a new session
    s.handle(DrawChosen(at(1), (4,)))
    with pytest.raises(IllegalTransition, match="slot 5 was not released"):
        s.handle(KeyRemoved(at(2), 5))


def test_transition_table_covers_timeout_and_cancel_for_every_active_state() -> None:
    active = [st for st in State if st != State.IDLE]
    for st in active:
        assert (st, Timeout) in TRANSITIONS and (st, Cancelled) in TRANSITIONS
    assert (State.IDLE, Timeout) not in TRANSITIONS


def test_touches_while_choosing_restart_the_choice_timer() -> None:
    s = Session()
    s.handle(Identified(at(0), ALICE))
    s.handle(StillHere(at(50)))
    assert s.handle(Timeout(at(61))) == []  # 60 s from the last touch, not from the tap
    assert Ended("choose_timeout") in s.handle(Timeout(at(111)))
