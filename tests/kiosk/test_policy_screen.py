"""policy.screen_keys: what each person is shown at the screen, and why (issue 14 item 2).

The screen never hides why a key cannot be drawn, and never shows a person what does not
concern them: a proxy sees only the units their letters name (K6), keys out are shown to
their borrower, and who holds a key only to a keeper.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace

from kiosk.policy import Holder, KeyView, screen_keys, standings
from tests.kiosk.test_policy import (
    ALICE,
    APPROVAL,
    AUTH,
    BOB,
    CARD,
    FRI_10AM,
    KEY,
    RIGHT,
    SPECIAL,
    ctx,
    proxy_ctx,
)

OTHER_UNIT = replace(
    KEY, id=uuid.uuid4(), key_number="U1601", label="1601 室", unit_id=uuid.uuid4()
)
MASTER = replace(
    KEY, id=uuid.uuid4(), key_number="M-01", label="总钥匙", unit_id=None, requires_cosign=True
)
OUT = replace(KEY, id=uuid.uuid4(), key_number="U0601", label="601 室", on_loan=True)
DUE = FRI_10AM + dt.timedelta(hours=7, minutes=30)


def by_number(views: list[KeyView]) -> dict[str, KeyView]:
    return {v.key.key_number: v for v in views}


def test_K6_a_proxy_never_sees_other_owners_units_or_master_keys() -> None:
    out_to_someone = replace(OTHER_UNIT, id=uuid.uuid4(), key_number="U1602", on_loan=True)
    holders = {out_to_someone.id: Holder(ALICE.id, ALICE.name, DUE)}
    views = by_number(
        screen_keys(proxy_ctx(AUTH), [KEY, OTHER_UNIT, MASTER, out_to_someone], holders)
    )
    assert set(views) == {"U1203"}
    assert views["U1203"].decision.allowed and views["U1203"].listed


def test_K6_a_proxys_own_unit_waiting_for_the_owners_call_is_shown_with_why() -> None:
    waiting = replace(AUTH, phone_confirmed=False)
    views = by_number(screen_keys(proxy_ctx(waiting), [KEY, OTHER_UNIT], {}))
    assert set(views) == {"U1203"}
    view = views["U1203"]
    assert (view.listed, view.decision.code) == (True, "phone_confirmation_required")


def test_a_key_out_is_listed_to_its_borrower_and_only_as_out_to_others() -> None:
    mine = by_number(screen_keys(ctx(), [OUT], {OUT.id: Holder(ALICE.id, ALICE.name, DUE)}))
    assert (mine["U0601"].listed, mine["U0601"].mine, mine["U0601"].holder) == (True, True, None)
    theirs = by_number(screen_keys(ctx(), [OUT], {OUT.id: Holder(BOB.id, BOB.name, DUE)}))
    view = theirs["U0601"]
    assert (view.listed, view.mine, view.decision.code) == (False, False, "key_out")
    assert view.holder is None  # who has it is no business of a colleague's


def test_a_keeper_sees_every_key_and_who_holds_those_out() -> None:
    custodian_ctx = ctx(person=BOB, rights=[replace(RIGHT, person_id=BOB.id)])
    holder = Holder(ALICE.id, "张伟", DUE)
    views = by_number(screen_keys(custodian_ctx, [OUT, OTHER_UNIT, MASTER], {OUT.id: holder}))
    assert all(v.listed for v in views.values())
    assert views["U0601"].holder == holder


def test_a_key_not_theirs_is_found_by_search_with_why_not_listed() -> None:
    no_right = replace(KEY, id=uuid.uuid4(), key_number="U0602", group_id=uuid.uuid4())
    views = by_number(screen_keys(ctx(card=CARD), [KEY, no_right, SPECIAL], {}))
    assert views["U0602"].listed is False
    assert views["U0602"].decision.code == "no_access_right"
    assert views["E-配电房-B1"].listed and views["E-配电房-B1"].decision.code == "approval_required"


def test_K6_a_hidden_key_before_the_proxys_unit_does_not_end_the_list() -> None:
    views = by_number(screen_keys(proxy_ctx(AUTH), [OTHER_UNIT, MASTER, KEY], {}))
    assert set(views) == {"U1203"}  # the other owner's unit and the master key came first


def test_a_key_out_to_someone_else_that_one_could_never_draw_says_why_not() -> None:
    """Searching a room whose key is out: a person without the right is told that (K3), not
    "out" (which would suggest waiting for it), and who has it is not said."""
    no_right = replace(OUT, id=uuid.uuid4(), key_number="U0603", group_id=uuid.uuid4())
    views = by_number(screen_keys(ctx(), [no_right], {no_right.id: Holder(BOB.id, BOB.name, DUE)}))
    view = views["U0603"]
    assert (view.listed, view.mine, view.decision.code) == (False, False, "no_access_right")
    assert view.decision.rules == ("K3",) and view.holder is None


def test_a_key_out_to_its_borrower_stays_theirs_even_when_they_could_not_draw_it_now() -> None:
    no_right = replace(OUT, id=uuid.uuid4(), key_number="U0604", group_id=uuid.uuid4())
    views = by_number(screen_keys(ctx(), [no_right], {no_right.id: Holder(ALICE.id, ALICE.name, DUE)}))
    view = views["U0604"]
    assert (view.listed, view.mine, view.decision.code) == (True, True, "key_out")


def test_a_keeper_is_told_a_key_is_out_and_by_whom_even_where_they_hold_no_right() -> None:
    custodian_ctx = ctx(person=BOB, rights=[replace(RIGHT, person_id=BOB.id)])
    no_right = replace(OUT, id=uuid.uuid4(), key_number="U0605", group_id=uuid.uuid4())
    holder = Holder(ALICE.id, "张伟", DUE)
    view = by_number(screen_keys(custodian_ctx, [no_right], {no_right.id: holder}))["U0605"]
    assert (view.listed, view.decision.code, view.holder) == (True, "key_out", holder)


def test_K7_a_special_room_out_to_someone_else_is_out_not_a_request_to_make() -> None:
    """Approval is worth requesting only for a key that is in: while it is out the person is
    told it is out, and it is not listed among the keys they could ask for."""
    special_out = replace(SPECIAL, id=uuid.uuid4(), on_loan=True)
    views = screen_keys(ctx(card=CARD), [special_out], {special_out.id: Holder(BOB.id, BOB.name, DUE)})
    [view] = views
    assert (view.listed, view.decision.code) == (False, "key_out")


def test_K7_an_approval_opens_its_own_special_room_not_its_neighbour_of_the_same_kind() -> None:
    """Keys alike in every other respect are decided once per screen (issue 15), but a
    special room's approval names one key: its twin in the same group and unit still waits."""
    twin = replace(SPECIAL, id=uuid.uuid4(), key_number="E-配电房-B2")
    views = by_number(screen_keys(ctx(approvals=[APPROVAL]), [SPECIAL, twin], {}))
    assert views["E-配电房-B1"].decision.allowed
    assert views["E-配电房-B2"].decision.code == "approval_required"


def test_the_cabinets_grouped_keys_give_the_same_screen_as_a_plain_list() -> None:
    """The cabinet hands the policy its keys already grouped by standing (issue 15's tap
    path); the screen is the same as for the keys one by one, for staff and for a keeper."""
    keys = [KEY, OTHER_UNIT, MASTER, OUT, SPECIAL]
    holders = {OUT.id: Holder(BOB.id, BOB.name, DUE)}
    custodian_ctx = ctx(person=BOB, rights=[replace(RIGHT, person_id=BOB.id)])
    for who in (ctx(), custodian_ctx):
        grouped = screen_keys(who, standings(keys), holders)
        assert grouped == screen_keys(who, keys, holders)
        assert [v.key.key_number for v in grouped] == [k.key_number for k in keys]


def test_K10_two_keys_out_of_one_standing_each_say_so_to_their_borrower_and_a_keeper() -> None:
    """Keys out of one standing share one verdict (issue 15's tap path): each key's view is
    still what it would be alone (code, rules, needs; listed, whose, held by), for the
    borrower of one of them and for a keeper. Only the reason's wording, which the screen
    does not show, names the standing's first key out."""
    mine = replace(KEY, id=uuid.uuid4(), key_number="U0611", label="611 室", on_loan=True)
    theirs = replace(KEY, id=uuid.uuid4(), key_number="U0612", label="612 室", on_loan=True)
    assert len(set(standings([mine, theirs]).classes)) == 1  # one standing: one verdict
    holders = {mine.id: Holder(ALICE.id, ALICE.name, DUE),
               theirs.id: Holder(BOB.id, BOB.name, DUE)}
    custodian_ctx = ctx(person=BOB, rights=[replace(RIGHT, person_id=BOB.id)])
    for who in (ctx(), custodian_ctx):
        together = by_number(screen_keys(who, [mine, theirs], holders))
        for key in (mine, theirs):
            alone = by_number(screen_keys(who, [key], holders))[key.key_number]
            shown = together[key.key_number]
            assert (shown.decision.code, shown.decision.rules, shown.decision.needs,
                    shown.decision.allowed, shown.listed, shown.mine, shown.holder) == (
                alone.decision.code, alone.decision.rules, alone.decision.needs,
                alone.decision.allowed, alone.listed, alone.mine, alone.holder)
            assert not shown.decision.allowed
    assert by_number(screen_keys(ctx(), [mine, theirs], holders))["U0611"].mine
