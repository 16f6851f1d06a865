import re
from kiosk.store.models_auth import AccountRole


def test_owners(world, as_role):
    u = as_role(AccountRole.CUSTODIAN, person=world.ids["custodian"])
    assert u.get("/console/owners").status_code == 200
    o = world.ids["owner"]
    r = u.get(f"/console/owners/{o}")
    assert r.status_code == 200 and "13812345678" not in r.text
    r = u.post(f"/console/owners/{o}/personal-data", {"purpose": "联系业主"})
    assert r.status_code == 200 and "13812345678" in r.text, r.text
    aud = as_role(AccountRole.AUDITOR)
    assert aud.post(f"/console/owners/{o}/personal-data", {"purpose": "x"}).status_code == 403
    assert u.get("/console/authorizations").status_code == 200
    r = u.post("/console/authorizations", {"owner_id": str(o), "proxy_id": str(world.ids["proxy"]), "letter_ref": "WT-1", "unit_ids": [str(world.ids["unit"])], "valid_from": "2026-12-01T00:00", "valid_to": "2027-01-01T00:00", "requires_phone_confirmation": "on"})
    assert r.status_code == 303, r.text
    loc = r.headers["location"]
    assert u.get(loc).status_code == 200
    r = u.post(loc + "/call", {"outcome": "confirmed", "note": "业主同意"})
    assert r.status_code == 303, r.text
    r = u.post(loc + "/extend", {"letter_ref": "WT-2", "valid_to": "2026-12-02T00:00"})
    assert r.status_code == 422, r.text
    r = u.post(loc + "/extend", {"letter_ref": "WT-2", "valid_to": "2027-02-01T00:00"})
    assert r.status_code == 303, r.text
    loc2 = r.headers["location"]
    assert loc2 != loc
    r = u.post(loc2 + "/end", {"note": "退租"})
    assert r.status_code == 303, r.text
    assert u.get("/console/authorizations?include_revoked=true").status_code == 200
