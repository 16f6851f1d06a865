from kiosk.store.models_auth import AccountRole


def test_keys(world, as_role):
    u = as_role(AccountRole.CUSTODIAN, person=world.ids["custodian"])
    for q in ["", "?q=U12", "?room=1201", "?floor=12", "?floor=abc"]:
        r = u.get("/console/keys" + q)
        assert r.status_code in (200, 422), r.text
    k = world.ids["key:U1202"]
    r = u.get(f"/console/keys/{k}")
    assert r.status_code == 200, r.text
    r = u.post(f"/console/keys/{k}/edit", {"label": "", "copies": "x"})
    assert r.status_code == 422 and "必填" in r.text and "请输入整数" in r.text, r.text
    r = u.post(f"/console/keys/{k}/edit", {"label": "新名称", "copies": "2", "group_id": str(world.ids["group"]), "category": "unit"})
    assert r.status_code == 303, r.text
    r = u.post(f"/console/keys/{k}/move", {"slot_id": str(world.ids["slot:10"])})
    assert r.status_code == 303, r.text
    r = u.post(f"/console/keys/{k}/retire", {"reason": "丢失"})
    assert r.status_code == 303, r.text
    a = as_role(AccountRole.AUDITOR)
    assert a.post(f"/console/keys/{k}/retire", {"reason": "x"}).status_code == 403
