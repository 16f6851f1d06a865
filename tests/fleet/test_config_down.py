"""Keys, their home slots, approvals (K7), units, owners and letters of authorization (K6)
flow down from the hub to the cabinets that need them, and the ownership cases of issue 12
item 6: an approval used at one cabinet cannot be used at another; a key moving to another
cabinet (also while it is out).

The hub is ``runtime`` (SQLite, or PostgreSQL with its triggers when
``KIOSK_TEST_POSTGRES=1``); each cabinet is a runtime on a SQLite database of its own, as on
a Pi. Changes travel through the same functions as over the wire (``changes_since`` →
``apply_changes``), and facts go up through ``read_batch`` → ``ingest``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.device_key import load_or_create
from kiosk.config import CabinetSettings, PinSettings, Settings
from kiosk.errors import InvalidRequest
from kiosk.fleet import hub, site_settings, site_settings_hub
from kiosk.fleet.apply import apply_changes, apply_pending_moves, config_version
from kiosk.fleet.changes import changes_since, install_change_tracking, prepare_hub_database
from kiosk.fleet.ingest import Batch, ingest
from kiosk.fleet.link import read_batch
from kiosk.records import consume_approval
from kiosk.runtime import Runtime
from kiosk.services import approvals, tx
from kiosk.services.authz import ROLE_PERMISSIONS, Principal
from kiosk.store.db import write_session
from kiosk.store.models import (
    Approval,
    ApprovalStatus,
    AuthorizationUnit,
    Cabinet,
    Department,
    Event,
    Key,
    KeyCategory,
    KeyGroup,
    KeyStatus,
    Loan,
    Owner,
    OwnerAuthorization,
    Person,
    PersonRole,
    Role,
    Slot,
    Unit,
)
from kiosk.store.models_auth import AccountRole, TokenKind
from kiosk.store.models_fleet import HubAlarm, HubCabinet

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Fleet:
    hub: Runtime
    hub_log: AuditLog
    a: Runtime
    b: Runtime
    key_id: uuid.UUID
    approval_id: uuid.UUID


def _slots(session: Session, code: str, count: int = 4) -> None:
    cabinet = session.scalars(select(Cabinet).where(Cabinet.code == code)).one()
    for n in range(1, count + 1):
        session.add(Slot(cabinet_id=cabinet.id, number=n))


def _hub_slot(session: Session, code: str, number: int) -> uuid.UUID:
    return session.scalars(select(Slot.id).join(Cabinet).where(
        Cabinet.code == code, Slot.number == number)).one()


@pytest.fixture
def fleet(runtime: Runtime, tmp_path: Path) -> Iterator[Fleet]:
    hub_log = AuditLog(runtime.engine, cabinet_id="hub",
                       device_key=load_or_create(tmp_path / "hub.pem"))
    install_change_tracking(runtime.engine)
    prepare_hub_database(runtime.engine)
    cabinets = {code: Runtime.open(Settings(data_dir=tmp_path / code, cabinet_id=code))
                for code in ("cab-a", "cab-b")}
    try:
        with write_session(runtime.engine) as s:
            hub.create_site(s, hub_log, code="tower-a", name="Tower A", actors=["test"])
        for code, cab in cabinets.items():
            with write_session(runtime.engine) as s:
                secret, _ = hub.create_enrolment_code(s, hub_log, site_code="tower-a",
                                                      actors=["test"])
            with write_session(runtime.engine) as s:
                hub.enrol(s, hub_log, code=secret, cabinet_id=code,
                          public_key_hex=cab.device_key.public_hex)
            with write_session(runtime.engine) as s:
                _slots(s, code)  # the hub's record of the cabinet's slots
            with write_session(cab.engine) as s:
                _slots(s, code)  # the cabinet's own slots (commissioned on the Pi)
        with write_session(runtime.engine) as s:
            staff = Person(staff_no="E1001", name="张工")
            proxy = Person(staff_no="P3001", name="代理人")
            group = KeyGroup(code="OFFICE", name="办公室")
            owner = Owner(name="业主王", phone="13800000000")
            s.add_all([staff, proxy, group, owner])
            s.flush()
            unit = Unit(room_number="1201", floor=12, owner_id=owner.id, special=True)
            s.add(unit)
            s.flush()
            key = Key(key_number="K-1201", label="1201 室", unit_id=unit.id, group_id=group.id,
                      category=KeyCategory.UNIT, home_slot_id=_hub_slot(s, "cab-a", 2))
            s.add(key)
            s.flush()
            approval = Approval(key_id=key.id, requested_for_id=staff.id,
                                status=ApprovalStatus.APPROVED, reason="维修",
                                valid_until=NOW + dt.timedelta(days=1), decided_at=NOW)
            letter = OwnerAuthorization(owner_id=owner.id, proxy_id=proxy.id,
                                        letter_ref="WT-7", valid_from=NOW - dt.timedelta(days=1),
                                        valid_to=NOW + dt.timedelta(days=30),
                                        units=[AuthorizationUnit(unit_id=unit.id)])
            s.add_all([approval, letter])
            s.flush()
            key_id, approval_id = key.id, approval.id
        yield Fleet(runtime, hub_log, cabinets["cab-a"], cabinets["cab-b"], key_id,
                    approval_id)
    finally:
        for cab in cabinets.values():
            cab.close()


def pull(fleet: Fleet, cab: Runtime) -> list[dict[str, Any]]:
    """One answer of the hub to this cabinet, applied; returns the changes it carried."""
    with Session(cab.engine) as s:
        since = config_version(s)
    with Session(fleet.hub.engine) as s:
        version, changes = changes_since(s, since, cab.settings.cabinet_id)
    apply_changes(cab.audit, version=version, changes=changes)
    return changes


def ship(fleet: Fleet, cab: Runtime) -> None:
    """The cabinet's log and records up to the hub (what the shipper posts)."""
    code = cab.settings.cabinet_id
    with Session(fleet.hub.engine) as s:
        from kiosk.store.models_fleet import HubCabinet

        acked = s.scalars(select(HubCabinet.acked_seq).where(
            HubCabinet.cabinet_id == code)).one()
    ingest(fleet.hub_log, cabinet_id=code,
           batch=Batch.parse(read_batch(cab.engine, code, acked, 500)))


def local_key(cab: Runtime, key_number: str = "K-1201") -> tuple[str, int | None] | None:
    """(status, home slot number) of the cabinet's copy of a key; None if it has none."""
    with Session(cab.engine) as s:
        key = s.scalars(select(Key).where(Key.key_number == key_number)).first()
        if key is None:
            return None
        slot = s.get(Slot, key.home_slot_id) if key.home_slot_id else None
        return key.status.value, slot.number if slot else None


def draw_with_approval(cab: Runtime, approval_id: uuid.UUID) -> uuid.UUID:
    """A draw at ``cab`` that uses the approval (K7), as the cabinet's draw records it."""
    with write_session(cab.engine) as s:
        key = s.scalars(select(Key).where(Key.key_number == "K-1201")).one()
        person = s.scalars(select(Person).where(Person.staff_no == "E1001")).one()
        cabinet = s.scalars(select(Cabinet).where(
            Cabinet.code == cab.settings.cabinet_id)).one()
        stored = cab.audit.append_in(s, NewEvent(type="key.drawn", key_number="K-1201",
                                                 payload={"approval": str(approval_id)}))
        loan = Loan(key_id=key.id, cabinet_id=cabinet.id, borrower_id=person.id,
                    approval_id=approval_id, reason_code="repair", drawn_at=NOW,
                    due_at=NOW + dt.timedelta(hours=2), draw_event_seq=stored.seq)
        s.add(loan)
        s.flush()
        consume_approval(s, approval_id=approval_id, loan_id=loan.id)
        return loan.id


def move_key(fleet: Fleet, to: str, slot: int) -> None:
    with write_session(fleet.hub.engine) as s:
        key = s.get(Key, fleet.key_id)
        assert key is not None
        key.home_slot_id = _hub_slot(s, to, slot)


def test_keys_and_what_hangs_off_them_go_only_to_their_home_cabinet_K6_K7(
        fleet: Fleet) -> None:
    pull(fleet, fleet.a)
    pull(fleet, fleet.b)
    assert local_key(fleet.a) == ("active", 2)
    assert local_key(fleet.b) is None
    with Session(fleet.a.engine) as s:
        approval = s.get(Approval, fleet.approval_id)
        assert approval is not None and approval.status == ApprovalStatus.APPROVED
        letter = s.scalars(select(OwnerAuthorization)).one()
        assert letter.letter_ref == "WT-7" and [u.unit_id for u in letter.units] == [
            s.scalars(select(Unit.id).where(Unit.room_number == "1201")).one()]
        assert s.scalars(select(Owner.phone)).one() == "13800000000"
    with Session(fleet.b.engine) as s:  # A1: an owner's phone goes only where it is needed
        assert s.scalars(select(Owner)).all() == []
        assert s.scalars(select(Approval)).all() == []
        assert s.scalars(select(Person.staff_no).order_by(Person.staff_no)).all() == [
            "E1001", "P3001"]  # people go everywhere (a card works at every site)

    # A letter revoked at the hub reaches its cabinet (K6).
    with write_session(fleet.hub.engine) as s:
        s.scalars(select(OwnerAuthorization)).one().revoked = True
    assert [c["entity"] for c in pull(fleet, fleet.a)] == ["owner_authorization"]
    with Session(fleet.a.engine) as s:
        assert s.scalars(select(OwnerAuthorization.revoked)).one() is True


def test_an_approval_used_at_one_cabinet_cannot_be_used_at_another_K7(fleet: Fleet) -> None:
    pull(fleet, fleet.a)
    loan_id = draw_with_approval(fleet.a, fleet.approval_id)
    ship(fleet, fleet.a)  # the hub learns of the use from the loan record

    # The key then moves to cab-b: it arrives there, but its approval arrives spent.
    move_key(fleet, "cab-b", 1)
    changes = pull(fleet, fleet.b)
    assert local_key(fleet.b) == ("active", 1)
    spent = next(c["row"] for c in changes if c["entity"] == "approval")
    assert spent["status"] == "used" and spent["used_at_cabinet"] == "cab-a"
    with Session(fleet.b.engine) as s:
        assert s.get(Approval, fleet.approval_id) is None

    # The hub editing the approval later never undoes the use where it happened.
    with write_session(fleet.hub.engine) as s:
        approval = s.get(Approval, fleet.approval_id)
        assert approval is not None
        approval.reason = "维修（补充说明）"
    pull(fleet, fleet.a)
    with Session(fleet.a.engine) as s:
        held = s.get(Approval, fleet.approval_id)
        assert held is not None and held.status == ApprovalStatus.USED
        assert held.used_loan_id == loan_id


def test_an_approval_cabinet_b_held_before_its_use_at_a_is_withdrawn_there(
        fleet: Fleet) -> None:
    """cab-b held the approval (the key was homed there); the key moved to cab-a, which
    used it: the hub tells cab-b, which drops its copy. Had cab-b used it too (it was
    offline), the hub accepts the fact and raises an alarm rather than hide it."""
    move_key(fleet, "cab-b", 3)
    pull(fleet, fleet.a)
    pull(fleet, fleet.b)
    with Session(fleet.b.engine) as s:
        assert s.get(Approval, fleet.approval_id) is not None
    move_key(fleet, "cab-a", 2)
    pull(fleet, fleet.a)
    draw_with_approval(fleet.a, fleet.approval_id)
    ship(fleet, fleet.a)
    pull(fleet, fleet.b)
    with Session(fleet.b.engine) as s:
        assert s.get(Approval, fleet.approval_id) is None
        assert local_key(fleet.b) == ("retired", None)


def test_a_second_use_reported_by_another_cabinet_raises_a_hub_alarm_K7(fleet: Fleet) -> None:
    move_key(fleet, "cab-b", 3)
    pull(fleet, fleet.b)
    draw_with_approval(fleet.b, fleet.approval_id)  # b used it while offline ...
    move_key(fleet, "cab-a", 2)
    pull(fleet, fleet.a)
    draw_with_approval(fleet.a, fleet.approval_id)  # ... and a too, before either shipped
    ship(fleet, fleet.b)
    ship(fleet, fleet.a)  # accepted: the draw happened; the hub says so
    with Session(fleet.hub.engine) as s:
        alarm = s.scalars(select(HubAlarm).where(HubAlarm.kind == "approval_reused")).one()
        assert alarm.cabinet_id == "cab-a" and "cab-b" in alarm.message


def test_a_key_moved_to_another_cabinet_leaves_the_first_at_once_or_after_its_return(
        fleet: Fleet) -> None:
    pull(fleet, fleet.a)
    pull(fleet, fleet.b)
    loan_id = draw_with_approval(fleet.a, fleet.approval_id)  # the key is out from cab-a
    move_key(fleet, "cab-b", 4)
    pull(fleet, fleet.a)
    pull(fleet, fleet.b)
    assert local_key(fleet.b) == ("active", 4)
    assert local_key(fleet.a) == ("active", 2)  # out on cab-a's loan: comes back here
    applied = [p for _s, p in _events(fleet.a, "fleet.config_applied")][-1]
    assert applied["deferred"] == ["K-1201"]
    assert apply_pending_moves(fleet.a.audit) == []  # still out
    with write_session(fleet.a.engine) as s:
        loan = s.get(Loan, loan_id)
        assert loan is not None
        loan.returned_at = NOW + dt.timedelta(minutes=30)
    assert apply_pending_moves(fleet.a.audit) == ["K-1201"]
    assert local_key(fleet.a) == ("retired", None)

    # Moved back to cab-a, into slot 1: cab-a hangs it there, cab-b lets it go.
    move_key(fleet, "cab-a", 1)
    pull(fleet, fleet.a)
    pull(fleet, fleet.b)
    assert local_key(fleet.a) == ("active", 1)
    assert local_key(fleet.b) == ("retired", None)


def test_a_key_homed_at_a_slot_the_cabinet_lacks_is_skipped_and_named(fleet: Fleet) -> None:
    with write_session(fleet.hub.engine) as s:
        cabinet = s.scalars(select(Cabinet).where(Cabinet.code == "cab-a")).one()
        s.add(Slot(cabinet_id=cabinet.id, number=40))
    move_key(fleet, "cab-a", 40)
    pull(fleet, fleet.a)
    assert local_key(fleet.a) is None
    applied = [p for _s, p in _events(fleet.a, "fleet.config_applied")][-1]
    assert applied["skipped"][0] == "key K-1201: no slot 40 in this cabinet"


def test_a_retired_key_is_retired_where_it_hung(fleet: Fleet) -> None:
    pull(fleet, fleet.a)
    with write_session(fleet.hub.engine) as s:
        key = s.get(Key, fleet.key_id)
        assert key is not None
        key.status, key.home_slot_id = KeyStatus.RETIRED, None
    pull(fleet, fleet.a)
    assert local_key(fleet.a) == ("retired", None)


def _events(cab: Runtime, type_: str) -> list[tuple[int, dict[str, Any]]]:
    from kiosk.store.models import Event

    with Session(cab.engine) as s:
        return [(e.seq, json.loads(e.payload)) for e in s.scalars(
            select(Event).where(Event.type == type_).order_by(Event.seq))]


def _leader_at_hub(person_id: uuid.UUID) -> Principal:
    """The department leader signed in at the hub (an account linked to the person)."""
    return Principal(account_id=uuid.uuid4(), username="leader", role=AccountRole.DEPT_LEADER,
                     person_id=person_id, department_id=None,
                     permissions=ROLE_PERMISSIONS[AccountRole.DEPT_LEADER],
                     token_id=uuid.uuid4(), token_kind=TokenKind.ACCESS)


def test_an_approval_asked_at_the_screen_is_decided_at_the_hub_and_flows_down_K7(
        fleet: Fleet) -> None:
    """K7 in a fleet: a person refused a special-room key asks at cabinet A's screen; the
    request ships up with A's log and becomes the hub's pending approval (same id); the
    department leader approves it at the hub; the decision comes down to A by the version
    cursor and lands on A's pending copy. Another cabinet cannot raise requests for A's key."""
    with write_session(fleet.hub.engine) as s:
        dept = Department(code="ENG", name="工程部")
        s.add(dept)
        s.flush()
        worker = Person(staff_no="E2002", name="李工", department_id=dept.id)
        leader = Person(staff_no="L9001", name="王经理", department_id=dept.id)
        s.add_all([worker, leader])
        s.flush()
        s.add(PersonRole(person_id=leader.id, role=Role.DEPT_LEADER))
        leader_id = leader.id
    pull(fleet, fleet.a)

    with tx.write(fleet.a.audit) as s:  # what the screen's 申请审批 calls (draw flow)
        key = s.scalars(select(Key).where(Key.key_number == "K-1201")).one()
        me = s.scalars(select(Person).where(Person.staff_no == "E2002")).one()
        asked, leaders, new = approvals.request_at_cabinet(
            s, fleet.a.audit, key_id=key.id, person_id=me.id, cabinet="cab-a", now=NOW)
        asked_id = asked.id
        assert new and [p.name for p in leaders] == ["王经理"]

    ship(fleet, fleet.a)
    with Session(fleet.hub.engine) as s:
        at_hub = s.get(Approval, asked_id)
        assert at_hub is not None and at_hub.status == ApprovalStatus.PENDING
        hub_worker = s.scalars(select(Person).where(Person.staff_no == "E2002")).one()
        assert at_hub.requested_for_id == hub_worker.id and at_hub.key_id == fleet.key_id
        told = s.scalars(select(Event).where(Event.type == "approval.requested")).all()
        assert [json.loads(e.payload)["cabinet"] for e in told] == ["cab-a"]
        assert [x["name"] for x in json.loads(told[0].payload)["leaders"]] == ["王经理"]
    ship(fleet, fleet.a)  # a resend makes nothing twice
    with Session(fleet.hub.engine) as s:
        assert len(s.scalars(select(Approval).where(Approval.id == asked_id)).all()) == 1
    pull(fleet, fleet.a)  # the hub's pending copy is A's own
    with Session(fleet.a.engine) as s:
        assert s.get(Approval, asked_id).status == ApprovalStatus.PENDING  # type: ignore[union-attr]

    with write_session(fleet.hub.engine) as s:  # the leader decides at the hub
        approvals.approve(s, fleet.hub_log, by=_leader_at_hub(leader_id), approval_id=asked_id,
                          note="同意")
    assert "approval" in [c["entity"] for c in pull(fleet, fleet.a)]
    with Session(fleet.a.engine) as s:
        here = s.get(Approval, asked_id)
        assert here is not None and here.status == ApprovalStatus.APPROVED
        approver = s.get(Person, here.approver_id) if here.approver_id else None
        assert approver is not None and approver.staff_no == "L9001"

    # Cabinet B forges a request for A's key: the hub makes nothing and says why.
    forged = uuid.uuid4()
    fleet.b.audit.append(NewEvent(type="approval.requested", key_number="K-1201", rules=["K7"],
                                  payload={"approval": str(forged), "staff_no": "E2002",
                                           "valid_until": NOW.isoformat()}))
    ship(fleet, fleet.b)
    with Session(fleet.hub.engine) as s:
        assert s.get(Approval, forged) is None
        skipped = s.scalars(select(Event).where(
            Event.type == "fleet.approval_request_skipped")).all()
        assert ["cab-b" in e.payload and "not homed at cab-b" in e.payload
                for e in skipped] == [True]


def test_settings_per_site_come_down_to_that_sites_cabinets_and_the_file_keeps_hardware(
        fleet: Fleet, tmp_path: Path) -> None:
    """Issue 12: a site's business hours (K8), PIN requirements and alarm owners (F1) are
    set at the hub and reach that site's cabinets by the version cursor, and no other
    site's; a cabinet runs with them (also after a restart with the hub away) while its
    config file keeps everything else; a section the hub drops falls back to the file's."""
    with write_session(fleet.hub.engine) as s:
        tower_b = hub.create_site(s, fleet.hub_log, code="tower-b", name="Tower B",
                                  actors=["test"])
        s.scalars(select(HubCabinet).where(HubCabinet.cabinet_id == "cab-b")).one(
            ).site_id = tower_b.id
    pull(fleet, fleet.a)
    pull(fleet, fleet.b)
    policy = {"business_hours": {"start": "07:00", "end": "19:30",
                                 "weekdays": [1, 2, 3, 4, 5, 6], "holidays": ["2027-01-01"]},
              "pin": {"after_hours": True, "key_groups": ["MASTER"]},
              "alarms": {"owners": {"door_forced": "duty_manager"}}}
    with write_session(fleet.hub.engine) as s:
        site_a = hub.site_by_code(s, "tower-a")
        site_settings_hub.set_for_site(s, fleet.hub_log, site=site_a, doc=policy, actors=["test"])
    assert [c["entity"] for c in pull(fleet, fleet.a)] == ["site_settings"]
    assert pull(fleet, fleet.b) == []  # tower B's cabinet gets nothing of tower A's

    # Cabinet A restarted (hub away): its file sets a hardware-side timeout and PIN tries.
    file_a = Settings(data_dir=fleet.a.settings.data_dir, cabinet_id="cab-a",
                      cabinet=CabinetSettings(take_timeout_s=33), pin=PinSettings(max_tries=7))
    again = Runtime.open(file_a)
    try:
        run = again.settings
        assert (run.business_hours.start, run.business_hours.end) == (dt.time(7), dt.time(19, 30))
        assert run.business_hours.weekdays == [1, 2, 3, 4, 5, 6]
        assert dt.date(2027, 1, 1) in run.business_hours.holidays
        assert run.pin.after_hours is True and run.pin.key_groups == ["MASTER"]
        assert run.pin.max_tries == 5  # the hub's section replaces the file's whole
        assert run.alarms.table()["door_forced"] == "duty_manager"
        assert run.cabinet.take_timeout_s == 33  # the cabinet's own: the file wins
    finally:
        again.close()
    with Session(fleet.b.engine) as s:
        assert site_settings.held_in(s) is None

    # The hub drops the PIN section: A falls back to its file's.
    with write_session(fleet.hub.engine) as s:
        site_settings_hub.set_for_site(s, fleet.hub_log, site=hub.site_by_code(s, "tower-a"),
                                   doc={"business_hours": policy["business_hours"]},
                                   actors=["test"])
    pull(fleet, fleet.a)
    back = Runtime.open(file_a)
    try:
        assert back.settings.pin.after_hours is False and back.settings.pin.max_tries == 7
        assert back.settings.business_hours.start == dt.time(7)
    finally:
        back.close()
    with Session(fleet.a.engine) as s:
        applied = s.scalars(select(Event).where(Event.type == "fleet.config_applied")
                            .order_by(Event.seq.desc())).first()
        assert applied is not None and json.loads(applied.payload)["site_settings"] == [
            "business_hours"]

    # A setting only the cabinet's file may hold is refused at the hub.
    with write_session(fleet.hub.engine) as s, pytest.raises(InvalidRequest, match="hardware"):
        site_settings_hub.set_for_site(s, fleet.hub_log, site=hub.site_by_code(s, "tower-a"),
                                   doc={"hardware": {"bus": "rs485"}}, actors=["test"])
    with write_session(fleet.hub.engine) as s, pytest.raises(InvalidRequest, match="start"):
        site_settings_hub.set_for_site(s, fleet.hub_log, site=hub.site_by_code(s, "tower-a"),
                                   doc={"business_hours": {"start": "20:00", "end": "08:00"}},
                                   actors=["test"])


def test_a_running_cabinet_takes_its_sites_new_hours_without_a_restart_K8(
        fleet: Fleet) -> None:
    """The daemon's link, having applied new site settings, runs with them at once: the
    runtime's settings (read live by the PIN flow, the scheduler, reports) and the cabinet's
    calendar, so Saturday 10:00 becomes business time (no K8 two-person opening)."""
    from kiosk.cabinet import calendar_from
    from kiosk.fleet import state
    from kiosk.fleet.link import FleetLink

    pull(fleet, fleet.a)
    link = FleetLink(fleet.a, state.Enrolment(hub_url="https://hub.invalid/hub/v1",
                                              hub_public_key=fleet.hub_log.device_key.public_hex,
                                              site="tower-a", cabinet_id="cab-a"))
    seen: list[Settings] = []
    link.settings_listeners.append(seen.append)
    saturday = dt.datetime(2027, 3, 6, 10, 0, tzinfo=fleet.a.settings.zone)
    assert not calendar_from(fleet.a.settings).is_business_time(saturday)
    with write_session(fleet.hub.engine) as s:
        site_settings_hub.set_for_site(s, fleet.hub_log, site=hub.site_by_code(s, "tower-a"),
                                   doc={"business_hours": {"weekdays": [1, 2, 3, 4, 5, 6]},
                                        "pin": {"roles": ["staff"]}}, actors=["test"])
    pull(fleet, fleet.a)
    link.use_site_settings()
    assert fleet.a.settings.pin.roles == ["staff"]
    assert [calendar_from(s).is_business_time(saturday) for s in seen] == [True]


def test_a_plain_sql_change_of_a_sites_settings_reaches_its_cabinets_K8(fleet: Fleet) -> None:
    """Site settings are tracked like every other configuration table: by the hub's
    PostgreSQL trigger, so an operator's plain SQL on ``hub_site_settings`` (no service, no
    ORM) takes a version and the site's cabinet applies it at its next pull."""
    if fleet.hub.engine.dialect.name != "postgresql":
        pytest.skip("the triggers are the hub's, on PostgreSQL (kiosk hub refuses SQLite)")
    from sqlalchemy import text

    pull(fleet, fleet.a)
    with write_session(fleet.hub.engine) as s:
        site_a = hub.site_by_code(s, "tower-a")
        site_settings_hub.set_for_site(s, fleet.hub_log, site=site_a,
                                   doc={"pin": {"after_hours": False}}, actors=["test"])
        site_id = site_a.id
    pull(fleet, fleet.a)
    with Session(fleet.a.engine) as s:
        assert site_settings.held_in(s) == {"pin": site_settings.validate(
            {"pin": {"after_hours": False}})["pin"]}
    with fleet.hub.engine.begin() as conn:
        conn.execute(text("UPDATE hub_site_settings SET body = :body WHERE site_id = :site"),
                     {"body": json.dumps({"pin": {"after_hours": True, "max_tries": 4}}),
                      "site": site_id})
    assert [c["entity"] for c in pull(fleet, fleet.a)] == ["site_settings"]
    with Session(fleet.a.engine) as s:
        held = site_settings.held_in(s)
    assert held is not None and held["pin"]["after_hours"] is True
    assert held["pin"]["max_tries"] == 4
    with fleet.hub.engine.begin() as conn:  # deleted by hand: the cabinet's file again
        conn.execute(text("DELETE FROM hub_site_settings WHERE site_id = :site"),
                     {"site": site_id})
    assert [c["entity"] for c in pull(fleet, fleet.a)] == ["site_settings"]
    with Session(fleet.a.engine) as s:
        assert not site_settings.held_in(s)
