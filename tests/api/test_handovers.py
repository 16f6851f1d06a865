"""H1 through the admin API: start as oneself, print, accept only by a badge at the cabinet."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.store.models import Card, Event
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World, attached_cabinet
from tests.reports.tower import need_font

V1 = "/api/v1"


def test_start_over_the_api_then_the_incoming_taps_at_the_cabinet_H1(world: World) -> None:
    need_font()
    world.loan("U1201", world.ids["staff_a"], drawn_hours_ago=3, due_in_hours=-1)
    custodian = world.token(AccountRole.CUSTODIAN, person=world.ids["custodian"],
                            username="li.na")
    with attached_cabinet(world) as cabinet:
        started = world.client.post(f"{V1}/handovers", json={"notes": "U1201 逾期，已电话催还"},
                                    headers=custodian)
        assert started.status_code == 201, started.text
        body = started.json()
        assert body["state"] == "started" and body["outgoing_account"] == "li.na"
        assert body["outgoing_card"] is None and body["incoming_id"] is None
        content = body["content"]
        assert [k["key_number"] for k in content["keys_out"]] == ["U1201"]
        assert content["overdue"] == 1 and content["outgoing"]["account"] == "li.na"
        assert content["count"]["sensors_available"], "the attached cabinet's scan is counted"

        again = world.client.post(f"{V1}/handovers", json={}, headers=custodian)
        assert again.status_code == 409 and "waiting to be accepted" in again.json()["detail"]

        pdf = world.client.get(f"{V1}/handovers/{body['id']}/download", headers=custodian)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        csv = world.client.get(f"{V1}/handovers/{body['id']}/download",
                               params={"format": "csv", "lang": "en"}, headers=custodian)
        assert "not yet accepted" in csv.content.decode("utf-8-sig")

        # The duty manager takes over: a badge tap at the cabinet, nothing over the API.
        world.add(Card(uid="DD000001", person_id=world.ids["manager"]))
        portal = world.client.portal
        assert portal is not None
        portal.call(cabinet.tap, "DD000001")
        waiting = cabinet.screen()["handover"]["waiting"]
        assert waiting["id"] == body["id"] and waiting["can_accept"]
        portal.call(cabinet.accept_handover)

    done = world.client.get(f"{V1}/handovers/{body['id']}", headers=custodian).json()
    assert done["state"] == "accepted" and done["incoming_card"] == "DD000001"
    assert done["content"]["incoming"]["card"] == "DD000001"
    supervisor = world.token(AccountRole.SUPERVISOR)
    reports = world.client.get(f"{V1}/reports", params={"kind": "handover"},
                               headers=supervisor).json()
    assert [r["id"] for r in reports["items"]] == [done["report_id"]]
    ack = world.client.post(f"{V1}/reports/{done['report_id']}/acknowledge",
                            json={"note": "已阅"}, headers=supervisor)
    assert ack.status_code == 200 and ack.json()["acknowledged_by"]


def test_an_account_without_a_keeper_behind_it_cannot_sign_H1(world: World) -> None:
    unlinked = world.token(AccountRole.ADMIN)
    refused = world.client.post(f"{V1}/handovers", json={}, headers=unlinked)
    assert refused.status_code == 422 and "not linked" in refused.json()["detail"]
    staff = world.token(AccountRole.SUPERVISOR, person=world.ids["staff_a"])
    refused = world.client.post(f"{V1}/handovers", json={}, headers=staff)
    assert refused.status_code == 422 and "H1" in refused.json()["detail"]
    # the refusal is logged like one at the cabinet, under the account that asked
    with Session(world.runtime.engine) as s:
        [denied] = s.scalars(select(Event).where(Event.type == "access.denied")).all()
    assert json.loads(denied.rules)[0] == "H1" and denied.decision == "deny"
    assert json.loads(denied.payload)["action"] == "handover.start"
    assert any(a.startswith("account:") for a in json.loads(denied.actors))
    auditor = world.token(AccountRole.AUDITOR)
    assert world.client.post(f"{V1}/handovers", json={}, headers=auditor).status_code == 403
    assert world.client.get(f"{V1}/handovers", headers=auditor).json()["total"] == 0


def test_a_supervisor_cancels_a_waiting_handover_and_it_stays_on_record_H1(
    world: World,
) -> None:
    custodian = world.token(AccountRole.CUSTODIAN, person=world.ids["custodian"])
    started = world.client.post(f"{V1}/handovers", json={}, headers=custodian).json()
    assert world.client.post(f"{V1}/handovers/{started['id']}/cancel",
                             headers=custodian).status_code == 403
    supervisor = world.token(AccountRole.SUPERVISOR)
    cancelled = world.client.post(f"{V1}/handovers/{started['id']}/cancel", headers=supervisor)
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["close_reason"] == "cancelled_by_account"
    again = world.client.post(f"{V1}/handovers/{started['id']}/cancel", headers=supervisor)
    assert again.status_code == 409
    listed = world.client.get(f"{V1}/handovers", headers=supervisor).json()
    assert [h["state"] for h in listed["items"]] == ["cancelled"]
