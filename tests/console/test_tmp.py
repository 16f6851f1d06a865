from kiosk.store.models_auth import AccountRole


def test_roster(world, as_role):
    u = as_role(AccountRole.SUPERVISOR)
    assert u.get("/console/roster").status_code == 200
    r = u.post("/console/roster", {"person_id": str(world.ids["manager"]), "starts_at": "", "ends_at": "2026-12-08T08:00", "repeat": "1"})
    assert r.status_code == 422 and "必填" in r.text
    r = u.post("/console/roster", {"person_id": str(world.ids["manager"]), "starts_at": "2026-12-07T18:00", "ends_at": "2026-12-08T08:00", "repeat": "3"})
    assert r.status_code == 303, r.text
    r = u.get(r.headers["location"])
    assert r.status_code == 200 and "员工M001" in r.text
    import re
    sid = re.search(r'/console/roster/([0-9a-f-]{36})/remove', r.text).group(1)
    assert u.post(f"/console/roster/{sid}/remove").status_code == 303
    assert u.get("/console/roster?week=2026-12-14").status_code == 200
