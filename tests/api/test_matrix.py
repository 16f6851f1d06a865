"""Every role × every endpoint, against records of another department: no unexpected 2xx.

Each role gets an account scoped to department A; every request targets fresh records
(people, cards, rights, approvals, loans, accounts) of department B where the endpoint has
one. The expected outcome comes from ``WHO_MAY``, a table written by hand from the role
descriptions in docs/rules.md ("Who uses it") and the README ("Administer remotely"),
not from the product's own permission table, so a wrong grant in
``kiosk.services.authz`` fails here instead of being copied into the expectation:

- the role may not call the endpoint → 403;
- it has it but the record is another department's → 404 (or 403), never 2xx;
- otherwise → 2xx.

Every request is first made by a control account that may do it (an unscoped administrator,
or department B's own leader for K7 decisions) and must succeed, so a refusal in the matrix
is the authorization at work and not a malformed request.

The live-status and remote-unlock endpoints need a running cabinet: the matrix attaches a
real ``Cabinet`` on the same runtime, driving simulated locks (``kiosk.wiring``), started on
the test client's event loop (``cabinet_attached``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from api.routes.live import RemoteUnlocks
from drivers.identity.onewire import FobId
from kiosk.audit import NewEvent
from kiosk.cabinet import Cabinet
from kiosk.cabinet.flows.enrolment import EnrolmentFlow
from kiosk.reports import store as report_store
from kiosk.reports.data import DailyReport
from kiosk.services import accounts, handovers, tx
from kiosk.services.authz import ROLE_PERMISSIONS, Principal
from kiosk.store.models import (
    AccessRight,
    Alarm,
    AlarmState,
    Approval,
    AuthorizationUnit,
    Card,
    DutyShift,
    Handover,
    HandoverState,
    IntakeRecord,
    Key,
    KeyCategory,
    OwnerAuthorization,
    Role,
    Slot,
)
from kiosk.store.models import Cabinet as CabinetRow
from kiosk.store.models_auth import AccountRole, TokenKind
from kiosk.store.models_notify import NotificationDelivery
from kiosk.store.types import utcnow
from tests.api.conftest import World, attached_cabinet

V1 = "/api/v1"
_counter = itertools.count(1)
_first_slot = itertools.count(2000, 2)


def n() -> int:
    return next(_counter)


@dataclass
class Req:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    files: dict[str, Any] | None = None


class Fresh:
    """Makes a new record for each request, so no request depends on an earlier one."""

    def __init__(self, world: World) -> None:
        self.w = world

    def id(self, name: str) -> str:
        return str(self.w.ids[name])

    def person_b(self) -> str:
        return str(self.w.person(f"B{n():05d}", dept="B"))

    def account_b(self) -> uuid.UUID:
        with tx.write(self.w.audit) as session:
            account = accounts.create_account(
                session, self.w.audit, by=None, username=f"b-user-{n()}",
                password="correct horse battery", role=AccountRole.AUDITOR,
                department_id=self.w.ids["dept:B"], policy=self.w.policy,
            )
        return account.id

    def token_b(self) -> str:
        with tx.write(self.w.audit) as session:
            token, _ = accounts.create_api_token(
                session, self.w.audit, by=None, account_id=self.account_b(), name="t",
                scopes=["keys:read"], expires_at=None,
            )
        return str(token.id)

    def card_b(self) -> str:
        card = Card(uid=f"{n():08X}", person_id=uuid.UUID(self.person_b()))
        self.w.add(card)
        return str(card.id)

    def right_b(self) -> str:
        right = AccessRight(person_id=uuid.UUID(self.person_b()), key_group_id=self.w.ids["group"])
        self.w.add(right)
        return str(right.id)

    def approval_b(self) -> str:
        approval = Approval(
            key_id=self.w.ids["key:E-PWR"], requested_for_id=self.w.ids["staff_b"],
            reason="检修", valid_until=utcnow() + dt.timedelta(hours=2),
        )
        self.w.add(approval)
        return str(approval.id)

    def key(self) -> str:
        key = Key(key_number=f"K{n()}", label="测试钥匙", group_id=self.w.ids["group"],
                  category=KeyCategory.OTHER)
        self.w.add(key)
        return str(key.id)

    def key_with_fob(self) -> str:
        key = Key(key_number=f"K{n()}", label="测试钥匙", group_id=self.w.ids["group"],
                  category=KeyCategory.OTHER, fob_rom=FobId.build(0x01, 0x500000 + n()).hex)
        self.w.add(key)
        return str(key.id)

    def slot(self) -> str:
        slot = Slot(cabinet_id=self.w.ids["cabinet"], number=1000 + n())
        self.w.add(slot)
        return str(slot.id)

    def loan_b(self) -> str:
        key = uuid.UUID(self.key())
        self.w.ids[f"key:{key}"] = key
        return str(self.w.loan(str(key), self.w.ids["staff_b"], drawn_hours_ago=1, due_in_hours=1))

    def alarm(self, state: AlarmState = AlarmState.OPEN) -> str:
        alarm = Alarm(kind="test", message="测试", state=state)
        self.w.add(alarm)
        return str(alarm.id)

    def authorization(self) -> str:
        now = utcnow()
        auth = OwnerAuthorization(
            owner_id=self.w.ids["owner"], proxy_id=self.w.ids["proxy"], letter_ref=f"WT-{n()}",
            valid_from=now - dt.timedelta(days=1), valid_to=now + dt.timedelta(days=1),
        )
        auth.units = [AuthorizationUnit(unit_id=self.w.ids["unit"])]
        self.w.add(auth)
        return str(auth.id)

    def shift(self) -> str:
        start = utcnow() + dt.timedelta(days=100 + n())
        shift = DutyShift(person_id=self.w.ids["manager"], starts_at=start,
                          ends_at=start + dt.timedelta(hours=8))
        self.w.add(shift)
        return str(shift.id)

    def shift_body(self) -> dict[str, Any]:
        start = utcnow() + dt.timedelta(days=1000 + n())
        return {"person_id": self.id("manager"), "starts_at": start.isoformat(),
                "ends_at": (start + dt.timedelta(hours=8)).isoformat()}

    def intake(self) -> str:
        record = IntakeRecord(
            key_id=self.w.ids["key:U1201"], delivered_by_name="王伟", delivered_by_department="工程部",
            room_number="1201", key_count=1, deliverer_confirmed=True,
            custodian_id=self.w.ids["custodian"],
        )
        self.w.add(record)
        return str(record.id)

    def checkpoint(self) -> int:
        self.w.audit.append(NewEvent(type="test.tick"))
        return self.w.audit.checkpoint().seq

    def exported(self) -> dict[str, Any]:
        return self.w.audit.export_checkpoint(self.w.audit.checkpoint())

    def remote_body(self) -> dict[str, Any]:
        return {"key_number": "U1201", "person_id": self.person_b(), "reason_code": "repair"}

    def remote_request(self) -> str:
        """A pending remote unlock for a person of department B, asked for by another admin;
        the cabinet is made idle first (the previous confirmation left a slot released)."""
        app = self.w.client.app
        cabinet: Cabinet = app.state.cabinet  # type: ignore[attr-defined]
        self.w.client.portal.call(cabinet.cancel)  # type: ignore[union-attr]
        with tx.write(self.w.audit) as session:
            account = accounts.create_account(
                session, self.w.audit, by=None, username=f"requester-{n()}",
                password="correct horse battery", role=AccountRole.ADMIN, policy=self.w.policy,
            )
        store: RemoteUnlocks = app.state.remote_unlocks  # type: ignore[attr-defined]
        pending = store.add(
            key_number="U1201", person_id=uuid.UUID(self.person_b()), reason_code="repair",
            reason_text=None, requested_by=account.id, requested_actor=f"account:{account.username}",
            requested_person=self.w.person(f"ADM{n()}", dept=None, roles=(Role.STAFF, Role.ADMIN)),
            department_id=self.w.ids["dept:B"],
        )
        return str(pending.id)

    def pending_admin(self) -> str:
        """An administrator made over the API by another administrator, not yet confirmed."""
        with tx.write(self.w.audit) as session:
            maker = accounts.create_account(
                session, self.w.audit, by=None, username=f"maker-{n()}",
                password="correct horse battery", role=AccountRole.ADMIN, policy=self.w.policy,
            )
            by = Principal(account_id=maker.id, username=maker.username, role=maker.role,
                           person_id=None, department_id=None,
                           permissions=ROLE_PERMISSIONS[AccountRole.ADMIN],
                           token_id=uuid.uuid4(), token_kind=TokenKind.ACCESS)
            made = accounts.create_account(
                session, self.w.audit, by=by, username=f"new-admin-{n()}",
                password="correct horse battery", role=AccountRole.ADMIN, policy=self.w.policy,
            )
        return str(made.id)

    def report(self) -> str:
        day = dt.date(2026, 11, 27)
        daily = DailyReport(cabinet="柜", day=day.isoformat(), as_of="2026-11-27T18:30:00+08:00",
                            drawn_today=0, returned_today=0, out_from_today=[],
                            out_from_earlier=[], count=None, alarms=[])
        with tx.write(self.w.audit) as session:
            row = report_store.save(session, self.w.audit, report=daily, language="zh")
        return str(row.id)

    def units_csv(self) -> bytes:
        return f"房号,楼层\r\nIMP-{n()},3\r\n".encode()

    def enrol_person_b(self) -> str:
        """Person B, with no card enrolment waiting at the cabinet (one waits at a time)."""
        cabinet: Cabinet = self.w.client.app.state.cabinet  # type: ignore[attr-defined]
        cabinet.lookup("enrolment", EnrolmentFlow).cancel(["test"])
        return self.person_b()

    def enrolment_b(self) -> str:
        """``people/{B}/cards/enrol/{id}``: an enrolment for person B, waiting."""
        person = self.enrol_person_b()
        cabinet: Cabinet = self.w.client.app.state.cabinet  # type: ignore[attr-defined]
        by = Principal(account_id=uuid.uuid4(), username="desk", role=AccountRole.ADMIN,
                       person_id=None, department_id=None,
                       permissions=ROLE_PERMISSIONS[AccountRole.ADMIN], token_id=uuid.uuid4(),
                       token_kind=TokenKind.ACCESS)
        flow = cabinet.lookup("enrolment", EnrolmentFlow)
        enrolment = self.w.client.portal.call(  # type: ignore[union-attr]
            flow.start, uuid.UUID(person), by)
        return f"{person}/cards/enrol/{enrolment.id}"

    def no_handover_waiting(self) -> None:
        """H1 allows one waiting handover: clear the last request's so the next can start."""
        with tx.write(self.w.audit) as session:
            for row in session.scalars(select(Handover).where(
                    Handover.state == HandoverState.STARTED)):
                handovers.cancel(session, self.w.audit, handover_id=row.id, actors=["test"])

    def start_handover_request(self) -> Req:
        """A request to start a handover, sent while none is waiting (H1 allows one)."""
        self.no_handover_waiting()
        return Req("POST", "/handovers", {"notes": "交接正常"})

    def handover(self) -> str:
        """A handover started at the cabinet by the custodian's badge, waiting for acceptance."""
        self.no_handover_waiting()
        with tx.write(self.w.audit) as session:
            row = handovers.start(
                session, self.w.audit, cabinet=session.get_one(CabinetRow, self.w.ids["cabinet"]),
                outgoing_id=self.w.ids["custodian"], card="C0DE0001",
                zone=self.w.runtime.settings.zone, sensed=None,
            )
        return str(row.id)

    def delivery(self, state: str = "failed") -> str:
        """A notification delivery of a fresh event (failed ones can be retried)."""
        stored = self.w.audit.append(NewEvent(type="alarm.door_forced"))
        row = NotificationDelivery(
            cabinet_id=stored.cabinet_id, event_seq=stored.seq, event_type=stored.type,
            channel="webhook", target="ops", state=state, attempts=1, round_attempts=1,
            next_attempt_at=utcnow() if state == "pending" else None, last_error="HTTP 500",
        )
        self.w.add(row)
        return str(row.id)


Make = Callable[[Fresh], Req]


@dataclass
class Op:
    method: str
    template: str
    make: Make
    other_dept: bool = False


def op(method: str, template: str, make: Make, *, other_dept: bool = False) -> Op:
    return Op(method, V1 + template, make, other_dept)


until = lambda: (utcnow() + dt.timedelta(hours=3)).isoformat()  # noqa: E731

OPS: list[Op] = [
    # accounts and API tokens
    op("GET", "/accounts", lambda f: Req("GET", "/accounts")),
    op("POST", "/accounts", lambda f: Req("POST", "/accounts", {
        "username": f"new-{n()}", "password": "correct horse battery", "role": "auditor",
        "department_id": f.id("dept:B")}), other_dept=True),
    op("GET", "/accounts/{account_id}",
       lambda f: Req("GET", f"/accounts/{f.account_b()}"), other_dept=True),
    op("PATCH", "/accounts/{account_id}",
       lambda f: Req("PATCH", f"/accounts/{f.account_b()}", {"active": True}), other_dept=True),
    op("POST", "/accounts/{account_id}/password", lambda f: Req(
        "POST", f"/accounts/{f.account_b()}/password", {"password": "another long secret"}),
       other_dept=True),
    op("POST", "/accounts/{account_id}/unlock",
       lambda f: Req("POST", f"/accounts/{f.account_b()}/unlock"), other_dept=True),
    op("POST", "/accounts/{account_id}/confirm",
       lambda f: Req("POST", f"/accounts/{f.pending_admin()}/confirm"), other_dept=True),
    op("GET", "/api-tokens", lambda f: Req("GET", "/api-tokens")),
    op("POST", "/api-tokens", lambda f: Req("POST", "/api-tokens", {
        "account_id": str(f.account_b()), "name": "sync", "scopes": ["keys:read"]}),
       other_dept=True),
    op("GET", "/api-tokens/{token_id}",
       lambda f: Req("GET", f"/api-tokens/{f.token_b()}"), other_dept=True),
    op("POST", "/api-tokens/{token_id}/revoke",
       lambda f: Req("POST", f"/api-tokens/{f.token_b()}/revoke"), other_dept=True),
    # departments and people
    op("GET", "/departments", lambda f: Req("GET", "/departments")),
    op("POST", "/departments", lambda f: Req("POST", "/departments",
                                             {"code": f"D{n()}", "name": "新部门"}),
       other_dept=True),
    op("GET", "/departments/{department_id}",
       lambda f: Req("GET", f"/departments/{f.id('dept:B')}")),
    op("PATCH", "/departments/{department_id}", lambda f: Req(
        "PATCH", f"/departments/{f.id('dept:B')}", {"name_en": "Security"}), other_dept=True),
    op("GET", "/people", lambda f: Req("GET", "/people")),
    op("POST", "/people", lambda f: Req("POST", "/people", {
        "staff_no": f"N{n()}", "name": "新员工", "department_id": f.id("dept:B")}),
       other_dept=True),
    op("GET", "/people/{person_id}",
       lambda f: Req("GET", f"/people/{f.person_b()}"), other_dept=True),
    op("PATCH", "/people/{person_id}",
       lambda f: Req("PATCH", f"/people/{f.person_b()}", {"name": "改名"}), other_dept=True),
    # cards
    op("GET", "/cards", lambda f: Req("GET", "/cards")),
    op("POST", "/cards", lambda f: Req("POST", "/cards", {
        "uid": f"{n():08X}", "person_id": f.person_b()}), other_dept=True),
    op("GET", "/cards/{card_id}", lambda f: Req("GET", f"/cards/{f.card_b()}"), other_dept=True),
    op("POST", "/cards/{card_id}/lost",
       lambda f: Req("POST", f"/cards/{f.card_b()}/lost"), other_dept=True),
    op("POST", "/cards/{card_id}/revoke",
       lambda f: Req("POST", f"/cards/{f.card_b()}/revoke"), other_dept=True),
    # enrol a card by tapping it at the cabinet (issue 11)
    op("POST", "/people/{person_id}/cards/enrol",
       lambda f: Req("POST", f"/people/{f.enrol_person_b()}/cards/enrol"), other_dept=True),
    op("GET", "/people/{person_id}/cards/enrol/{enrolment_id}",
       lambda f: Req("GET", f"/people/{f.enrolment_b()}"), other_dept=True),
    # the cabinet PIN that goes with a badge (issue 14, item 8)
    op("POST", "/people/{person_id}/pin/reset",
       lambda f: Req("POST", f"/people/{f.person_b()}/pin/reset"), other_dept=True),
    # owners and units
    op("GET", "/owners", lambda f: Req("GET", "/owners")),
    op("POST", "/owners", lambda f: Req("POST", "/owners", {"name": "新业主", "phone": "13800000000"})),
    op("GET", "/owners/{owner_id}", lambda f: Req("GET", f"/owners/{f.id('owner')}")),
    op("PATCH", "/owners/{owner_id}",
       lambda f: Req("PATCH", f"/owners/{f.id('owner')}", {"address": "百富国际大厦 1201"})),
    op("GET", "/owners/{owner_id}/personal-data",
       lambda f: Req("GET", f"/owners/{f.id('owner')}/personal-data")),
    op("GET", "/units", lambda f: Req("GET", "/units")),
    op("POST", "/units", lambda f: Req("POST", "/units", {"room_number": f"R{n()}", "floor": 9})),
    op("GET", "/units/{unit_id}", lambda f: Req("GET", f"/units/{f.id('unit')}")),
    op("PATCH", "/units/{unit_id}",
       lambda f: Req("PATCH", f"/units/{f.id('other_unit')}", {"vacant": True})),
    # keys
    op("GET", "/key-groups", lambda f: Req("GET", "/key-groups")),
    op("POST", "/key-groups", lambda f: Req("POST", "/key-groups", {"code": f"G{n()}", "name": "组"})),
    op("GET", "/key-groups/{group_id}", lambda f: Req("GET", f"/key-groups/{f.id('group')}")),
    op("PATCH", "/key-groups/{group_id}",
       lambda f: Req("PATCH", f"/key-groups/{f.id('group')}", {"loan_minutes": 120})),
    op("GET", "/keys", lambda f: Req("GET", "/keys")),
    op("POST", "/keys", lambda f: Req("POST", "/keys", {
        "key_number": f"N-{n()}", "label": "新钥匙", "group_id": f.id("group"),
        "category": "other"})),
    op("GET", "/keys/{key_id}", lambda f: Req("GET", f"/keys/{f.id('key:U1201')}")),
    op("PATCH", "/keys/{key_id}", lambda f: Req("PATCH", f"/keys/{f.key()}", {"copies": 2})),
    op("POST", "/keys/{key_id}/move",
       lambda f: Req("POST", f"/keys/{f.key()}/move", {"slot_id": f.slot()})),
    op("POST", "/keys/{key_id}/retire",
       lambda f: Req("POST", f"/keys/{f.key()}/retire", {"reason": "损坏"})),
    op("POST", "/keys/{key_id}/fob",  # a fresh key and a fresh ROM: no request collides
       lambda f: Req("POST", f"/keys/{f.key()}/fob",
                     {"rom": FobId.build(0x01, 0x600000 + n()).hex})),
    op("POST", "/keys/{key_id}/fob/clear",
       lambda f: Req("POST", f"/keys/{f.key_with_fob()}/fob/clear", {"reason": "钥匙牌遗失"})),
    op("GET", "/intake-records", lambda f: Req("GET", "/intake-records")),
    op("POST", "/intake-records", lambda f: Req("POST", "/intake-records", {
        "key_id": f.key(), "delivered_by_name": "王伟", "delivered_by_department": "工程部",
        "room_number": "1201", "key_count": 1, "deliverer_confirmed": True,
        "custodian_id": f.id("custodian")})),
    op("GET", "/intake-records/{intake_id}",
       lambda f: Req("GET", f"/intake-records/{f.intake()}")),
    # cabinets and slots
    op("GET", "/cabinets", lambda f: Req("GET", "/cabinets")),
    op("POST", "/cabinets", lambda f: Req("POST", "/cabinets", {"code": f"cab-{n()}", "name": "柜"})),
    op("GET", "/cabinets/{cabinet_id}", lambda f: Req("GET", f"/cabinets/{f.id('cabinet')}")),
    op("PATCH", "/cabinets/{cabinet_id}",
       lambda f: Req("PATCH", f"/cabinets/{f.id('cabinet')}", {"location": "1F 客服中心"})),
    op("GET", "/cabinets/{cabinet_id}/slots",
       lambda f: Req("GET", f"/cabinets/{f.id('cabinet')}/slots")),
    op("POST", "/cabinets/{cabinet_id}/slots", lambda f: Req(
        "POST", f"/cabinets/{f.id('cabinet')}/slots", {"first": next(_first_slot), "count": 2})),
    op("GET", "/slots/{slot_id}", lambda f: Req("GET", f"/slots/{f.slot()}")),
    op("PATCH", "/slots/{slot_id}",
       lambda f: Req("PATCH", f"/slots/{f.slot()}", {"enabled": False})),
    # the running cabinet: live status, remote unlock by two admins (K2)
    op("GET", "/cabinet/live", lambda f: Req("GET", "/cabinet/live")),
    op("POST", "/cabinet/remote-unlocks",
       lambda f: Req("POST", "/cabinet/remote-unlocks", f.remote_body()), other_dept=True),
    op("POST", "/cabinet/remote-unlocks/{request_id}/confirm",
       lambda f: Req("POST", f"/cabinet/remote-unlocks/{f.remote_request()}/confirm"),
       other_dept=True),
    # access rights
    op("GET", "/access-rights", lambda f: Req("GET", "/access-rights")),
    op("POST", "/access-rights", lambda f: Req("POST", "/access-rights", {
        "person_id": f.person_b(), "key_group_id": f.id("group")}), other_dept=True),
    op("GET", "/access-rights/{right_id}",
       lambda f: Req("GET", f"/access-rights/{f.right_b()}"), other_dept=True),
    op("PATCH", "/access-rights/{right_id}", lambda f: Req(
        "PATCH", f"/access-rights/{f.right_b()}",
        {"weekdays": "12345", "start_time": "08:00:00", "end_time": "18:00:00"}),
       other_dept=True),
    op("DELETE", "/access-rights/{right_id}",
       lambda f: Req("DELETE", f"/access-rights/{f.right_b()}"), other_dept=True),
    # approvals (K7)
    op("GET", "/approvals", lambda f: Req("GET", "/approvals")),
    op("POST", "/approvals", lambda f: Req("POST", "/approvals", {
        "key_id": f.id("key:E-PWR"), "requested_for_id": f.person_b(), "reason": "检修",
        "valid_until": until()}), other_dept=True),
    op("POST", "/approvals/expire-due", lambda f: Req("POST", "/approvals/expire-due")),
    op("GET", "/approvals/{approval_id}",
       lambda f: Req("GET", f"/approvals/{f.approval_b()}"), other_dept=True),
    op("POST", "/approvals/{approval_id}/approve",
       lambda f: Req("POST", f"/approvals/{f.approval_b()}/approve"), other_dept=True),
    op("POST", "/approvals/{approval_id}/reject",
       lambda f: Req("POST", f"/approvals/{f.approval_b()}/reject"), other_dept=True),
    op("POST", "/approvals/{approval_id}/expire",
       lambda f: Req("POST", f"/approvals/{f.approval_b()}/expire"), other_dept=True),
    # owner authorizations (K6)
    op("GET", "/owner-authorizations", lambda f: Req("GET", "/owner-authorizations")),
    op("POST", "/owner-authorizations", lambda f: Req("POST", "/owner-authorizations", {
        "owner_id": f.id("owner"), "proxy_id": f.id("proxy"), "letter_ref": f"WT-{n()}",
        "unit_ids": [f.id("unit")], "valid_from": utcnow().isoformat(), "valid_to": until()})),
    op("GET", "/owner-authorizations/{authorization_id}",
       lambda f: Req("GET", f"/owner-authorizations/{f.authorization()}")),
    op("POST", "/owner-authorizations/{authorization_id}/revoke",
       lambda f: Req("POST", f"/owner-authorizations/{f.authorization()}/revoke")),
    op("GET", "/owner-authorizations/{authorization_id}/phone-confirmations",
       lambda f: Req("GET", f"/owner-authorizations/{f.authorization()}/phone-confirmations")),
    op("POST", "/owner-authorizations/{authorization_id}/phone-confirmations", lambda f: Req(
        "POST", f"/owner-authorizations/{f.authorization()}/phone-confirmations",
        {"outcome": "confirmed", "called_by_id": f.id("custodian")})),
    # duty roster (K8)
    op("GET", "/duty-roster", lambda f: Req("GET", "/duty-roster")),
    op("POST", "/duty-roster", lambda f: Req("POST", "/duty-roster", f.shift_body())),
    op("GET", "/duty-roster/on-duty", lambda f: Req("GET", "/duty-roster/on-duty")),
    op("GET", "/duty-roster/{shift_id}", lambda f: Req("GET", f"/duty-roster/{f.shift()}")),
    op("DELETE", "/duty-roster/{shift_id}", lambda f: Req("DELETE", f"/duty-roster/{f.shift()}")),
    # loans (read-only)
    op("GET", "/loans", lambda f: Req("GET", "/loans", params={"overdue": "true"})),
    op("GET", "/loans/{loan_id}", lambda f: Req("GET", f"/loans/{f.loan_b()}"), other_dept=True),
    # alarms (F1)
    op("GET", "/alarms", lambda f: Req("GET", "/alarms")),
    op("POST", "/alarms", lambda f: Req("POST", "/alarms", {"kind": "manual", "message": "门未关"})),
    op("GET", "/alarms/{alarm_id}", lambda f: Req("GET", f"/alarms/{f.alarm()}")),
    op("POST", "/alarms/{alarm_id}/acknowledge",
       lambda f: Req("POST", f"/alarms/{f.alarm()}/acknowledge", {"note": "收到"})),
    op("POST", "/alarms/{alarm_id}/assign", lambda f: Req(
        "POST", f"/alarms/{f.alarm()}/assign", {"owner_id": f.id("custodian"), "note": "转交"})),
    op("POST", "/alarms/{alarm_id}/notes",
       lambda f: Req("POST", f"/alarms/{f.alarm()}/notes", {"note": "跟进"})),
    op("POST", "/alarms/{alarm_id}/close", lambda f: Req(
        "POST", f"/alarms/{f.alarm(AlarmState.HANDLED)}/close", {"note": "已处理"})),
    # events and audit
    op("GET", "/events", lambda f: Req("GET", "/events")),
    op("GET", "/events/export.csv", lambda f: Req("GET", "/events/export.csv")),
    op("GET", "/events/stream", lambda f: Req("GET", "/events/stream", params={"after": 0})),
    op("GET", "/events/{seq}", lambda f: Req("GET", "/events/1")),
    op("GET", "/audit/checkpoints", lambda f: Req("GET", "/audit/checkpoints")),
    op("POST", "/audit/checkpoints", lambda f: Req("POST", "/audit/checkpoints")),
    op("GET", "/audit/checkpoints/{seq}",
       lambda f: Req("GET", f"/audit/checkpoints/{f.checkpoint()}")),
    op("GET", "/audit/verify", lambda f: Req("GET", "/audit/verify")),
    op("GET", "/health/details", lambda f: Req("GET", "/health/details")),
    op("POST", "/audit/verify",
       lambda f: Req("POST", "/audit/verify", {"checkpoint": f.exported()})),
    # reports (K9): generate, preview, read, download, verify, acknowledge; never deleted
    op("GET", "/reports", lambda f: Req("GET", "/reports", params={"kind": "daily"})),
    op("GET", "/reports/{report_id}", lambda f: Req("GET", f"/reports/{f.report()}")),
    op("GET", "/reports/{report_id}/download", lambda f: Req(
        "GET", f"/reports/{f.report()}/download", params={"format": "csv", "lang": "en"})),
    op("POST", "/reports/{report_id}/acknowledge", lambda f: Req(
        "POST", f"/reports/{f.report()}/acknowledge", {"note": "已阅"})),
    op("GET", "/reports/{report_id}/verify", lambda f: Req("GET", f"/reports/{f.report()}/verify")),
    op("GET", "/reports/preview", lambda f: Req("GET", "/reports/preview", params={
        "kind": "overdue", "format": "csv"})),
    op("POST", "/reports", lambda f: Req("POST", "/reports", {"kind": "overdue"})),
    # bulk import: templates, preview (writes nothing), import (all or nothing)
    op("GET", "/imports/{kind}/template.{fmt}",
       lambda f: Req("GET", "/imports/keys/template.xlsx")),
    op("POST", "/imports/{kind}/preview", lambda f: Req(
        "POST", "/imports/units/preview", files={"file": ("u.csv", f.units_csv(), "text/csv")})),
    op("POST", "/imports/{kind}", lambda f: Req(
        "POST", "/imports/units", files={"file": ("u.csv", f.units_csv(), "text/csv")})),
    # handovers (H1): list, read, print; start as oneself; cancel someone's waiting one
    op("GET", "/handovers", lambda f: Req("GET", "/handovers", params={"state": "started"})),
    op("GET", "/handovers/{handover_id}", lambda f: Req("GET", f"/handovers/{f.handover()}")),
    op("GET", "/handovers/{handover_id}/download", lambda f: Req(
        "GET", f"/handovers/{f.handover()}/download", params={"format": "csv", "lang": "en"})),
    op("POST", "/handovers", lambda f: f.start_handover_request()),
    op("POST", "/handovers/{handover_id}/cancel",
       lambda f: Req("POST", f"/handovers/{f.handover()}/cancel")),
    # notifications: the delivery log, retry of a failed delivery
    op("GET", "/notifications", lambda f: Req("GET", "/notifications", params={"state": "failed"})),
    op("GET", "/notifications/{delivery_id}",
       lambda f: Req("GET", f"/notifications/{f.delivery()}")),
    op("POST", "/notifications/{delivery_id}/retry",
       lambda f: Req("POST", f"/notifications/{f.delivery()}/retry")),
    # Prometheus
    op("GET", "/metrics", lambda f: Req("GET", "/metrics")),
]

ROLE_LETTERS = {
    "A": AccountRole.ADMIN,
    "S": AccountRole.SUPERVISOR,
    "L": AccountRole.DEPT_LEADER,
    "D": AccountRole.DUTY_MANAGER,
    "C": AccountRole.CUSTODIAN,
    "U": AccountRole.AUDITOR,
}

# Who may call what, by hand. Columns: A admin, S supervisor, L department leader,
# D on-duty manager, C key custodian, U auditor; "." is no. The reasons, from the role
# descriptions in docs/rules.md ("Who uses it") and the README:
# - the administrator manages people, cards, keys, slots and policy, but does not decide
#   K7 approvals (the department leader alone does) and is the only one to make accounts
#   and API tokens and to ask for or confirm a K2 remote unlock;
# - the auditor reads everything, the log and its verification included, and writes
#   nothing; owners' personal data (A1) is for administrators and custodians only;
# - the supervisor reviews counts, overdue keys and discrepancies: reads all but the
#   accounts, acknowledges K9 reports, owns alarms (F1) and the duty roster, expires K7
#   approvals, signs audit checkpoints, keeps the register (H1);
# - the custodian receives (K1), classifies and slots keys, registers owners' letters and
#   makes the K6 phone call, requests K7 approvals, handles alarms, reads the K9 report;
# - the on-duty manager opens at night (K8), sees who holds what, handles alarms first-hand
#   (F1) and takes over the register after hours (H1);
# - the department leader decides K7 approvals for their own department's people;
# - setting up a building from a spreadsheet (bulk import) and printing a report on demand
#   are the desk's work: administrator, supervisor and custodian (issue 11);
# - anyone who works with badges may report a card lost; the custodian enrols, issues and
#   revokes badges at the service desk (issue 11: card enrolment is the custodian's), and
#   resets the cabinet PIN that goes with a badge, face to face (issue 14: the least
#   privilege that already hands out badges; the supervisor gets the duress alarm instead).
WHO_MAY_TEXT = """
GET    /accounts                                              A . . . . U
POST   /accounts                                              A . . . . .
GET    /accounts/{account_id}                                 A . . . . U
PATCH  /accounts/{account_id}                                 A . . . . .
POST   /accounts/{account_id}/password                        A . . . . .
POST   /accounts/{account_id}/unlock                          A . . . . .
POST   /accounts/{account_id}/confirm                         A . . . . .
GET    /api-tokens                                            A . . . . U
POST   /api-tokens                                            A . . . . .
GET    /api-tokens/{token_id}                                 A . . . . U
POST   /api-tokens/{token_id}/revoke                          A . . . . .
GET    /departments                                           A S L D C U
POST   /departments                                           A . . . . .
GET    /departments/{department_id}                           A S L D C U
PATCH  /departments/{department_id}                           A . . . . .
GET    /people                                                A S L D C U
POST   /people                                                A . . . . .
GET    /people/{person_id}                                    A S L D C U
PATCH  /people/{person_id}                                    A . . . . .
GET    /cards                                                 A S L D C U
POST   /cards                                                 A S . . C .
GET    /cards/{card_id}                                       A S L D C U
POST   /cards/{card_id}/lost                                  A S L D C .
POST   /cards/{card_id}/revoke                                A S . . C .
POST   /people/{person_id}/cards/enrol                        A S . . C .
GET    /people/{person_id}/cards/enrol/{enrolment_id}         A S L D C U
POST   /people/{person_id}/pin/reset                          A . . . C .
GET    /owners                                                A S . . C U
POST   /owners                                                A . . . C .
GET    /owners/{owner_id}                                     A S . . C U
PATCH  /owners/{owner_id}                                     A . . . C .
GET    /owners/{owner_id}/personal-data                       A . . . C .
GET    /units                                                 A S L D C U
POST   /units                                                 A . . . . .
GET    /units/{unit_id}                                       A S L D C U
PATCH  /units/{unit_id}                                       A . . . . .
GET    /key-groups                                            A S L D C U
POST   /key-groups                                            A . . . C .
GET    /key-groups/{group_id}                                 A S L D C U
PATCH  /key-groups/{group_id}                                 A . . . C .
GET    /keys                                                  A S L D C U
POST   /keys                                                  A . . . C .
GET    /keys/{key_id}                                         A S L D C U
PATCH  /keys/{key_id}                                         A . . . C .
POST   /keys/{key_id}/move                                    A . . . C .
POST   /keys/{key_id}/retire                                  A . . . C .
POST   /keys/{key_id}/fob                                     A . . . C .
POST   /keys/{key_id}/fob/clear                               A . . . C .
GET    /intake-records                                        A S L D C U
POST   /intake-records                                        A . . . C .
GET    /intake-records/{intake_id}                            A S L D C U
GET    /cabinets                                              A S L D C U
POST   /cabinets                                              A . . . . .
GET    /cabinets/{cabinet_id}                                 A S L D C U
PATCH  /cabinets/{cabinet_id}                                 A . . . . .
GET    /cabinets/{cabinet_id}/slots                           A S L D C U
POST   /cabinets/{cabinet_id}/slots                           A . . . . .
GET    /slots/{slot_id}                                       A S L D C U
PATCH  /slots/{slot_id}                                       A . . . . .
GET    /cabinet/live                                          A S L D C U
POST   /cabinet/remote-unlocks                                A . . . . .
POST   /cabinet/remote-unlocks/{request_id}/confirm           A . . . . .
GET    /access-rights                                         A S L . C U
POST   /access-rights                                         A S . . . .
PATCH  /access-rights/{right_id}                              A S . . . .
GET    /access-rights/{right_id}                              A S L . C U
DELETE /access-rights/{right_id}                              A S . . . .
GET    /approvals                                             A S L D C U
POST   /approvals                                             A . L . C .
POST   /approvals/expire-due                                  A S . . . .
GET    /approvals/{approval_id}                               A S L D C U
POST   /approvals/{approval_id}/approve                       . . L . . .
POST   /approvals/{approval_id}/reject                        . . L . . .
POST   /approvals/{approval_id}/expire                        A S . . . .
GET    /owner-authorizations                                  A S . D C U
POST   /owner-authorizations                                  A . . . C .
GET    /owner-authorizations/{authorization_id}               A S . D C U
POST   /owner-authorizations/{authorization_id}/revoke        A . . . C .
GET    /owner-authorizations/{authorization_id}/phone-confirmations   A S . D C U
POST   /owner-authorizations/{authorization_id}/phone-confirmations   A . . . C .
GET    /duty-roster                                           A S L D C U
POST   /duty-roster                                           A S . . . .
GET    /duty-roster/on-duty                                   A S L D C U
GET    /duty-roster/{shift_id}                                A S L D C U
DELETE /duty-roster/{shift_id}                                A S . . . .
GET    /loans                                                 A S L D C U
GET    /loans/{loan_id}                                       A S L D C U
GET    /alarms                                                A S . D C U
POST   /alarms                                                A S . D C .
GET    /alarms/{alarm_id}                                     A S . D C U
POST   /alarms/{alarm_id}/acknowledge                         A S . D C .
POST   /alarms/{alarm_id}/assign                              A S . D C .
POST   /alarms/{alarm_id}/notes                               A S . D C .
POST   /alarms/{alarm_id}/close                               A S . D C .
GET    /events                                                A S . . . U
GET    /events/export.csv                                     A S . . . U
GET    /events/stream                                         A S . . . U
GET    /events/{seq}                                          A S . . . U
GET    /audit/checkpoints                                     A S . . . U
POST   /audit/checkpoints                                     A S . . . .
GET    /audit/checkpoints/{seq}                               A S . . . U
GET    /audit/verify                                          A S . . . U
POST   /audit/verify                                          A S . . . U
GET    /health/details                                        A S . . . U
GET    /reports                                               A S . . C U
GET    /reports/{report_id}                                   A S . . C U
GET    /reports/{report_id}/download                          A S . . C U
POST   /reports/{report_id}/acknowledge                       A S . . . .
GET    /reports/{report_id}/verify                            A S . . C U
GET    /reports/preview                                       A S . . C U
POST   /reports                                               A S . . C .
GET    /imports/{kind}/template.{fmt}                         A S . . C .
POST   /imports/{kind}/preview                                A S . . C .
POST   /imports/{kind}                                        A S . . C .
GET    /handovers                                             A S . D C U
GET    /handovers/{handover_id}                               A S . D C U
GET    /handovers/{handover_id}/download                      A S . D C U
POST   /handovers                                             A S . D C .
POST   /handovers/{handover_id}/cancel                        A S . . . .
GET    /notifications                                         A S . . . U
GET    /notifications/{delivery_id}                           A S . . . U
POST   /notifications/{delivery_id}/retry                     A . . . . .
GET    /metrics                                               A S . . . U
"""


def _who_may() -> dict[tuple[str, str], frozenset[AccountRole]]:
    table: dict[tuple[str, str], frozenset[AccountRole]] = {}
    for line in WHO_MAY_TEXT.strip().splitlines():
        method, path, *marks = line.split()
        assert len(marks) == len(ROLE_LETTERS), line
        table[(method, V1 + path)] = frozenset(
            role for (letter, role), mark in zip(ROLE_LETTERS.items(), marks, strict=True)
            if mark == letter
        )
    return table


WHO_MAY = _who_may()

MATRIX_PERSON_ROLES = {
    # H1: POST /handovers signs as a keeper; K2: a remote unlock takes an admin in person
    AccountRole.ADMIN: (Role.STAFF, Role.SUPERVISOR, Role.ADMIN),
    AccountRole.SUPERVISOR: (Role.STAFF, Role.SUPERVISOR),
    AccountRole.DUTY_MANAGER: (Role.STAFF, Role.DUTY_MANAGER),
    AccountRole.CUSTODIAN: (Role.STAFF, Role.CUSTODIAN),
    AccountRole.DEPT_LEADER: (Role.STAFF, Role.DEPT_LEADER),
}


def _send(world: World, req: Req, headers: dict[str, str]) -> Any:
    return world.client.request(
        req.method, V1 + req.path, json=req.json, params=req.params, headers=headers,
        files=req.files,
    )


@pytest.fixture
def fast_stream(world: World) -> None:
    """The live feed ends at once here, so a request to it returns like any other."""
    options = world.client.app.state.options  # type: ignore[attr-defined]
    world.client.app.state.options = type(options)(  # type: ignore[attr-defined]
        auth_policy=options.auth_policy, stream_heartbeat_seconds=0.01, stream_max_seconds=0.01
    )


@pytest.fixture
def cabinet_attached(world: World) -> Iterator[Cabinet]:
    with attached_cabinet(world) as cabinet:
        yield cabinet


def test_matrix_covers_every_protected_operation(world: World) -> None:
    doc = world.client.get(f"{V1}/openapi.json").json()
    protected = {
        (method.upper(), path)
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if "x-permission" in operation
    }
    assert {(o.method, o.template) for o in OPS} == protected
    assert set(WHO_MAY) == protected


def test_permission_table_grants_exactly_what_the_hand_table_says(world: World) -> None:
    """The product's role table, read through each operation's ``x-permission``, against
    ``WHO_MAY``: a wrong grant (a custodian with ``accounts:write``...) is named here."""
    doc = world.client.get(f"{V1}/openapi.json").json()
    wrong = []
    for (method, path), allowed in sorted(WHO_MAY.items()):
        needed = doc["paths"][path][method.lower()]["x-permission"]
        for role in AccountRole:
            granted = needed in ROLE_PERMISSIONS[role]
            if granted != (role in allowed):
                wrong.append(f"{role.value} {method} {path} ({needed}): "
                             f"{'granted' if granted else 'refused'}, expected "
                             f"{'allowed' if role in allowed else 'refused'}")
    assert wrong == []


@pytest.mark.usefixtures("fast_stream", "cabinet_attached")
def test_every_role_every_endpoint_other_department(world: World) -> None:
    fresh = Fresh(world)
    admin = world.token(AccountRole.ADMIN, person=world.person(
        "ADM0", dept=None, roles=(Role.STAFF, Role.CUSTODIAN, Role.ADMIN)))
    leader_b = world.token(AccountRole.DEPT_LEADER, dept="B", person=world.ids["leader_b"])
    scoped = {
        role: world.token(
            role, dept="A",
            person=world.person(f"M{role.value}", dept="A", roles=MATRIX_PERSON_ROLES.get(
                role, (Role.STAFF,))),
        )
        for role in AccountRole
    }
    unexpected: list[str] = []
    for o in OPS:
        allowed = WHO_MAY[(o.method, o.template)]
        control = admin if AccountRole.ADMIN in allowed else leader_b
        ok = _send(world, o.make(fresh), control)
        assert 200 <= ok.status_code < 300, f"control {o.method} {o.template}: {ok.text}"
        for role, headers in scoped.items():
            got = _send(world, o.make(fresh), headers).status_code
            if role not in allowed:
                expected: set[int] | range = {403}
            elif o.other_dept:
                expected = {403, 404}
            else:
                expected = range(200, 300)
            if got not in expected:
                unexpected.append(f"{role.value} {o.method} {o.template}: {got}")
    assert unexpected == []


def test_auditor_never_writes(world: World) -> None:
    reads_by_post = {("POST", f"{V1}/audit/verify")}
    auditor = ROLE_PERMISSIONS[AccountRole.AUDITOR]
    doc = world.client.get(f"{V1}/openapi.json").json()
    for o in OPS:
        granted = doc["paths"][o.template][o.method.lower()]["x-permission"] in auditor
        if o.method != "GET" and (o.method, o.template) not in reads_by_post:
            assert not granted, f"auditor may {o.method} {o.template}"
