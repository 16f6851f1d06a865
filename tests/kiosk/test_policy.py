"""kiosk.policy, rule by rule: for each rule the allowed case and every way of being denied."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest

from kiosk.policy import (
    ApprovalFacts,
    AuthorizationFacts,
    Calendar,
    CardFacts,
    DrawContext,
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
    due_at,
    identify,
)

SH = ZoneInfo("Asia/Shanghai")
CAL = Calendar(
    zone=SH,
    start=dt.time(8, 30),
    end=dt.time(18, 0),
    weekdays=frozenset({1, 2, 3, 4, 5}),
    holidays=frozenset({dt.date(2026, 10, 1)}),
    extra_workdays=frozenset({dt.date(2026, 10, 10)}),
)
FRI_10AM = dt.datetime(2026, 11, 27, 10, 0, tzinfo=SH)  # a Friday, business hours
FRI_11PM = dt.datetime(2026, 11, 27, 23, 0, tzinfo=SH)
GROUP = uuid.uuid4()
UNIT = uuid.uuid4()

ALICE = PersonFacts(uuid.uuid4(), "王芳", frozenset({"staff"}))
BOB = PersonFacts(uuid.uuid4(), "李强", frozenset({"staff", "custodian"}))
MGR = PersonFacts(uuid.uuid4(), "赵敏", frozenset({"staff", "duty_manager"}))
CARD = CardFacts("04A1B2C3", "active", "staff", None, None)
PROXY_CARD = CardFacts("04A1B2C3D4E5F6", "active", "owner_proxy", None, None)
KEY = KeyFacts(uuid.uuid4(), "U1203", "1203 室", GROUP, False, None, "active", False, 12, UNIT)
RIGHT = RightFacts(GROUP, person_id=ALICE.id)


def ctx(**kw: object) -> DrawContext:
    base: dict[str, object] = {
        "person": ALICE,
        "card": CARD,
        "now": FRI_10AM,
        "calendar": CAL,
        "rights": [RIGHT],
    }
    base.update(kw)
    return DrawContext(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- K3 badge
@pytest.mark.parametrize(
    "card,person,code",
    [
        (None, None, "card_unknown"),
        (replace(CARD, status="lost"), ALICE, "card_lost"),
        (replace(CARD, status="revoked"), ALICE, "card_revoked"),
        (replace(CARD, valid_to=FRI_10AM - dt.timedelta(days=1)), ALICE, "card_expired"),
        (replace(CARD, valid_from=FRI_10AM + dt.timedelta(days=1)), ALICE, "card_not_yet_valid"),
        (CARD, replace(ALICE, active=False), "person_inactive"),
    ],
)
def test_K3_badge_denials(card: CardFacts | None, person: PersonFacts | None, code: str) -> None:
    decision = identify(card, person, FRI_10AM)
    assert not decision.allowed
    assert (decision.code, decision.rules) == (code, ("K3",))


def test_K3_valid_badge_identifies() -> None:
    assert identify(CARD, ALICE, FRI_10AM).allowed


# ---------------------------------------------------------------------- K3 rights
def test_K3_access_right_allows_a_draw_in_business_hours_with_nothing_more_needed() -> None:
    d = decide_draw(ctx(), KEY)
    assert d.allowed and d.rules == ("K3",) and d.needs == frozenset()


@pytest.mark.parametrize(
    "right",
    [
        RightFacts(uuid.uuid4(), person_id=ALICE.id),  # another group
        RightFacts(GROUP, person_id=BOB.id),  # someone else's right
        RightFacts(GROUP, role="custodian"),  # a role Alice does not have
        RightFacts(GROUP, person_id=ALICE.id, weekdays="67"),  # weekends only
        RightFacts(GROUP, person_id=ALICE.id, start_time=dt.time(11), end_time=dt.time(19)),
        RightFacts(GROUP, person_id=ALICE.id, valid_to=FRI_10AM - dt.timedelta(seconds=1)),
    ],
)
def test_K3_no_covering_right_denies(right: RightFacts) -> None:
    d = decide_draw(ctx(rights=[right]), KEY)
    assert not d.allowed and d.code == "no_access_right" and d.rules == ("K3",)


def test_K3_role_right_covers_everyone_with_the_role() -> None:
    assert decide_draw(ctx(rights=[RightFacts(GROUP, role="staff")]), KEY).allowed


def test_K3_cosign_group_needs_a_custodian_other_than_the_borrower() -> None:
    d = decide_draw(ctx(), replace(KEY, requires_cosign=True))
    assert d.allowed and d.needs == {Need.COSIGN}
    ok = identify(CARD, BOB, FRI_10AM)
    assert decide_cosign(ALICE, BOB, ok).allowed
    assert decide_cosign(ALICE, MGR, ok).code == "cosigner_not_custodian"
    assert decide_cosign(BOB, BOB, ok).code == "cosigner_is_borrower"
    lost = identify(replace(CARD, status="lost"), BOB, FRI_10AM)
    assert decide_cosign(ALICE, BOB, lost).code == "card_lost"


# ----------------------------------------------------------------- K2 / K10 key state
@pytest.mark.parametrize(
    "key,code,rule",
    [
        (replace(KEY, status="retired"), "key_retired", "K2"),
        (replace(KEY, on_loan=True), "key_out", "K10"),
        (replace(KEY, home_slot=None), "key_no_slot", "K2"),
    ],
)
def test_key_state_denials(key: KeyFacts, code: str, rule: str) -> None:
    d = decide_draw(ctx(), key)
    assert (d.allowed, d.code, d.rules) == (False, code, (rule,))


# --------------------------------------------------------------------------- K6 proxy
PROXY = PersonFacts(uuid.uuid4(), "陈静", frozenset({"staff"}))
AUTH = AuthorizationFacts(
    uuid.uuid4(),
    PROXY.id,
    frozenset({UNIT}),
    FRI_10AM - dt.timedelta(days=1),
    FRI_10AM + dt.timedelta(days=30),
    revoked=False,
    requires_phone_confirmation=True,
    phone_confirmed=True,
)


def proxy_ctx(*auths: AuthorizationFacts, phone_required: bool = True) -> DrawContext:
    return ctx(
        person=PROXY,
        card=PROXY_CARD,
        rights=[],
        authorizations=list(auths),
        phone_confirmation_required=phone_required,
    )


def test_K6_proxy_with_letter_and_phone_confirmation_draws_the_owners_unit_key() -> None:
    d = decide_draw(proxy_ctx(AUTH), KEY)
    assert d.allowed and d.rules == ("K6",) and d.authorization_id == AUTH.id


@pytest.mark.parametrize(
    "auth,key,code",
    [
        (None, KEY, "no_authorization"),
        (replace(AUTH, unit_ids=frozenset({uuid.uuid4()})), KEY, "no_authorization"),
        (replace(AUTH, revoked=True), KEY, "no_authorization"),
        (replace(AUTH, valid_to=FRI_10AM - dt.timedelta(hours=1)), KEY, "authorization_expired"),
        (replace(AUTH, phone_confirmed=False), KEY, "phone_confirmation_required"),
        (AUTH, replace(KEY, unit_id=None), "proxy_not_unit_key"),
    ],
)
def test_K6_proxy_denials(auth: AuthorizationFacts | None, key: KeyFacts, code: str) -> None:
    d = decide_draw(proxy_ctx(*([auth] if auth else [])), key)
    assert (d.allowed, d.code, d.rules) == (False, code, ("K6",))


def test_K6_phone_confirmation_only_where_policy_asks() -> None:
    unconfirmed = replace(AUTH, phone_confirmed=False)
    assert decide_draw(proxy_ctx(unconfirmed, phone_required=False), KEY).allowed
    assert decide_draw(
        proxy_ctx(replace(unconfirmed, requires_phone_confirmation=False)), KEY
    ).allowed


def test_K6_staff_rights_do_not_extend_to_a_proxy_card() -> None:
    d = decide_draw(ctx(card=PROXY_CARD, rights=[RIGHT]), KEY)
    assert not d.allowed and d.rules == ("K6",)


# ---------------------------------------------------------------------- K7 special
SPECIAL = replace(KEY, key_number="E-配电房-B1", special=True)
APPROVAL = ApprovalFacts(
    uuid.uuid4(), SPECIAL.id, ALICE.id, "approved", FRI_10AM + dt.timedelta(hours=4)
)


def test_K7_special_room_with_approval_is_allowed_and_names_it() -> None:
    d = decide_draw(ctx(approvals=[APPROVAL]), SPECIAL)
    assert d.allowed and d.rules == ("K3", "K7") and d.approval_id == APPROVAL.id


@pytest.mark.parametrize(
    "approval",
    [
        None,
        replace(APPROVAL, status="pending"),
        replace(APPROVAL, status="rejected"),
        replace(APPROVAL, status="used"),  # used once
        replace(APPROVAL, valid_until=FRI_10AM),
        replace(APPROVAL, requested_for_id=BOB.id),
        replace(APPROVAL, key_id=uuid.uuid4()),
    ],
)
def test_K7_special_room_without_a_valid_approval_is_denied(approval: ApprovalFacts | None) -> None:
    d = decide_draw(ctx(approvals=[approval] if approval else []), SPECIAL)
    assert (d.allowed, d.code, d.rules) == (False, "approval_required", ("K7",))


def test_K7_screen_lists_special_keys_as_needing_approval_but_hides_forbidden_ones() -> None:
    other = replace(KEY, id=uuid.uuid4(), key_number="U0601", group_id=uuid.uuid4())
    listed = {k.key_number: d.code for k, d in drawable(ctx(), [KEY, SPECIAL, other])}
    assert listed == {"U1203": "allowed", "E-配电房-B1": "approval_required"}


# ------------------------------------------------------------------------ K8 night
def test_K8_after_hours_a_draw_needs_the_duty_manager() -> None:
    for when in (
        FRI_11PM,
        dt.datetime(2026, 11, 28, 10, 0, tzinfo=SH),  # Saturday
        dt.datetime(2026, 10, 1, 10, 0, tzinfo=SH),
    ):  # National Day holiday
        d = decide_draw(ctx(now=when), KEY)
        assert d.allowed and Need.DUTY_MANAGER in d.needs and "K8" in d.rules
    makeup_saturday = dt.datetime(2026, 10, 10, 10, 0, tzinfo=SH)
    assert Need.DUTY_MANAGER not in decide_draw(ctx(now=makeup_saturday), KEY).needs


ROSTER = [
    ShiftFacts(
        MGR.id,
        FRI_10AM.replace(hour=18),
        FRI_10AM.replace(hour=18) + dt.timedelta(hours=14, minutes=30),
    )
]
WINDOW = dt.timedelta(seconds=60)


def night(manager: PersonFacts = MGR, after: int = 20, card: CardFacts = CARD) -> str:
    d = decide_night_pair(
        employee=ALICE,
        manager=manager,
        manager_identified=identify(card, manager, FRI_11PM),
        first_tap_at=FRI_11PM,
        second_tap_at=FRI_11PM + dt.timedelta(seconds=after),
        window=WINDOW,
        roster=ROSTER,
    )
    assert "K8" in d.rules
    return d.code


def test_K8_night_pair_cases() -> None:
    assert night() == "night_pair"
    assert night(manager=ALICE) == "same_person_twice"
    assert night(after=61) == "second_tap_too_late"
    assert night(manager=BOB) == "not_on_duty"
    assert night(card=replace(CARD, status="revoked")) == "card_revoked"


# ---------------------------------------------------------------------- K4/K5 return
def test_K4_K5_return_by_borrower_other_or_fob_only() -> None:
    assert decide_return(borrower_id=ALICE.id, returner_id=ALICE.id).rules == ("K4",)
    other = decide_return(borrower_id=ALICE.id, returner_id=BOB.id)
    assert other.allowed and other.code == "returned_by_other" and "K5" in other.rules
    assert decide_return(borrower_id=ALICE.id, returner_id=None).code == "returned_unidentified"


def test_K4_the_badge_after_a_fob_must_identify_the_returner() -> None:
    now = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    assert decide_returner(CARD, ALICE, now).rules == ("K4",)
    unknown = decide_returner(None, None, now)
    assert not unknown.allowed and unknown.code == "card_unknown"
    assert unknown.rules == ("K4", "K3")
    lost = decide_returner(replace(CARD, status="lost"), ALICE, now)
    assert not lost.allowed and lost.rules == ("K4", "K3")


def test_H1_two_different_keepers_sign_a_handover() -> None:
    now = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    ok = identify(CARD, BOB, now)
    assert decide_handover_signer(BOB, ok).rules == ("H1",)
    assert decide_handover_signer(MGR, ok, outgoing=BOB).allowed
    assert decide_handover_signer(BOB, ok, outgoing=BOB).code == "handover_same_person"
    assert decide_handover_signer(ALICE, ok).code == "handover_not_keeper"
    gone = decide_handover_signer(replace(MGR, active=False), ok, outgoing=BOB)
    assert gone.code == "person_inactive" and gone.rules == ("H1",)
    refused = decide_handover_signer(BOB, identify(None, None, now))
    assert refused.code == "card_unknown" and refused.rules == ("H1", "K3")


# ---------------------------------------------------------------------------- due back
def test_due_back_by_group_time_or_end_of_business_day() -> None:
    assert due_at(replace(KEY, loan_minutes=120), FRI_10AM, CAL) == FRI_10AM + dt.timedelta(hours=2)
    assert due_at(KEY, FRI_10AM, CAL) == FRI_10AM.replace(hour=18)
    # drawn Friday night: due when the office opens on Monday
    assert due_at(KEY, FRI_11PM, CAL) == dt.datetime(2026, 11, 30, 8, 30, tzinfo=SH)
    # drawn before opening on a workday: due at that morning's opening
    early = dt.datetime(2026, 11, 27, 6, 0, tzinfo=SH)
    assert due_at(KEY, early, CAL) == dt.datetime(2026, 11, 27, 8, 30, tzinfo=SH)
