"""One test per rule the admin API can reach: K1, K6, K7, K8, K9 (and F1, A1, lost cards).

Each drives the HTTP API as an operator would and then checks both the record and the audit
event that must have been written with it (the rule id in ``rules``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.services import cards as card_service
from kiosk.services.cards import TapRefusal
from kiosk.store.models import Approval, ApprovalStatus, Event, Role
from kiosk.store.models_auth import AccountRole
from kiosk.store.types import utcnow
from tests.api.conftest import World

V1 = "/api/v1"


def events_of(world: World, type_: str) -> list[dict[str, Any]]:
    with Session(world.runtime.engine) as session:
        rows = session.scalars(select(Event).where(Event.type == type_).order_by(Event.seq))
        return [
            {
                "seq": r.seq,
                "rules": json.loads(r.rules),
                "actors": json.loads(r.actors),
                "payload": json.loads(r.payload),
                "key_number": r.key_number,
                "slot": r.slot,
            }
            for r in rows
        ]


def iso(at: dt.datetime) -> str:
    return at.isoformat()


def test_k1_intake_records_who_when_room_count_custodian_and_slot(world: World) -> None:
    custodian = world.token(AccountRole.CUSTODIAN, person=world.ids["custodian"])
    new_key = world.client.post(
        f"{V1}/keys",
        headers=custodian,
        json={"key_number": "U1203", "label": "1203 室", "group_id": str(world.ids["group"]),
              "category": "unit"},
    )
    assert new_key.status_code == 201, new_key.text
    key_id = new_key.json()["id"]
    body = {
        "key_id": key_id,
        "delivered_by_name": "王伟",
        "delivered_by_department": "工程部",
        "room_number": "1203",
        "key_count": 2,
        "deliverer_confirmed": True,
        "slot_id": str(world.ids["slot:10"]),
    }
    record = world.client.post(f"{V1}/intake-records", headers=custodian, json=body)
    assert record.status_code == 201, record.text
    got = record.json()
    assert got["custodian_id"] == str(world.ids["custodian"])  # default: the caller's person
    assert got["key_count"] == 2 and got["room_number"] == "1203"
    assert got["slot_id"] == str(world.ids["slot:10"])
    key = world.client.get(f"{V1}/keys/{key_id}", headers=custodian).json()
    assert key["home_slot_number"] == 10 and key["out"] is False

    (event,) = events_of(world, "key.intake")
    assert event["rules"] == ["K1"]
    assert event["seq"] == got["event_seq"]
    assert event["key_number"] == "U1203" and event["slot"] == 10
    assert event["payload"]["delivered_by"] == "王伟"
    assert str(world.ids["custodian"]) in event["actors"]

    # Not confirmed by the deliverer, or received by someone who is not a custodian: refused.
    unconfirmed = world.client.post(
        f"{V1}/intake-records", headers=custodian, json={**body, "deliverer_confirmed": False}
    )
    assert unconfirmed.status_code == 422
    not_custodian = world.client.post(
        f"{V1}/intake-records",
        headers=custodian,
        json={**body, "slot_id": None, "custodian_id": str(world.ids["staff_a"])},
    )
    assert not_custodian.status_code == 422
    assert "not an active key custodian" in not_custodian.json()["detail"]
    # A slot that is another key's home is refused, and nothing was recorded for it.
    taken = world.client.post(
        f"{V1}/intake-records", headers=custodian, json={**body, "slot_id": str(world.ids["slot:1"])}
    )
    assert taken.status_code == 409
    assert len(events_of(world, "key.intake")) == 1
    listed = world.client.get(f"{V1}/intake-records", headers=custodian, params={"key_id": key_id})
    assert listed.json()["total"] == 1


def test_k6_proxy_needs_authorization_and_a_confirmed_call(world: World) -> None:
    custodian = world.token(AccountRole.CUSTODIAN, person=world.ids["custodian"])
    now = utcnow()
    body = {
        "owner_id": str(world.ids["owner"]),
        "proxy_id": str(world.ids["proxy"]),
        "letter_ref": "WT-2026-0201",
        "unit_ids": [str(world.ids["unit"])],
        "valid_from": iso(now - dt.timedelta(hours=1)),
        "valid_to": iso(now + dt.timedelta(days=7)),
    }
    # A unit that is not the owner's cannot be in the owner's letter.
    wrong = world.client.post(
        f"{V1}/owner-authorizations",
        headers=custodian,
        json={**body, "unit_ids": [str(world.ids["other_unit"])]},
    )
    assert wrong.status_code == 422 and "does not belong" in wrong.json()["detail"]

    made = world.client.post(f"{V1}/owner-authorizations", headers=custodian, json=body)
    assert made.status_code == 201, made.text
    auth = made.json()
    assert auth["ready_for_draw"] is False
    assert auth["not_ready_because"] == ["phone confirmation with the owner missing"]
    calls = f"{V1}/owner-authorizations/{auth['id']}/phone-confirmations"

    no_answer = world.client.post(calls, headers=custodian, json={"outcome": "no_answer"})
    assert no_answer.status_code == 201
    still = world.client.get(f"{V1}/owner-authorizations/{auth['id']}", headers=custodian)
    assert still.json()["ready_for_draw"] is False

    confirmed = world.client.post(
        calls, headers=custodian, json={"outcome": "confirmed", "note": "业主确认"}
    )
    assert confirmed.status_code == 201
    assert confirmed.json()["called_by_id"] == str(world.ids["custodian"])
    ready = world.client.get(f"{V1}/owner-authorizations/{auth['id']}", headers=custodian).json()
    assert ready["ready_for_draw"] is True and ready["not_ready_because"] == []
    assert len(world.client.get(calls, headers=custodian).json()) == 2

    revoked = world.client.post(
        f"{V1}/owner-authorizations/{auth['id']}/revoke", headers=custodian, json={"note": "业主撤回"}
    )
    assert revoked.json()["ready_for_draw"] is False
    assert revoked.json()["not_ready_because"] == ["revoked"]
    after = world.client.post(calls, headers=custodian, json={"outcome": "confirmed"})
    assert after.status_code == 409

    kinds = [e["payload"].get("outcome") for e in events_of(world, "authorization.phone_confirmation")]
    assert kinds == ["no_answer", "confirmed"]
    for type_ in ("authorization.registered", "authorization.phone_confirmation",
                  "authorization.revoked"):
        assert all(e["rules"] == ["K6"] for e in events_of(world, type_))


def test_k7_approval_lifecycle_and_department_leaders(world: World) -> None:
    custodian = world.token(AccountRole.CUSTODIAN, person=world.ids["custodian"])
    leader_a = world.token(AccountRole.DEPT_LEADER, dept="A", person=world.ids["leader_a"])
    leader_b = world.token(AccountRole.DEPT_LEADER, dept="B", person=world.ids["leader_b"])
    auditor = world.token(AccountRole.AUDITOR)
    until = iso(utcnow() + dt.timedelta(hours=4))

    def request(for_: str, key: str = "key:E-PWR") -> Any:
        return world.client.post(
            f"{V1}/approvals",
            headers=custodian,
            json={"key_id": str(world.ids[key]), "requested_for_id": str(world.ids[for_]),
                  "reason": "配电柜检修", "valid_until": until},
        )

    # Only special-room keys need (and get) K7 approvals.
    plain = request("staff_a", key="key:U1201")
    assert plain.status_code == 422 and "K7" in plain.json()["detail"]

    first = request("staff_a").json()
    assert first["status"] == "pending" and first["requested_by_id"] == str(world.ids["custodian"])
    # The other department's leader neither sees nor decides it; an auditor never writes.
    assert world.client.get(f"{V1}/approvals/{first['id']}", headers=leader_b).status_code == 404
    assert world.client.post(
        f"{V1}/approvals/{first['id']}/approve", headers=leader_b
    ).status_code == 404
    assert world.client.post(
        f"{V1}/approvals/{first['id']}/approve", headers=auditor
    ).status_code == 403
    assert [a["id"] for a in world.client.get(f"{V1}/approvals", headers=leader_b).json()["items"]] == []

    approved = world.client.post(
        f"{V1}/approvals/{first['id']}/approve", headers=leader_a, json={"note": "同意"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["approver_id"] == str(world.ids["leader_a"])
    again = world.client.post(f"{V1}/approvals/{first['id']}/reject", headers=leader_a)
    assert again.status_code == 409

    # A leader cannot approve a draw for themselves.
    own = request("leader_a").json()
    self_approval = world.client.post(f"{V1}/approvals/{own['id']}/approve", headers=leader_a)
    assert self_approval.status_code == 409

    rejected = request("staff_a").json()
    result = world.client.post(f"{V1}/approvals/{rejected['id']}/reject", headers=leader_a)
    assert result.json()["status"] == "rejected"

    admin = world.token(AccountRole.ADMIN)
    withdrawn = world.client.post(f"{V1}/approvals/{first['id']}/expire", headers=admin)
    assert withdrawn.json()["status"] == "expired"

    # An open approval past its valid_until expires in the sweep and cannot be approved.
    with Session(world.runtime.engine) as session:
        stale = Approval(
            key_id=world.ids["key:E-PWR"], requested_for_id=world.ids["staff_a"],
            reason="过期", valid_until=utcnow() - dt.timedelta(minutes=1),
            created_at=utcnow() - dt.timedelta(hours=2),
        )
        session.add(stale)
        session.commit()
        stale_id = stale.id
    late = world.client.post(f"{V1}/approvals/{stale_id}/approve", headers=leader_a)
    assert late.status_code == 409
    swept = world.client.post(f"{V1}/approvals/expire-due", headers=admin).json()
    assert swept["expired"] == [str(stale_id)]
    with Session(world.runtime.engine) as session:
        assert session.get_one(Approval, stale_id).status == ApprovalStatus.EXPIRED

    types = ["approval.requested", "approval.approved", "approval.rejected", "approval.expired"]
    for type_ in types:
        found = events_of(world, type_)
        assert found and all(e["rules"] == ["K7"] and e["key_number"] == "E-PWR" for e in found)


def test_k8_duty_roster_names_duty_managers_without_overlaps(world: World) -> None:
    supervisor = world.token(AccountRole.SUPERVISOR)
    start = utcnow().replace(microsecond=0) - dt.timedelta(hours=1)
    shift = {
        "person_id": str(world.ids["manager"]),
        "starts_at": iso(start),
        "ends_at": iso(start + dt.timedelta(hours=14)),
    }
    made = world.client.post(f"{V1}/duty-roster", headers=supervisor, json=shift)
    assert made.status_code == 201, made.text
    overlap = world.client.post(
        f"{V1}/duty-roster",
        headers=supervisor,
        json={**shift, "starts_at": iso(start + dt.timedelta(hours=13)),
              "ends_at": iso(start + dt.timedelta(hours=20))},
    )
    assert overlap.status_code == 409
    not_manager = world.client.post(
        f"{V1}/duty-roster", headers=supervisor, json={**shift, "person_id": str(world.ids["staff_a"])}
    )
    assert not_manager.status_code == 422 and "K8" in not_manager.json()["detail"]
    backwards = world.client.post(
        f"{V1}/duty-roster",
        headers=supervisor,
        json={**shift, "starts_at": shift["ends_at"], "ends_at": shift["starts_at"]},
    )
    assert backwards.status_code == 422

    duty = world.client.get(f"{V1}/duty-roster/on-duty", headers=supervisor).json()
    assert [s["person_id"] for s in duty] == [str(world.ids["manager"])]
    later = iso(start + dt.timedelta(hours=15))
    assert world.client.get(
        f"{V1}/duty-roster/on-duty", headers=supervisor, params={"at": later}
    ).json() == []
    # A duty manager reads the roster but cannot change it.
    manager = world.token(AccountRole.DUTY_MANAGER, person=world.ids["manager"])
    assert world.client.get(f"{V1}/duty-roster", headers=manager).json()["total"] == 1
    assert world.client.delete(
        f"{V1}/duty-roster/{made.json()['id']}", headers=manager
    ).status_code == 403
    assert world.client.delete(
        f"{V1}/duty-roster/{made.json()['id']}", headers=supervisor
    ).status_code == 204
    assert [e["rules"] for e in events_of(world, "roster.shift_added")] == [["K8"]]
    assert [e["rules"] for e in events_of(world, "roster.shift_removed")] == [["K8"]]


def test_k9_loans_filter_overdue_state_person_and_department(world: World) -> None:
    overdue = world.loan("U1201", world.ids["staff_a"], drawn_hours_ago=5, due_in_hours=-1)
    current = world.loan("U1202", world.ids["staff_b"], drawn_hours_ago=1, due_in_hours=2)
    supervisor = world.token(AccountRole.SUPERVISOR)

    def ids(**params: Any) -> list[str]:
        got = world.client.get(f"{V1}/loans", headers=supervisor, params=params)
        assert got.status_code == 200, got.text
        return [loan["id"] for loan in got.json()["items"]]

    assert ids(overdue=True) == [str(overdue)]
    assert set(ids(overdue=False)) == {str(current)}
    assert set(ids(state="open")) == {str(overdue), str(current)}
    assert ids(state="returned") == []
    assert ids(person_id=str(world.ids["staff_b"])) == [str(current)]
    assert ids(key_id=str(world.ids["key:U1201"])) == [str(overdue)]
    one = world.client.get(f"{V1}/loans/{overdue}", headers=supervisor).json()
    assert one["overdue"] is True and one["key_number"] == "U1201"
    # K10: the key list says which keys are out right now.
    keys = world.client.get(f"{V1}/keys", headers=supervisor).json()["items"]
    assert {k["key_number"] for k in keys if k["out"]} == {"U1201", "U1202"}
    # A department leader sees only their own department's borrowers.
    leader_b = world.token(AccountRole.DEPT_LEADER, dept="B", person=world.ids["leader_b"])
    mine = world.client.get(f"{V1}/loans", headers=leader_b).json()["items"]
    assert [loan["id"] for loan in mine] == [str(current)]
    assert world.client.get(f"{V1}/loans/{overdue}", headers=leader_b).status_code == 404


def test_k9_overdue_loans_come_most_overdue_first(world: World) -> None:
    """The key to chase first heads the overdue list, as on the cabinet's overdue report and
    at the hub: a key drawn later can be the longer overdue one; the other lists stay newest
    draw first."""
    long_overdue = world.loan("U1201", world.ids["staff_a"], drawn_hours_ago=6,
                              due_in_hours=-3)
    just_overdue = world.loan("U1202", world.ids["staff_b"], drawn_hours_ago=5,
                              due_in_hours=-0.5)
    supervisor = world.token(AccountRole.SUPERVISOR)

    def ids(**params: Any) -> list[str]:
        got = world.client.get(f"{V1}/loans", headers=supervisor, params=params)
        assert got.status_code == 200, got.text
        return [loan["id"] for loan in got.json()["items"]]

    assert ids(overdue=True) == [str(long_overdue), str(just_overdue)]
    assert ids(overdue=True, limit=1, offset=1) == [str(just_overdue)]
    assert ids(state="open") == [str(just_overdue), str(long_overdue)]  # newest draw first
    assert ids(state="open", overdue=True) == [str(long_overdue), str(just_overdue)]


def test_f1_alarm_owner_and_states_open_handled_closed(world: World) -> None:
    duty = world.token(AccountRole.DUTY_MANAGER, person=world.ids["manager"])
    raised = world.client.post(
        f"{V1}/alarms",
        headers=duty,
        json={"kind": "count_mismatch", "message": "日清点: U1201 不在柜内", "rule": "K9",
              "key_id": str(world.ids["key:U1201"])},
    )
    assert raised.status_code == 201, raised.text
    alarm = raised.json()
    assert alarm["state"] == "open"
    url = f"{V1}/alarms/{alarm['id']}"
    early = world.client.post(f"{url}/close", headers=duty, json={"note": "已找到"})
    assert early.status_code == 409 and "acknowledge" in early.json()["detail"]

    custodian_person = world.ids["custodian"]
    custodian = world.token(AccountRole.CUSTODIAN, person=custodian_person)
    handled = world.client.post(f"{url}/acknowledge", headers=custodian, json={"note": "正在核查"})
    assert handled.json()["state"] == "handled"
    assert handled.json()["owner_id"] == str(world.ids["manager"])  # the reporter owns it (F1)
    assigned = world.client.post(
        f"{url}/assign", headers=duty, json={"owner_id": str(custodian_person), "note": "交客服跟进"}
    )
    assert assigned.json()["owner_id"] == str(custodian_person)
    closed = world.client.post(f"{url}/close", headers=custodian, json={"note": "钥匙在 3 号位"})
    body = closed.json()
    assert body["state"] == "closed" and body["closed_at"] is not None
    assert [n["new_state"] for n in body["notes"]] == ["handled", None, "closed"]
    assert world.client.post(f"{url}/notes", headers=custodian, json={"note": "x"}).status_code == 409
    # An auditor reads alarms but cannot touch them.
    auditor = world.token(AccountRole.AUDITOR)
    assert world.client.get(url, headers=auditor).status_code == 200
    assert world.client.post(f"{url}/notes", headers=auditor, json={"note": "x"}).status_code == 403
    for type_ in ("alarm.count_mismatch", "alarm.acknowledged", "alarm.assigned", "alarm.closed"):
        (event,) = events_of(world, type_)
        assert event["rules"] == ["F1", "K9"]


def test_a1_owner_personal_data_only_for_roles_that_need_it_and_every_read_logged(
    world: World,
) -> None:
    url = f"{V1}/owners/{world.ids['owner']}"
    for role in AccountRole:
        headers = world.token(role, dept="A" if role == AccountRole.DEPT_LEADER else None)
        plain = world.client.get(url, headers=headers)
        if plain.status_code == 200:
            assert set(plain.json()) == {"id", "name", "updated_at"}
        private = world.client.get(f"{url}/personal-data", headers=headers)
        expected = 200 if role in (AccountRole.ADMIN, AccountRole.CUSTODIAN) else 403
        assert private.status_code == expected, role
    custodian = world.token(AccountRole.CUSTODIAN, person=world.ids["custodian"])
    data = world.client.get(
        f"{url}/personal-data", headers=custodian, params={"purpose": "K6 电话确认"}
    ).json()
    assert data["phone"] == "13812345678" and data["employer"] == "华信科技"
    reads = events_of(world, "owner.personal_data_read")
    assert len(reads) == 3  # admin, custodian, custodian: every read, including the first two
    assert reads[-1]["rules"] == ["A1"] and reads[-1]["payload"]["purpose"] == "K6 电话确认"
    # Changing personal data logs that it changed, never the value.
    world.client.patch(url, headers=custodian, json={"phone": "13999999999"})
    (update,) = events_of(world, "owner.updated")
    assert update["payload"]["phone"] == "(changed)" and "13999999999" not in json.dumps(update)


def test_lost_card_is_refused_at_the_next_tap(world: World) -> None:
    duty = world.token(AccountRole.DUTY_MANAGER, person=world.ids["manager"])
    with Session(world.runtime.engine) as session:
        assert card_service.check_tap(session, uid="a1b2c3d4").accepted
    lost = world.client.post(
        f"{V1}/cards/{world.ids['card_a']}/lost", headers=duty, json={"note": "员工报失"}
    )
    assert lost.status_code == 200 and lost.json()["status"] == "lost"
    with Session(world.runtime.engine) as session:
        assert card_service.check_tap(session, uid="A1B2C3D4").refusal == TapRefusal.LOST
    # Reporting twice is a conflict; revoking a lost card is allowed (admins only).
    assert world.client.post(
        f"{V1}/cards/{world.ids['card_a']}/lost", headers=duty
    ).status_code == 409
    assert world.client.post(
        f"{V1}/cards/{world.ids['card_a']}/revoke", headers=duty
    ).status_code == 403
    admin = world.token(AccountRole.ADMIN)
    revoked = world.client.post(f"{V1}/cards/{world.ids['card_a']}/revoke", headers=admin)
    assert revoked.json()["status"] == "revoked"
    # The uid stays on record: it cannot be issued again to someone else.
    reissue = world.client.post(
        f"{V1}/cards", headers=admin, json={"uid": "A1B2C3D4", "person_id": str(world.ids["staff_b"])}
    )
    assert reissue.status_code == 409
    (event,) = events_of(world, "card.reported_lost")
    assert event["payload"]["uid"] == "A1B2C3D4"


def test_people_roles_round_trip(world: World) -> None:
    admin = world.token(AccountRole.ADMIN)
    made = world.client.post(
        f"{V1}/people",
        headers=admin,
        json={"staff_no": "E2001", "name": "李娜", "department_id": str(world.ids["dept:A"]),
              "roles": ["staff", "custodian"]},
    )
    assert made.status_code == 201, made.text
    assert made.json()["roles"] == [Role.CUSTODIAN.value, Role.STAFF.value]
    patched = world.client.patch(
        f"{V1}/people/{made.json()['id']}", headers=admin, json={"roles": ["staff"], "phone": None}
    )
    assert patched.json()["roles"] == ["staff"] and patched.json()["phone"] is None
