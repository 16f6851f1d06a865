"""H1 shift handover at the cabinet: two different keepers sign with their badges.

The outgoing custodian starts it from their screen; the report (keys out, open alarms with
their follow-ups, the count against the sensors) is frozen; only a badge tap by another
custodian, duty manager or supervisor accepts it, and then the signed report is stored.
"""

from __future__ import annotations

import json

import pytest
from rig import FRI_10AM, Rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.cabinet import CabinetError
from kiosk.services import alarms, tx
from kiosk.services.authz import Principal
from kiosk.store.models import Handover, HandoverState, Role
from kiosk.store.models_auth import AccountRole, TokenKind
from kiosk.store.models_reports import Report


def _handovers(rig: Rig) -> list[Handover]:
    with Session(rig.runtime.engine) as s:
        return list(s.scalars(select(Handover).order_by(Handover.started_at)))


def _reports(rig: Rig) -> list[Report]:
    with Session(rig.runtime.engine) as s:
        return list(s.scalars(select(Report).where(Report.kind == "handover")))


def _alarm_with_follow_up(rig: Rig, note: str) -> None:
    """An open discrepancy someone is working on: the handover must carry it and the note."""
    with tx.write(rig.runtime.audit) as s:
        alarm = alarms.raise_alarm(s, rig.runtime.audit, kind="key_damaged", rule="F1",
                                   message="U1205 key bent", actors=["test"],
                                   cabinet_id=rig.cabinet.cabinet_id)
        _, person = rig.card_of(role=Role.SUPERVISOR)
        by = Principal(account_id=alarm.id, username="sup", role=AccountRole.SUPERVISOR,
                       person_id=person.id, department_id=None, permissions=frozenset(),
                       token_id=alarm.id, token_kind=TokenKind.ACCESS)
        alarms.acknowledge(s, rig.runtime.audit, by=by, alarm_id=alarm.id, note=note)


async def test_handover_needs_both_taps_and_stores_the_signed_report_H1(rig: Rig) -> None:
    staff_uid, staff = rig.card_of(dept="ENG")
    await rig.drawn(staff_uid, "U1203")
    _alarm_with_follow_up(rig, "locksmith booked for Monday")
    out_uid, outgoing = rig.card_of(role=Role.CUSTODIAN, index=0)
    in_uid, incoming = rig.card_of(role=Role.CUSTODIAN, index=1)

    await rig.cabinet.tap(out_uid)
    screen = rig.cabinet.screen()
    assert screen["handover"] == {"can_start": True, "waiting": None}
    await rig.cabinet.start_handover("quiet shift")
    screen = rig.cabinet.screen()
    assert screen["state"] == "await_incoming"
    waiting = screen["handover"]["waiting"]
    assert waiting["outgoing"] == outgoing.name and waiting["key_list"] == ["U1203"]
    assert waiting["keys_out"] == 1 and waiting["open_alarms"] >= 1
    assert waiting["sensed_in"] == waiting["expected_in"] and waiting["mismatches"] == 0
    assert _reports(rig) == [], "nothing is stored as signed before the second tap"

    # The outgoing tapping again, or a staff member who keeps no register, does not accept.
    await rig.cabinet.tap(out_uid)
    assert rig.cabinet.screen()["message"]["code"] == "handover_same_person"
    await rig.cabinet.tap(staff_uid)
    assert rig.cabinet.screen()["message"]["code"] == "handover_not_keeper"
    await rig.cabinet.tap("DEADBEEF")  # a card nobody holds signs nothing
    assert rig.cabinet.screen()["message"]["code"] == "card_unknown"
    assert rig.cabinet.screen()["state"] == "await_incoming"
    assert [h.state for h in _handovers(rig)] == [HandoverState.STARTED]

    await rig.cabinet.tap(in_uid)
    screen = rig.cabinet.screen()
    assert screen["state"] == "idle" and screen["message"]["code"] == "handed_over"
    [row] = _handovers(rig)
    assert row.state == HandoverState.ACCEPTED
    assert (row.outgoing_id, row.outgoing_card) == (outgoing.id, out_uid)
    assert (row.incoming_id, row.incoming_card) == (incoming.id, in_uid)
    [report] = _reports(rig)
    assert row.report_id == report.id
    data = json.loads(report.content)
    assert data["outgoing"]["name"] == outgoing.name and data["outgoing"]["card"] == out_uid
    assert data["incoming"]["name"] == incoming.name and data["incoming"]["card"] == in_uid
    assert [k["key_number"] for k in data["keys_out"]] == ["U1203"]
    assert data["keys_out"][0]["borrower"] == staff.name
    bent = [a for a in data["open_alarms"] if a["kind"] == "key_damaged"]
    assert bent and bent[0]["follow_up"] == "locksmith booked for Monday"
    assert data["count"]["sensors_available"] and data["count"]["open_loans"] == 1
    assert data["drawn"] == 1 and data["notes"] == "quiet shift"
    denied = [(json.loads(e.payload)["code"], json.loads(e.rules))
              for e in rig.events("access.denied")]
    assert denied == [("handover_same_person", ["H1"]), ("handover_not_keeper", ["H1"]),
                      ("card_unknown", ["H1", "K3"])]
    types = [e.type for e in rig.events("handover.")]
    assert types == ["handover.started", "handover.accepted"]
    assert all(json.loads(e.rules) == ["H1"] for e in rig.events("handover."))


async def test_a_handover_waits_after_the_screen_times_out_and_is_accepted_later_H1(
    rig: Rig,
) -> None:
    out_uid, _ = rig.card_of(role=Role.CUSTODIAN, index=0)
    in_uid, incoming = rig.card_of(role=Role.SUPERVISOR)
    await rig.cabinet.tap(out_uid)
    await rig.cabinet.start_handover()
    rig.clock.advance(121)
    await rig.settle()
    screen = rig.cabinet.screen()
    assert screen["state"] == "idle" and screen["message"]["code"] == "incoming_timeout"

    # Ten minutes later the supervisor taps in: the waiting handover is offered to them.
    rig.clock.advance(600)
    await rig.cabinet.tap(in_uid)
    waiting = rig.cabinet.screen()["handover"]["waiting"]
    assert waiting["can_accept"] and not waiting["mine"]
    await rig.cabinet.accept_handover()
    [row] = _handovers(rig)
    assert row.state == HandoverState.ACCEPTED and row.incoming_id == incoming.id
    assert row.incoming_card == in_uid
    assert rig.cabinet.screen()["message"]["code"] == "handed_over"


async def test_a_lapsed_handover_cannot_be_accepted_and_a_new_one_replaces_it_H1(
    rig: Rig,
) -> None:
    out_uid, _ = rig.card_of(role=Role.CUSTODIAN, index=0)
    in_uid, _ = rig.card_of(role=Role.CUSTODIAN, index=1)
    await rig.cabinet.tap(out_uid)
    await rig.cabinet.start_handover()
    await rig.cabinet.cancel()  # the screen is left; the handover itself is cancelled
    assert [h.close_reason for h in _handovers(rig)] == ["cancelled_at_kiosk"]

    await rig.cabinet.tap(out_uid)
    await rig.cabinet.start_handover()
    rig.clock.advance(125)
    await rig.settle()
    rig.clock.advance(31 * 60)  # past the 30-minute acceptance window: the counts are stale
    await rig.cabinet.tap(in_uid)
    assert rig.cabinet.screen()["handover"] == {"can_start": True, "waiting": None}
    with pytest.raises(CabinetError) as refused:
        await rig.cabinet.accept_handover()
    assert refused.value.code == "handover_none"

    await rig.cabinet.start_handover()  # the incoming now hands over themselves
    states = [(h.state, h.close_reason) for h in _handovers(rig)]
    assert states == [(HandoverState.CANCELLED, "cancelled_at_kiosk"),
                      (HandoverState.CANCELLED, "expired"),
                      (HandoverState.STARTED, None)]
    assert [e.type for e in rig.events("handover.")] == [
        "handover.started", "handover.cancelled", "handover.started", "handover.lapsed",
        "handover.started"]


async def test_only_keepers_of_the_register_see_or_start_a_handover_H1(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG", exclude_roles=(Role.DEPT_LEADER,))
    await rig.cabinet.tap(uid)
    assert rig.cabinet.screen()["handover"] is None
    with pytest.raises(CabinetError) as refused:
        await rig.cabinet.start_handover()
    assert refused.value.code == "handover_not_keeper"
    assert _handovers(rig) == []


async def test_a_handover_reports_a_count_mismatch_H1(rig: Rig) -> None:
    """A key gone from its slot without a loan shows up in the handover's count."""
    slot, _ = rig.key("U1205")
    rig.hw.model.take(slot, force=True)  # prised out; the slot sensor sees it gone
    await rig.settle()
    out_uid, _ = rig.card_of(role=Role.CUSTODIAN, index=0)
    await rig.cabinet.tap(out_uid)
    await rig.cabinet.start_handover()
    [row] = _handovers(rig)
    data = json.loads(row.report)
    assert {"slot": slot, "key_number": "U1205", "problem": "missing"} in data["count"]["mismatches"]
    assert data["count"]["sensed_in"] == data["count"]["expected_in"] - 1


async def test_after_hours_a_handover_needs_no_duty_manager_H1_K8(rig: Rig) -> None:
    """K8 guards opening the cabinet; a handover opens no slot, so two keepers suffice."""
    rig.clock.set_local(FRI_10AM.replace(hour=20))
    out_uid, _ = rig.card_of(role=Role.CUSTODIAN, index=0)
    in_uid, _ = rig.card_of(role=Role.CUSTODIAN, index=1)
    await rig.cabinet.tap(out_uid)
    screen = rig.cabinet.screen()
    assert screen["state"] == "await_manager" and screen["handover"]["can_start"]
    await rig.cabinet.start_handover()
    await rig.cabinet.tap(in_uid)
    assert rig.cabinet.screen()["message"]["code"] == "handed_over"
    assert [h.state for h in _handovers(rig)] == [HandoverState.ACCEPTED]
    assert not any(rig.hw.model.is_unlocked(n) for n in range(1, 209)), "no slot moved"
