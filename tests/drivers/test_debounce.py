"""One read per tap: the debouncer driven by an injected clock."""

from __future__ import annotations

import pytest

from drivers.rfid.debounce import Debouncer

CARD = bytes.fromhex("04A1B2C3")
OTHER = bytes.fromhex("DEADBEEF")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def debouncer(clock: FakeClock) -> Debouncer:
    return Debouncer(hold_off_s=0.3, hold_off_polls=2, clock=clock)


def test_held_card_is_reported_once(debouncer: Debouncer, clock: FakeClock) -> None:
    assert debouncer.observe(CARD) is True
    for _ in range(50):
        clock.advance(0.05)
        assert debouncer.observe(CARD) is False
    assert debouncer.held == CARD


def test_retap_after_hold_off_is_a_new_read(debouncer: Debouncer, clock: FakeClock) -> None:
    assert debouncer.observe(CARD)
    clock.advance(0.05)
    debouncer.observe(None)
    clock.advance(0.25)
    debouncer.observe(None)
    assert debouncer.held == CARD  # two polls, but only 0.25 s absent
    clock.advance(0.1)
    debouncer.observe(None)
    assert debouncer.held is None
    clock.advance(0.05)
    assert debouncer.observe(CARD) is True


def test_short_absence_is_a_wobble_not_a_retap(debouncer: Debouncer, clock: FakeClock) -> None:
    debouncer.observe(CARD)
    for _ in range(3):  # three missed polls but only 0.15 s
        clock.advance(0.05)
        debouncer.observe(None)
    clock.advance(0.05)
    assert debouncer.observe(CARD) is False


def test_one_missed_poll_is_not_enough_even_if_long(
        debouncer: Debouncer, clock: FakeClock) -> None:
    debouncer.observe(CARD)
    clock.advance(1.0)
    debouncer.observe(None)  # a slow poller missed one answer
    clock.advance(1.0)
    assert debouncer.observe(CARD) is False


def test_absence_counter_restarts_when_card_seen_again(
        debouncer: Debouncer, clock: FakeClock) -> None:
    debouncer.observe(CARD)
    clock.advance(0.05)
    debouncer.observe(None)
    clock.advance(0.05)
    debouncer.observe(CARD)
    clock.advance(0.5)
    debouncer.observe(None)  # first absent poll of a new absence
    clock.advance(0.05)
    assert debouncer.observe(CARD) is False


def test_swapped_card_is_reported_at_once(debouncer: Debouncer, clock: FakeClock) -> None:
    assert debouncer.observe(CARD)
    clock.advance(0.05)
    assert debouncer.observe(OTHER) is True
    clock.advance(0.05)
    assert debouncer.observe(CARD) is True


def test_is_new_does_not_commit(debouncer: Debouncer) -> None:
    assert debouncer.is_new(CARD)
    assert debouncer.is_new(CARD)
    assert debouncer.observe(CARD)
    assert not debouncer.is_new(CARD)
    debouncer.reset()
    assert debouncer.is_new(CARD)


def test_nothing_seen_reports_nothing(debouncer: Debouncer, clock: FakeClock) -> None:
    for _ in range(5):
        clock.advance(0.1)
        assert debouncer.observe(None) is False
    assert debouncer.held is None


@pytest.mark.parametrize(("hold_off_s", "polls"), [(-0.1, 2), (11.0, 2), (0.3, 0), (0.3, 101)])
def test_bounds(hold_off_s: float, polls: int) -> None:
    with pytest.raises(ValueError):
        Debouncer(hold_off_s=hold_off_s, hold_off_polls=polls)
