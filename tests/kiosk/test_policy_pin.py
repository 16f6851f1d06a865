"""The pure PIN rules of kiosk/policy.py: when a draw asks for a PIN, the lockout count, and
what a new PIN may be (README "PIN and duress"; the PIN is K3's second factor).

Precise on purpose: mutmut runs these against kiosk/policy.py, so a changed comparison or
constant (5 tries, 15 minutes, 4–8 digits, ``<`` for ``<=``) must fail one of them."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from kiosk import policy
from kiosk.policy import KeyFacts, PersonFacts, PinRule

NOW = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
MASTER = uuid.uuid4()
UNIT = uuid.uuid4()


def key(group: uuid.UUID, number: str = "M-01") -> KeyFacts:
    return KeyFacts(id=uuid.uuid4(), key_number=number, label=number, group_id=group,
                    requires_cosign=False, loan_minutes=None, status="active", on_loan=False,
                    home_slot=1)


def who(*roles: str) -> PersonFacts:
    return PersonFacts(uuid.uuid4(), "王伟", frozenset(roles))


def test_defaults_are_five_tries_and_fifteen_minutes() -> None:
    assert policy.PIN_MAX_TRIES == 5
    assert dt.timedelta(minutes=15) == policy.PIN_LOCKOUT
    rule = PinRule()
    assert (rule.max_tries, rule.lockout) == (5, dt.timedelta(minutes=15))
    assert rule.key_groups == frozenset() and rule.roles == frozenset()
    assert rule.after_hours is False


def test_no_rule_asks_for_nothing() -> None:
    assert policy.pin_causes(PinRule(), who("staff"), [key(MASTER)], business_time=False) == ()


def test_a_key_of_a_pin_group_asks_for_the_pin() -> None:
    rule = PinRule(key_groups=frozenset({MASTER}))
    assert policy.pin_causes(rule, who("staff"), [key(MASTER)], business_time=True) == (
        "key_group",)
    assert policy.pin_causes(rule, who("staff"), [key(UNIT, "U601")], business_time=True) == ()
    # one key of the group among others is enough
    assert policy.pin_causes(rule, who("staff"), [key(UNIT, "U601"), key(MASTER)],
                             business_time=True) == ("key_group",)


def test_a_role_asks_for_the_pin() -> None:
    rule = PinRule(roles=frozenset({"custodian"}))
    assert policy.pin_causes(rule, who("staff", "custodian"), [key(UNIT)],
                             business_time=True) == ("role",)
    assert policy.pin_causes(rule, who("staff"), [key(UNIT)], business_time=True) == ()


def test_after_hours_asks_only_after_hours() -> None:
    rule = PinRule(after_hours=True)
    assert policy.pin_causes(rule, who("staff"), [key(UNIT)], business_time=False) == (
        "after_hours",)
    assert policy.pin_causes(rule, who("staff"), [key(UNIT)], business_time=True) == ()
    # switched off, after hours asks nothing
    assert policy.pin_causes(PinRule(after_hours=False), who("staff"), [key(UNIT)],
                             business_time=False) == ()


def test_every_cause_is_named_in_order() -> None:
    rule = PinRule(key_groups=frozenset({MASTER}), roles=frozenset({"staff"}), after_hours=True)
    assert policy.pin_causes(rule, who("staff"), [key(MASTER)], business_time=False) == (
        "key_group", "role", "after_hours")


def test_the_lock_holds_until_its_end_exactly() -> None:
    until = NOW + dt.timedelta(minutes=15)
    assert policy.pin_locked(None, NOW) is False
    assert policy.pin_locked(until, NOW) is True
    assert policy.pin_locked(until, until - dt.timedelta(microseconds=1)) is True
    assert policy.pin_locked(until, until) is False


def test_the_fifth_wrong_pin_locks_the_card_for_fifteen_minutes() -> None:
    rule = PinRule()
    failures = 0
    for n in range(1, 5):
        tried = policy.after_pin_try(rule, failures=failures, correct=False, now=NOW)
        assert tried == policy.PinTry(n, None) and not tried.locked_now
        assert policy.pin_tries_left(rule, tried.failures) == 5 - n
        failures = tried.failures
    fifth = policy.after_pin_try(rule, failures=failures, correct=False, now=NOW)
    assert fifth == policy.PinTry(0, NOW + dt.timedelta(minutes=15))
    assert fifth.locked_now


def test_a_right_pin_clears_the_count() -> None:
    tried = policy.after_pin_try(PinRule(), failures=4, correct=True, now=NOW)
    assert tried == policy.PinTry(0, None)


def test_the_settings_change_tries_and_lock() -> None:
    rule = PinRule(max_tries=3, lockout=dt.timedelta(minutes=2))
    assert policy.after_pin_try(rule, failures=1, correct=False, now=NOW) == policy.PinTry(2)
    assert policy.after_pin_try(rule, failures=2, correct=False, now=NOW) == policy.PinTry(
        0, NOW + dt.timedelta(minutes=2))
    assert policy.pin_tries_left(rule, 2) == 1
    assert policy.pin_tries_left(rule, 7) == 0


@pytest.mark.parametrize(("pin", "duress", "problem"), [
    ("2580", None, None),
    ("25801470", None, None),
    ("2580", "2581", None),
    ("258", None, "pin_format"),  # 3 digits
    ("258014703", None, "pin_format"),  # 9 digits
    ("25a0", None, "pin_format"),
    ("２５８０", None, "pin_format"),  # full-width digits are not ASCII digits
    ("0000", None, "pin_too_simple"),
    ("1234", None, "pin_too_simple"),
    ("9876", None, "pin_too_simple"),
    ("1357", None, None),  # steps of two are not a run
    ("1123", None, None),
    ("2580", "2580", "duress_same_as_pin"),
    ("2580", "111", "pin_format"),
    ("2580", "4444", "pin_too_simple"),
])
def test_what_a_new_pin_may_be(pin: str, duress: str | None, problem: str | None) -> None:
    assert policy.PIN_MIN_DIGITS == 4 and policy.PIN_MAX_DIGITS == 8
    assert policy.pin_problem(pin, duress) == problem
