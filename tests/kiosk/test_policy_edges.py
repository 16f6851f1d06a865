"""kiosk.policy at its edges and in its words: what mutation testing found unpinned.

Every decision carries a code (the screen's message), a reason (written into the
``access.denied`` event and the alarms, so a person reads it later) and rule ids. The
first test pins all three for every decision the policy makes; the others pin the exact
boundaries of each time window (a second early or late is the difference between a door
that opens and one that does not). See docs/testing.md, "Mutation testing".
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest

from kiosk.policy import (
    ApprovalFacts,
    AuthorizationFacts,
    Calendar,
    CardFacts,
    Decision,
    DrawContext,
    Holder,
    KeyFacts,
    Need,
    PersonFacts,
    RightFacts,
    ShiftFacts,
    decide_cosign,
    decide_draw,
    decide_handover_signer,
    decide_night_pair,
    decide_return,
    decide_returner,
    drawable,
    identify,
    screen_keys,
)

SH = ZoneInfo("Asia/Shanghai")
CAL = Calendar(zone=SH, start=dt.time(8, 30), end=dt.time(18, 0),
               weekdays=frozenset({1, 2, 3, 4, 5}), holidays=frozenset({dt.date(2026, 10, 1)}))
FRI_10AM = dt.datetime(2026, 11, 27, 10, 0, tzinfo=SH)
FRI_11PM = dt.datetime(2026, 11, 27, 23, 0, tzinfo=SH)
GROUP, UNIT = uuid.uuid4(), uuid.uuid4()
ALICE = PersonFacts(uuid.uuid4(), "王芳", frozenset({"staff"}))
BOB = PersonFacts(uuid.uuid4(), "李强", frozenset({"staff", "custodian"}))
MGR = PersonFacts(uuid.uuid4(), "赵敏", frozenset({"staff", "duty_manager"}))
CARD = CardFacts("04A1B2C3", "active", "staff", None, None)
PROXY_CARD = CardFacts("04A1B2C3D4E5F6", "active", "owner_proxy", None, None)
KEY = KeyFacts(uuid.uuid4(), "U1203", "1203 室", GROUP, False, None, "active", False, 12, UNIT)
RIGHT = RightFacts(GROUP, person_id=ALICE.id)
AUTH = AuthorizationFacts(uuid.uuid4(), ALICE.id, frozenset({UNIT}),
                          FRI_10AM - dt.timedelta(days=1), FRI_10AM + dt.timedelta(days=1),
                          revoked=False, requires_phone_confirmation=True, phone_confirmed=False)
SHIFT = ShiftFacts(MGR.id, dt.datetime(2026, 11, 27, 18, 0, tzinfo=SH),
                   dt.datetime(2026, 11, 28, 8, 30, tzinfo=SH))


def ok() -> Decision:
    return identify(CARD, ALICE, FRI_10AM)


def lost() -> Decision:
    return identify(replace(CARD, status="lost"), ALICE, FRI_10AM)


def ctx(**kw: object) -> DrawContext:
    base: dict[str, object] = {"person": ALICE, "card": CARD, "now": FRI_10AM, "calendar": CAL,
                               "rights": [RIGHT]}
    return DrawContext(**{**base, **kw})  # type: ignore[arg-type]


def night(*, manager: PersonFacts = MGR, identified: Decision | None = None,
          after: float = 20, at: dt.datetime = FRI_11PM) -> Decision:
    return decide_night_pair(
        employee=ALICE, manager=manager,
        manager_identified=identified or identify(CARD, manager, at),
        first_tap_at=at - dt.timedelta(seconds=after), second_tap_at=at,
        window=dt.timedelta(seconds=60), roster=[SHIFT])


Make = Callable[[], Decision]

# Each decision is made inside the test (a lambda), not at import: a mutant must be live
# when the decision is computed.
CASES: list[tuple[str, Make, tuple[bool, str, str, tuple[str, ...]]]] = [
    # K3 badge
    ("no card", lambda: identify(None, ALICE, FRI_10AM), (False, "card_unknown", "card not registered", ("K3",))),
    ("no person", lambda: identify(CARD, None, FRI_10AM), (False, "card_unknown", "card not registered", ("K3",))),
    ("lost", lost, (False, "card_lost", "card reported lost", ("K3",))),
    ("revoked", lambda: identify(replace(CARD, status="revoked"), ALICE, FRI_10AM),
     (False, "card_revoked", "card revoked", ("K3",))),
    ("suspended", lambda: identify(replace(CARD, status="suspended"), ALICE, FRI_10AM),
     (False, "card_inactive", "card status suspended", ("K3",))),
    ("not yet", lambda: identify(replace(CARD, valid_from=FRI_10AM + dt.timedelta(seconds=1)), ALICE, FRI_10AM),
     (False, "card_not_yet_valid", "card not valid yet", ("K3",))),
    ("expired", lambda: identify(replace(CARD, valid_to=FRI_10AM), ALICE, FRI_10AM),
     (False, "card_expired", "card expired", ("K3",))),
    ("left", lambda: identify(CARD, replace(ALICE, active=False), FRI_10AM),
     (False, "person_inactive", "person is no longer active", ("K3",))),
    ("identified", ok, (True, "identified", "identified 王芳", ("K3",))),
    # draws: K2, K10, K3, K7, K6
    ("retired", lambda: decide_draw(ctx(), replace(KEY, status="retired")),
     (False, "key_retired", "key U1203 is retired", ("K2",))),
    ("out", lambda: decide_draw(ctx(), replace(KEY, on_loan=True)),
     (False, "key_out", "key U1203 is already out", ("K10",))),
    ("no slot", lambda: decide_draw(ctx(), replace(KEY, home_slot=None)),
     (False, "key_no_slot", "key U1203 has no slot", ("K2",))),
    ("no right", lambda: decide_draw(ctx(rights=[]), KEY),
     (False, "no_access_right", "王芳 may not draw U1203 now", ("K3",))),
    ("special", lambda: decide_draw(ctx(), replace(KEY, special=True)),
     (False, "approval_required",
      "U1203 is a special room: a department leader's approval is needed", ("K7",))),
    ("allowed", lambda: decide_draw(ctx(), KEY), (True, "allowed", "王芳 may draw U1203", ("K3",))),
    ("cosign", lambda: decide_draw(ctx(), replace(KEY, requires_cosign=True)),
     (True, "allowed", "王芳 may draw U1203", ("K3",))),
    ("at night", lambda: decide_draw(ctx(now=FRI_11PM), KEY),
     (True, "allowed", "王芳 may draw U1203", ("K3", "K8"))),
    ("proxy, no unit", lambda: decide_draw(ctx(card=PROXY_CARD, authorizations=[AUTH]), replace(KEY, unit_id=None)),
     (False, "proxy_not_unit_key", "a proxy may draw only an owner's unit key", ("K6",))),
    ("proxy, no letter", lambda: decide_draw(ctx(card=PROXY_CARD), KEY),
     (False, "no_authorization", "no letter of authorization for 1203 室", ("K6",))),
    ("proxy, old letter", lambda: decide_draw(ctx(card=PROXY_CARD, authorizations=[
        replace(AUTH, valid_to=FRI_10AM)]), KEY),
     (False, "authorization_expired", "the letter of authorization is not valid now", ("K6",))),
    ("proxy, no call", lambda: decide_draw(ctx(card=PROXY_CARD, authorizations=[AUTH]), KEY),
     (False, "phone_confirmation_required", "the owner's phone confirmation is not on record",
      ("K6",))),
    # K3 co-sign
    ("cosigner lost", lambda: decide_cosign(ALICE, BOB, lost()), (False, "card_lost", "card reported lost", ("K3",))),
    ("cosigner no custodian", lambda: decide_cosign(ALICE, MGR, ok()),
     (False, "cosigner_not_custodian", "赵敏 is not a key custodian", ("K3",))),
    ("cosigner is borrower", lambda: decide_cosign(BOB, BOB, ok()),
     (False, "cosigner_is_borrower", "the borrower cannot co-sign their own draw", ("K3",))),
    ("cosigned", lambda: decide_cosign(ALICE, BOB, ok()), (True, "cosigned", "co-signed by 李强", ("K3",))),
    # K8 night pair
    ("manager's card lost", lambda: night(identified=lost()),
     (False, "card_lost", "card reported lost", ("K8", "K3"))),
    ("same person", lambda: night(manager=ALICE),
     (False, "same_person_twice", "the same person tapped twice; two people are needed", ("K8",))),
    ("too late", lambda: night(after=61),
     (False, "second_tap_too_late", "the duty manager tapped after the 60 s window", ("K8",))),
    ("off duty", lambda: night(manager=replace(MGR, id=uuid.uuid4())),
     (False, "not_on_duty", "赵敏 is not the rostered duty manager now", ("K8",))),
    ("night pair", lambda: night(), (True, "night_pair", "opened with duty manager 赵敏", ("K8",))),
    # K4/K5 returns
    ("by borrower", lambda: decide_return(borrower_id=ALICE.id, returner_id=ALICE.id),
     (True, "returned", "returned by the borrower", ("K4",))),
    ("by fob", lambda: decide_return(borrower_id=ALICE.id, returner_id=None),
     (True, "returned_unidentified", "returned with a fob tap: the returner is not known",
      ("K4", "K5"))),
    ("by other", lambda: decide_return(borrower_id=ALICE.id, returner_id=BOB.id),
     (True, "returned_by_other", "returned by someone other than the borrower", ("K4", "K5"))),
    ("returner unknown", lambda: decide_returner(None, None, FRI_10AM),
     (False, "card_unknown", "card not registered", ("K4", "K3"))),
    ("returner expired", lambda: decide_returner(replace(CARD, valid_to=FRI_10AM), ALICE, FRI_10AM),
     (False, "card_expired", "card expired", ("K4", "K3"))),
    ("returner", lambda: decide_returner(CARD, ALICE, FRI_10AM),
     (True, "returner", "returned by 王芳", ("K4",))),
    # H1 handover
    ("signer lost", lambda: decide_handover_signer(BOB, lost()),
     (False, "card_lost", "card reported lost", ("H1", "K3"))),
    ("signer left", lambda: decide_handover_signer(replace(BOB, active=False), ok()),
     (False, "person_inactive", "李强 is not active", ("H1",))),
    ("signer no keeper", lambda: decide_handover_signer(ALICE, ok()),
     (False, "handover_not_keeper", "王芳 is not a custodian, duty manager or supervisor",
      ("H1",))),
    ("signer twice", lambda: decide_handover_signer(BOB, ok(), outgoing=BOB),
     (False, "handover_same_person", "the incoming staff member must be someone else", ("H1",))),
    ("signer", lambda: decide_handover_signer(BOB, ok(), outgoing=MGR),
     (True, "handover_signer", "李强 may sign the handover", ("H1",))),
]


@pytest.mark.parametrize("make,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_decision_says_what_and_why(
    make: Make, expected: tuple[bool, str, str, tuple[str, ...]]
) -> None:
    decision = make()
    assert (decision.allowed, decision.code, decision.reason, decision.rules) == expected


def test_a_staff_draw_names_no_letter_and_no_approval() -> None:
    decision = decide_draw(ctx(), KEY)
    assert decision.approval_id is None and decision.authorization_id is None


def test_the_screen_lists_a_key_that_is_out_with_its_reason() -> None:
    """A key out and a retired key are not drawable; the screen still shows the key out,
    with its reason, in the list of a person it concerns (its borrower), and says only
    "out" (no holder) to anyone else who finds it (issue 14: never hide why)."""
    out = replace(KEY, on_loan=True)
    retired = replace(KEY, key_number="U1204", status="retired")
    assert drawable(ctx(), [out, retired]) == []
    holder = Holder(person_id=ALICE.id, name=ALICE.name, due_at=FRI_10AM)
    views = screen_keys(ctx(), [out, retired], {out.id: holder})
    assert [(v.key.key_number, v.decision.code, v.listed, v.mine) for v in views] == [
        ("U1203", "key_out", True, True), ("U1204", views[1].decision.code, False, False)]
    assert views[1].decision.code != "allowed" and not views[1].decision.allowed


# ----------------------------------------------------------------- time boundaries
def at(hh: int, mm: int, ss: int = 0, day: int = 27, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hh, mm, ss, tzinfo=SH)


def test_business_hours_include_the_opening_second_and_exclude_the_closing_one() -> None:
    assert CAL.is_business_time(at(8, 30)) and not CAL.is_business_time(at(8, 29, 59))
    assert CAL.is_business_time(at(17, 59, 59)) and not CAL.is_business_time(at(18, 0))
    assert CAL.end_of_business_day(at(8, 30)) == at(18, 0)
    assert CAL.end_of_business_day(at(18, 0)) == at(8, 30, day=30)  # Friday → Monday


def test_a_key_drawn_after_closing_is_due_at_the_next_working_opening() -> None:
    thursday = dt.datetime(2026, 11, 26, 19, 0, tzinfo=SH)
    assert CAL.end_of_business_day(thursday) == at(8, 30)  # Friday morning
    before_a_holiday = dt.datetime(2026, 9, 30, 19, 0, tzinfo=SH)  # 1 October is a holiday
    assert CAL.end_of_business_day(before_a_holiday) == at(8, 30, day=2, month=10)


def test_a_calendar_without_a_working_day_within_a_year_is_refused() -> None:
    today = dt.date(2026, 11, 27)
    lonely = Calendar(zone=SH, start=dt.time(8, 30), end=dt.time(18, 0), weekdays=frozenset(),
                      extra_workdays=frozenset({today + dt.timedelta(days=367)}))
    with pytest.raises(ValueError, match=r"^no working day within a year: check the "
                                         r"business-hours calendar$"):
        lonely.end_of_business_day(dt.datetime.combine(today, dt.time(19), SH))
    within = replace(lonely, extra_workdays=frozenset({today + dt.timedelta(days=366)}))
    assert within.end_of_business_day(dt.datetime.combine(today, dt.time(19), SH)).date() \
        == today + dt.timedelta(days=366)


def test_K8_window_and_shift_edges() -> None:
    assert night(after=60).allowed and not night(after=60.001).allowed
    assert night(at=SHIFT.starts_at).allowed
    assert night(at=SHIFT.ends_at).code == "not_on_duty"


def test_K6_letter_valid_from_its_first_second_to_before_its_last() -> None:
    called = replace(AUTH, phone_confirmed=True)
    starts = decide_draw(ctx(card=PROXY_CARD, now=AUTH.valid_from, authorizations=[called]), KEY)
    assert starts.allowed
    ends = decide_draw(ctx(card=PROXY_CARD, now=AUTH.valid_to, authorizations=[called]), KEY)
    assert ends.code == "authorization_expired"


@pytest.mark.parametrize("right,covers", [
    (replace(RIGHT, valid_from=FRI_10AM), True),
    (replace(RIGHT, valid_from=FRI_10AM + dt.timedelta(seconds=1)), False),
    (replace(RIGHT, valid_to=FRI_10AM + dt.timedelta(seconds=1)), True),
    (replace(RIGHT, valid_to=FRI_10AM), False),
    (replace(RIGHT, start_time=dt.time(10, 0)), True),
    (replace(RIGHT, start_time=dt.time(10, 0, 1)), False),
    (replace(RIGHT, end_time=dt.time(10, 0, 1)), True),
    (replace(RIGHT, end_time=dt.time(10, 0)), False),
])
def test_K3_access_right_edges(right: RightFacts, covers: bool) -> None:
    assert decide_draw(ctx(rights=[right]), KEY).allowed is covers


def test_K3_access_right_hours_are_local_time() -> None:
    """10:00 in Shanghai is 02:00 UTC: a right for 09:00–11:00 covers it, one for 01:00–03:00
    does not, whatever the machine's zone."""
    assert decide_draw(ctx(rights=[replace(RIGHT, start_time=dt.time(9), end_time=dt.time(11))]),
                       KEY).allowed
    assert not decide_draw(ctx(now=FRI_10AM.astimezone(dt.UTC), rights=[replace(
        RIGHT, start_time=dt.time(1), end_time=dt.time(3))]), KEY).allowed


def test_approval_unused_here_is_not_named() -> None:
    approval = ApprovalFacts(uuid.uuid4(), KEY.id, ALICE.id, "approved",
                             FRI_10AM + dt.timedelta(hours=1))
    assert decide_draw(ctx(approvals=[approval]), KEY).approval_id is None


def test_a_card_is_valid_from_its_first_second() -> None:
    assert identify(replace(CARD, valid_from=FRI_10AM), ALICE, FRI_10AM).allowed


def test_an_allow_carries_what_else_is_needed() -> None:
    approval = uuid.uuid4()
    decision = Decision.allow("allowed", "王芳 may draw U1203", "K3", "K7",
                              needs=frozenset({Need.COSIGN}), approval_id=approval)
    assert (decision.needs, decision.approval_id, decision.rules) == (
        frozenset({Need.COSIGN}), approval, ("K3", "K7"))
