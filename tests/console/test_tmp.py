from kiosk.store.models_auth import AccountRole


def test_people(world, as_role):
    u = as_role(AccountRole.ADMIN)
    assert u.get("/console/people?q=A0").status_code == 200
    r = u.post("/console/people", {"staff_no": "", "name": "", "roles": ["staff"]})
    assert r.status_code == 422 and "必填" in r.text
    r = u.post("/console/people", {"staff_no": "X9", "name": "<img src=x onerror=alert(1)>", "roles": ["staff", "custodian"], "active": "on", "phone": "abc"})
    assert r.status_code == 422 and "格式不正确" in r.text, r.text
    r = u.post("/console/people", {"staff_no": "X9", "name": "<img src=x onerror=alert(1)>", "roles": ["staff", "custodian"], "active": "on"})
    assert r.status_code == 303, r.text
    loc = r.headers["location"]
    r = u.get(loc)
    assert "&lt;img src=x" in r.text
    r = u.post(loc + "/cards", {"uid": "zz", "kind": "staff"})
    assert r.status_code == 422, r.text
    r = u.post(loc + "/cards", {"uid": "04A1B2C3", "kind": "staff", "valid_to": "2030-01-01T00:00"})
    assert r.status_code == 303, r.text
    r = u.post(loc + "/edit", {"staff_no": "X9", "name": "新名字", "roles": ["staff"], "active": "on"})
    assert r.status_code == 303, r.text
    r = u.get(f"/console/people/{world.ids['staff_a']}")
    assert r.status_code == 200
    card = world.ids["card_a"]
    assert u.post(f"/console/cards/{card}/lost", {}).status_code == 303
