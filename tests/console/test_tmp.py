import datetime as dt
from kiosk.store.models_auth import AccountRole
from kiosk.store.models import Approval
from kiosk.store.types import utcnow


def test_approvals(world, as_role):
    a = Approval(key_id=world.ids["key:E-PWR"], requested_for_id=world.ids["staff_b"], reason="检修<img src=x onerror=alert(1)>", valid_until=utcnow() + dt.timedelta(hours=2))
    world.add(a)
    lead = as_role(AccountRole.DEPT_LEADER, dept="B", person=world.ids["leader_b"])
    r = lead.get("/console/approvals")
    assert r.status_code == 200, r.text
    r = lead.get(f"/console/approvals/{a.id}")
    assert r.status_code == 200, r.text
    assert "&lt;img" in r.text
    r = lead.post(f"/console/approvals/{a.id}/decide", {"decision": "approve", "note": "ok"})
    assert r.status_code == 303, r.text
    other = as_role(AccountRole.DEPT_LEADER, dept="A", person=world.ids["leader_a"])
    assert other.get(f"/console/approvals/{a.id}").status_code == 404
    sup = as_role(AccountRole.CUSTODIAN)
    r = sup.get("/console/approvals")
    assert r.status_code == 200, r.text
    r = sup.post("/console/approvals", {"key_id": "", "reason": ""})
    assert r.status_code == 422
    print(r.text[-2500:])
