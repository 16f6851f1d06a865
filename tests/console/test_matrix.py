"""One authorization (issue 11, item 2): every console action, run by every role, gets the
same answer (allowed or refused) as the REST operation it mirrors, run by the same account.

Each role has an account scoped to department A, and (except the department leader, who is
always scoped) an unscoped one too; department B's leader decides K7 requests. Every request
targets a fresh record (of department B where records have a department), made by the API
matrix's own ``Fresh`` helpers, so no request depends on another. A console answer of 200
or 303 is "allowed", 403 or 404 "refused" (404 hides another department's record, as the API
does), 409 or 422 "failed": the three must match the API's 2xx / 403-404 / other.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from drivers.identity.onewire import FobId
from kiosk.store.models import AlarmState, Role
from kiosk.store.models_auth import AccountRole
from kiosk.store.types import utcnow
from tests.api.conftest import World
from tests.api.test_matrix import (  # noqa: F401  (cabinet_attached: a fixture)
    MATRIX_PERSON_ROLES,
    V1,
    Fresh,
    Req,
    cabinet_attached,
)
from tests.console.conftest import ConsoleUser

_n = itertools.count(1)


def n() -> int:
    return next(_n)


@dataclass
class CReq:
    method: str
    path: str
    data: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Any] | None = None


@dataclass
class Action:
    name: str
    console: Callable[[Fresh], CReq]
    api: Callable[[Fresh], Req]


def _local(hours: float) -> str:
    return (utcnow() + dt.timedelta(hours=hours)).isoformat(timespec="minutes")


def _shift(f: Fresh) -> dict[str, Any]:
    body = f.shift_body()
    return {**body, "repeat": "1"}


C = "/console"
ACTIONS: list[Action] = [
    Action("dashboard", lambda f: CReq("GET", "/"), lambda f: Req("GET", "/loans")),
    Action("loan", lambda f: CReq("GET", f"/loans/{f.loan_b()}"),
           lambda f: Req("GET", f"/loans/{f.loan_b()}")),
    # approvals (K7)
    Action("approvals", lambda f: CReq("GET", "/approvals"), lambda f: Req("GET", "/approvals")),
    Action("approval", lambda f: CReq("GET", f"/approvals/{f.approval_b()}"),
           lambda f: Req("GET", f"/approvals/{f.approval_b()}")),
    Action("approve", lambda f: CReq("POST", f"/approvals/{f.approval_b()}/decide",
                                     {"decision": "approve", "note": "同意"}),
           lambda f: Req("POST", f"/approvals/{f.approval_b()}/approve", {"note": "同意"})),
    Action("reject", lambda f: CReq("POST", f"/approvals/{f.approval_b()}/decide",
                                    {"decision": "reject"}),
           lambda f: Req("POST", f"/approvals/{f.approval_b()}/reject")),
    Action("withdraw request", lambda f: CReq("POST", f"/approvals/{f.approval_b()}/decide",
                                              {"decision": "expire"}),
           lambda f: Req("POST", f"/approvals/{f.approval_b()}/expire")),
    Action("request approval", lambda f: CReq("POST", "/approvals", {
        "key_id": f.id("key:E-PWR"), "requested_for_id": f.person_b(), "reason": "检修",
        "valid_until": _local(3)}),
        lambda f: Req("POST", "/approvals", {
            "key_id": f.id("key:E-PWR"), "requested_for_id": f.person_b(), "reason": "检修",
            "valid_until": (utcnow() + dt.timedelta(hours=3)).isoformat()})),
    # alarms (F1)
    Action("alarms", lambda f: CReq("GET", "/alarms?state=open"),
           lambda f: Req("GET", "/alarms", params={"state": "open"})),
    Action("alarm", lambda f: CReq("GET", f"/alarms/{f.alarm()}"),
           lambda f: Req("GET", f"/alarms/{f.alarm()}")),
    Action("acknowledge", lambda f: CReq("POST", f"/alarms/{f.alarm()}/acknowledge",
                                         {"note": "收到"}),
           lambda f: Req("POST", f"/alarms/{f.alarm()}/acknowledge", {"note": "收到"})),
    Action("alarm note", lambda f: CReq("POST", f"/alarms/{f.alarm()}/note", {"note": "跟进"}),
           lambda f: Req("POST", f"/alarms/{f.alarm()}/notes", {"note": "跟进"})),
    Action("assign alarm", lambda f: CReq("POST", f"/alarms/{f.alarm()}/assign", {
        "owner_id": f.id("custodian"), "note": "转交"}),
        lambda f: Req("POST", f"/alarms/{f.alarm()}/assign", {
            "owner_id": f.id("custodian"), "note": "转交"})),
    Action("close alarm", lambda f: CReq("POST", f"/alarms/{f.alarm(AlarmState.HANDLED)}/close",
                                         {"note": "已处理"}),
           lambda f: Req("POST", f"/alarms/{f.alarm(AlarmState.HANDLED)}/close",
                         {"note": "已处理"})),
    # keys and slots
    Action("keys", lambda f: CReq("GET", "/keys?q=K"), lambda f: Req("GET", "/keys")),
    Action("key", lambda f: CReq("GET", f"/keys/{f.key()}"),
           lambda f: Req("GET", f"/keys/{f.key()}")),
    Action("edit key", lambda f: CReq("POST", f"/keys/{f.key()}/edit", {
        "label": "新名称", "group_id": f.id("group"), "category": "other", "copies": "2"}),
        lambda f: Req("PATCH", f"/keys/{f.key()}", {"label": "新名称", "copies": 2})),
    Action("move key", lambda f: CReq("POST", f"/keys/{f.key()}/move", {"slot_id": f.slot()}),
           lambda f: Req("POST", f"/keys/{f.key()}/move", {"slot_id": f.slot()})),
    Action("retire key", lambda f: CReq("POST", f"/keys/{f.key()}/retire", {"reason": "损坏"}),
           lambda f: Req("POST", f"/keys/{f.key()}/retire", {"reason": "损坏"})),
    Action("pair fob", lambda f: CReq("POST", f"/keys/{f.key()}/fob",
                                      {"rom": FobId.build(0x01, 0x700000 + n()).hex}),
           lambda f: Req("POST", f"/keys/{f.key()}/fob",
                         {"rom": FobId.build(0x01, 0x700000 + n()).hex})),
    Action("clear fob", lambda f: CReq("POST", f"/keys/{f.key_with_fob()}/fob/clear",
                                       {"reason": "钥匙牌遗失"}),
           lambda f: Req("POST", f"/keys/{f.key_with_fob()}/fob/clear", {"reason": "钥匙牌遗失"})),
    # people and cards
    Action("people", lambda f: CReq("GET", "/people"), lambda f: Req("GET", "/people")),
    Action("person", lambda f: CReq("GET", f"/people/{f.person_b()}"),
           lambda f: Req("GET", f"/people/{f.person_b()}")),
    Action("add person", lambda f: CReq("POST", "/people", {
        "staff_no": f"N{n()}", "name": "新员工", "department_id": f.id("dept:B"),
        "roles": ["staff"], "active": "on"}),
        lambda f: Req("POST", "/people", {"staff_no": f"N{n()}", "name": "新员工",
                                          "department_id": f.id("dept:B")})),
    Action("edit person", lambda f: CReq("POST", f"/people/{f.person_b()}/edit", {
        "staff_no": f"E{n()}", "name": "改名", "department_id": f.id("dept:B"),
        "roles": ["staff"], "active": "on"}),
        lambda f: Req("PATCH", f"/people/{f.person_b()}", {"name": "改名"})),
    Action("issue card", lambda f: CReq("POST", f"/people/{f.person_b()}/cards", {
        "uid": f"{n():08X}", "kind": "staff"}),
        lambda f: Req("POST", "/cards", {"uid": f"{n():08X}", "person_id": f.person_b()})),
    Action("report card lost", lambda f: CReq("POST", f"/cards/{f.card_b()}/lost"),
           lambda f: Req("POST", f"/cards/{f.card_b()}/lost")),
    Action("revoke card", lambda f: CReq("POST", f"/cards/{f.card_b()}/revoke"),
           lambda f: Req("POST", f"/cards/{f.card_b()}/revoke")),
    # access rights
    Action("rights", lambda f: CReq("GET", "/rights"), lambda f: Req("GET", "/access-rights")),
    Action("right", lambda f: CReq("GET", f"/rights/{f.right_b()}"),
           lambda f: Req("GET", f"/access-rights/{f.right_b()}")),
    Action("grant right", lambda f: CReq("POST", "/rights", {
        "person_id": f.person_b(), "key_group_id": f.id("group"), "weekdays": ["1", "2"]}),
        lambda f: Req("POST", "/access-rights", {"person_id": f.person_b(),
                                                 "key_group_id": f.id("group")})),
    Action("edit right", lambda f: CReq("POST", f"/rights/{f.right_b()}/edit", {
        "key_group_id": f.id("group"), "weekdays": ["1"], "start_time": "08:00",
        "end_time": "18:00"}),
        lambda f: Req("PATCH", f"/access-rights/{f.right_b()}", {
            "weekdays": "1", "start_time": "08:00:00", "end_time": "18:00:00"})),
    Action("withdraw right", lambda f: CReq("POST", f"/rights/{f.right_b()}/withdraw"),
           lambda f: Req("DELETE", f"/access-rights/{f.right_b()}")),
    # duty roster (K8)
    Action("roster", lambda f: CReq("GET", "/roster"), lambda f: Req("GET", "/duty-roster")),
    Action("add shift", lambda f: CReq("POST", "/roster", _shift(f)),
           lambda f: Req("POST", "/duty-roster", f.shift_body())),
    Action("remove shift", lambda f: CReq("POST", f"/roster/{f.shift()}/remove"),
           lambda f: Req("DELETE", f"/duty-roster/{f.shift()}")),
    # owners (A1) and letters (K6)
    Action("owners", lambda f: CReq("GET", "/owners"), lambda f: Req("GET", "/owners")),
    Action("owner", lambda f: CReq("GET", f"/owners/{f.id('owner')}"),
           lambda f: Req("GET", f"/owners/{f.id('owner')}")),
    Action("add owner", lambda f: CReq("POST", "/owners", {"name": f"业主{n()}"}),
           lambda f: Req("POST", "/owners", {"name": f"业主{n()}"})),
    Action("rename owner", lambda f: CReq("POST", f"/owners/{f.id('owner')}/edit",
                                          {"name": "华信科技有限公司"}),
           lambda f: Req("PATCH", f"/owners/{f.id('owner')}", {"name": "华信科技有限公司"})),
    Action("owner personal data", lambda f: CReq(
        "POST", f"/owners/{f.id('owner')}/personal-data", {"purpose": "联系"}),
        lambda f: Req("GET", f"/owners/{f.id('owner')}/personal-data")),
    Action("letters", lambda f: CReq("GET", "/authorizations"),
           lambda f: Req("GET", "/owner-authorizations")),
    Action("letter", lambda f: CReq("GET", f"/authorizations/{f.authorization()}"),
           lambda f: Req("GET", f"/owner-authorizations/{f.authorization()}")),
    Action("register letter", lambda f: CReq("POST", "/authorizations", {
        "owner_id": f.id("owner"), "proxy_id": f.id("proxy"), "letter_ref": f"WT-{n()}",
        "unit_ids": [f.id("unit")], "valid_from": _local(-1), "valid_to": _local(48),
        "requires_phone_confirmation": "on"}),
        lambda f: Req("POST", "/owner-authorizations", {
            "owner_id": f.id("owner"), "proxy_id": f.id("proxy"), "letter_ref": f"WT-{n()}",
            "unit_ids": [f.id("unit")], "valid_from": utcnow().isoformat(),
            "valid_to": (utcnow() + dt.timedelta(hours=48)).isoformat()})),
    Action("extend letter", lambda f: CReq("POST", f"/authorizations/{f.authorization()}/extend",
                                           {"letter_ref": f"EX-{n()}", "valid_to": _local(72)}),
           lambda f: Req("POST", "/owner-authorizations", {
               "owner_id": f.id("owner"), "proxy_id": f.id("proxy"), "letter_ref": f"EX-{n()}",
               "unit_ids": [f.id("unit")], "valid_from": utcnow().isoformat(),
               "valid_to": (utcnow() + dt.timedelta(hours=72)).isoformat()})),
    Action("end letter", lambda f: CReq("POST", f"/authorizations/{f.authorization()}/end"),
           lambda f: Req("POST", f"/owner-authorizations/{f.authorization()}/revoke")),
    Action("phone confirmation", lambda f: CReq(
        "POST", f"/authorizations/{f.authorization()}/call",
        {"outcome": "confirmed", "called_by_id": f.id("custodian")}),
        lambda f: Req("POST", f"/owner-authorizations/{f.authorization()}/phone-confirmations",
                      {"outcome": "confirmed", "called_by_id": f.id("custodian")})),
    # handovers (H1)
    Action("handovers", lambda f: CReq("GET", "/handovers"), lambda f: Req("GET", "/handovers")),
    Action("handover", lambda f: CReq("GET", f"/handovers/{f.handover()}"),
           lambda f: Req("GET", f"/handovers/{f.handover()}")),
    Action("print handover", lambda f: CReq("GET", f"/handovers/{f.handover()}/download?format=csv"),
           lambda f: Req("GET", f"/handovers/{f.handover()}/download", params={"format": "csv"})),
    # reports (K9)
    Action("reports", lambda f: CReq("GET", "/reports"), lambda f: Req("GET", "/reports")),
    Action("report", lambda f: CReq("GET", f"/reports/{f.report()}"),
           lambda f: Req("GET", f"/reports/{f.report()}")),
    Action("download report", lambda f: CReq("GET", f"/reports/{f.report()}/download?format=csv"),
           lambda f: Req("GET", f"/reports/{f.report()}/download", params={"format": "csv"})),
    Action("acknowledge report", lambda f: CReq("POST", f"/reports/{f.report()}/acknowledge",
                                                {"note": "已阅"}),
           lambda f: Req("POST", f"/reports/{f.report()}/acknowledge", {"note": "已阅"})),
    # reports on demand (K9): preview (page, file) and issue
    Action("preview report", lambda f: CReq("GET", "/reports/new?kind=overdue"),
           lambda f: Req("GET", "/reports/preview", params={"kind": "overdue"})),
    Action("preview report file", lambda f: CReq("GET", "/reports/preview.csv?kind=overdue"),
           lambda f: Req("GET", "/reports/preview", params={"kind": "overdue", "format": "csv"})),
    Action("issue report", lambda f: CReq("POST", "/reports/new", {"kind": "overdue"}),
           lambda f: Req("POST", "/reports", {"kind": "overdue"})),
    # bulk import: template, preview, import
    Action("import template", lambda f: CReq("GET", "/imports/keys/template.xlsx"),
           lambda f: Req("GET", "/imports/keys/template.xlsx")),
    Action("import preview", lambda f: CReq("POST", "/imports/units/preview", files={
        "file": ("u.csv", f.units_csv(), "text/csv")}),
        lambda f: Req("POST", "/imports/units/preview",
                      files={"file": ("u.csv", f.units_csv(), "text/csv")})),
    Action("import", lambda f: CReq("POST", "/imports/units", {
        "blob": base64.b64encode(f.units_csv()).decode(), "filename": "u.csv"}),
        lambda f: Req("POST", "/imports/units",
                      files={"file": ("u.csv", f.units_csv(), "text/csv")})),
    # the cabinet PIN that goes with a badge (issue 14, item 8)
    Action("reset a PIN", lambda f: CReq("POST", f"/people/{f.person_b()}/pin/reset"),
           lambda f: Req("POST", f"/people/{f.person_b()}/pin/reset")),
    # card enrolment by tapping at the cabinet
    Action("enrol a card", lambda f: CReq("POST", f"/people/{f.enrol_person_b()}/cards/enrol"),
           lambda f: Req("POST", f"/people/{f.enrol_person_b()}/cards/enrol")),
    Action("enrolment state",
           lambda f: CReq("GET", "/people/" + f.enrolment_b().replace("/cards/enrol/",
                                                                       "/enrol/")),
           lambda f: Req("GET", f"/people/{f.enrolment_b()}")),
    # audit
    Action("audit search", lambda f: CReq("GET", "/audit?rule=K7"),
           lambda f: Req("GET", "/events", params={"rule": "K7"})),
    Action("audit csv", lambda f: CReq("GET", "/audit/export.csv?type=auth"),
           lambda f: Req("GET", "/events/export.csv", params={"type_prefix": "auth"})),
    Action("verify now", lambda f: CReq("POST", "/audit/verify"),
           lambda f: Req("GET", "/audit/verify")),
    Action("sign checkpoint", lambda f: CReq("POST", "/audit/checkpoint"),
           lambda f: Req("POST", "/audit/checkpoints")),
    Action("export checkpoint", lambda f: CReq("GET", f"/audit/checkpoints/{f.checkpoint()}"),
           lambda f: Req("GET", f"/audit/checkpoints/{f.checkpoint()}")),
    # accounts and API tokens
    Action("accounts", lambda f: CReq("GET", "/accounts"), lambda f: Req("GET", "/accounts")),
    Action("add account", lambda f: CReq("POST", "/accounts", {
        "username": f"new-{n()}", "password": "correct horse battery", "role": "auditor",
        "department_id": f.id("dept:B")}),
        lambda f: Req("POST", "/accounts", {
            "username": f"new-{n()}", "password": "correct horse battery", "role": "auditor",
            "department_id": f.id("dept:B")})),
    Action("edit account", lambda f: CReq("POST", f"/accounts/{f.account_b()}/edit", {
        "role": "auditor", "active": "on", "department_id": f.id("dept:B")}),
        lambda f: Req("PATCH", f"/accounts/{f.account_b()}", {"active": True})),
    Action("set password", lambda f: CReq("POST", f"/accounts/{f.account_b()}/password",
                                          {"password": "another long secret"}),
           lambda f: Req("POST", f"/accounts/{f.account_b()}/password",
                         {"password": "another long secret"})),
    Action("unlock account", lambda f: CReq("POST", f"/accounts/{f.account_b()}/unlock"),
           lambda f: Req("POST", f"/accounts/{f.account_b()}/unlock")),
    Action("create token", lambda f: CReq("POST", "/api-tokens", {
        "account_id": str(f.account_b()), "name": "sync", "scopes": ["keys:read"]}),
        lambda f: Req("POST", "/api-tokens", {"account_id": str(f.account_b()), "name": "sync",
                                              "scopes": ["keys:read"]})),
    Action("revoke token", lambda f: CReq("POST", f"/api-tokens/{f.token_b()}/revoke"),
           lambda f: Req("POST", f"/api-tokens/{f.token_b()}/revoke")),
]


def _outcome(status: int) -> str:
    if status in (200, 201, 202, 204, 303):
        return "allowed"
    if status in (403, 404):
        return "refused"
    return f"failed ({status})" if status in (409, 422) else f"unexpected {status}"


@dataclass
class Caller:
    label: str
    headers: dict[str, str]
    console: ConsoleUser


def _callers(world: World) -> list[Caller]:
    callers = []
    variants: list[tuple[AccountRole, str | None]] = [(r, "A") for r in AccountRole]
    variants += [(r, None) for r in AccountRole if r != AccountRole.DEPT_LEADER]
    for role, dept in variants:
        person = world.person(f"Q{n():04d}", dept="A", roles=MATRIX_PERSON_ROLES.get(
            role, (Role.STAFF,)))
        callers.append(_caller(world, role, dept, person, f"{role.value}/{dept or 'all'}"))
    callers.append(_caller(world, AccountRole.DEPT_LEADER, "B", world.ids["leader_b"],
                           "dept_leader/B"))
    return callers


def _caller(world: World, role: AccountRole, dept: str | None, person: Any,
            label: str) -> Caller:
    name = f"m-{role.value.replace('_', '-')}-{n()}"
    headers = world.token(role, dept=dept, person=person, username=name)
    user = ConsoleUser(world)
    assert user.login(name).status_code == 303
    return Caller(label, headers, user)


def _api(world: World, req: Req, headers: dict[str, str]) -> int:
    return int(world.client.request(req.method, V1 + req.path, json=req.json,
                                     params=req.params, headers=headers,
                                     files=req.files).status_code)


def _console(user: ConsoleUser, req: CReq) -> int:
    if req.method == "GET":
        return int(user.get(C + req.path).status_code)
    return int(user.post(C + req.path, req.data, files=req.files).status_code)


@pytest.mark.usefixtures("cabinet_attached")
def test_every_console_action_answers_as_the_api_does_for_every_role(world: World) -> None:
    fresh = Fresh(world)
    callers = _callers(world)
    mismatches: list[str] = []
    allowed_somewhere: dict[str, bool] = {}
    refused_somewhere: dict[str, bool] = {}
    for action in ACTIONS:
        for caller in callers:
            fresh.no_handover_waiting()
            api = _outcome(_api(world, action.api(fresh), caller.headers))
            fresh.no_handover_waiting()
            console = _outcome(_console(caller.console, action.console(fresh)))
            if api != console:
                mismatches.append(f"{action.name} as {caller.label}: API {api}, console {console}")
            allowed_somewhere[action.name] = allowed_somewhere.get(action.name, False) or (
                console == "allowed")
            refused_somewhere[action.name] = refused_somewhere.get(action.name, False) or (
                console == "refused")
    assert mismatches == []
    # every action is a real request that some role may make (not a malformed one refused
    # alike by both), and the matrix does refuse somewhere (it tests authorization)
    assert [name for name, ok in allowed_somewhere.items() if not ok] == []
    assert any(refused_somewhere.values())
