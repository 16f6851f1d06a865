from kiosk.store.models_auth import AccountRole
from kiosk.store.models import Alarm


def test_alarms(world, as_role):
    a = Alarm(kind="door_forced", message="门被强行打开", rule="K2")
    world.add(a)
    u = as_role(AccountRole.DUTY_MANAGER, person=world.ids["manager"])
    assert u.get("/console/alarms?state=open&kind=door_forced").status_code == 200
    r = u.get(f"/console/alarms/{a.id}")
    assert r.status_code == 200, r.text
    r = u.post(f"/console/alarms/{a.id}/acknowledge", {"note": ""})
    assert r.status_code == 422 and "必填" in r.text, r.text
    r = u.post(f"/console/alarms/{a.id}/acknowledge", {"note": "到场查看"})
    assert r.status_code == 303, r.text
    r = u.post(f"/console/alarms/{a.id}/note", {"note": "门锁正常"})
    assert r.status_code == 303, r.text
    r = u.post(f"/console/alarms/{a.id}/close", {"note": "误报"})
    assert r.status_code == 303, r.text
    r = u.get(f"/console/alarms/{a.id}?lang=en")
    assert "Closed" in r.text
