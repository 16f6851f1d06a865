from kiosk.store.models_auth import AccountRole


def test_rights(world, as_role):
    u = as_role(AccountRole.ADMIN)
    assert u.get("/console/rights").status_code == 200
    r = u.post("/console/rights", {"person_id": str(world.ids["staff_a"]), "key_group_id": "", "weekdays": []})
    assert r.status_code == 422, r.text
    import re; print(re.findall(r"class=.error.[^<]*<", r.text)); assert "请选择有效的选项" in r.text and "必填" in r.text
    r = u.post("/console/rights", {"person_id": str(world.ids["staff_a"]), "key_group_id": str(world.ids["group"]), "weekdays": ["1", "2"], "start_time": "08:00", "end_time": "17:00"})
    assert r.status_code == 303, r.text
    r = u.get(f"/console/rights?person_id={world.ids['staff_a']}")
    import re
    rid = re.search(r'/console/rights/([0-9a-f-]{36})', r.text).group(1)
    r = u.get(f"/console/rights/{rid}")
    assert r.status_code == 200, r.text
    r = u.post(f"/console/rights/{rid}/edit", {"key_group_id": str(world.ids["group"]), "weekdays": ["3"], "start_time": "19:00", "end_time": "17:00"})
    assert r.status_code == 409, r.text
    r = u.post(f"/console/rights/{rid}/edit", {"key_group_id": str(world.ids["group"]), "weekdays": ["3"], "start_time": "", "end_time": ""})
    assert r.status_code == 303, r.text
    r = u.post(f"/console/rights/{rid}/withdraw", {})
    assert r.status_code == 303, r.text
