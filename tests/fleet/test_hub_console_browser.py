"""The hub's console pages by site (issue 12) in a real headless Chromium on a real
``kiosk hub`` over PostgreSQL: keys out, cabinet alarms, keys, a cabinet's log, issued
reports, a site's merged log, keys received, handovers and the site settings form, at desktop (1366×768) and phone (360×740) size, each
with axe-core (no serious or critical violation), no horizontal scrolling and a screenshot;
the site filter narrows in the browser, a supervisor scoped to one tower sees that tower's
rows, and the settings form refuses a bad value beside its box."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kiosk.config import Settings
from kiosk.runtime import Runtime
from kiosk.store.db import write_session
from kiosk.store.models import Cabinet, Key, Person, Slot
from tests.console.browser_console import DESKTOP, PHONE, check_screen
from tests.fleet.fleet_rig import PASSWORD, Hub, http, kiosk_cli, prepare_hub
from tests.fleet.site_records import ship_a_day, ship_intake_and_handover

pytestmark = [pytest.mark.browser, pytest.mark.postgres]
SIZES = {"desktop": DESKTOP, "phone": PHONE}


def _seed(hub: Hub, db_url: str, root: Path) -> None:
    """Two towers, a cabinet at each enrolled with a one-time code, a key of the demo tower
    homed at each, and a day at each cabinet shipped up (the hub's own log writer, on the
    same database: a second hub process)."""
    for site in ("tower-a", "tower-b"):
        hub.post("/hub/v1/sites", {"code": site, "name": f"{site[-1].upper()} 座"})
    here = Runtime.open(Settings(data_dir=hub.workdir / "var", database_url=db_url,
                                 cabinet_id="hub"))
    try:
        for site, code in (("tower-a", "cab-a"), ("tower-b", "cab-b")):
            secret = hub.post(f"/hub/v1/sites/{site}/enrolment-codes")["code"]
            cab = Runtime.open(Settings(data_dir=root / code, cabinet_id=code))
            try:
                status, body = http("POST", hub.fleet_url + "/enrol", {
                    "code": secret, "cabinet_id": code,
                    "public_key": cab.device_key.public_hex})
                assert status == 200, body
                with write_session(here.engine) as s:
                    cabinet = s.scalars(select(Cabinet).where(Cabinet.code == code)).one()
                    slot = Slot(cabinet_id=cabinet.id, number=1)
                    s.add(slot)
                    s.flush()
                    key = s.scalars(select(Key).order_by(Key.key_number)  # moved here
                                    .offset(0 if code == "cab-a" else 1)).first()
                    assert key is not None
                    key.home_slot_id = slot.id
                    person = s.scalars(select(Person).where(Person.active)
                                       .order_by(Person.staff_no)
                                       .offset(0 if code == "cab-a" else 1)).first()
                    assert person is not None
                    incoming = s.scalars(select(Person.id).where(Person.active)
                                         .order_by(Person.staff_no).offset(2)).first()
                    assert incoming is not None
                    who = (key.id, key.key_number, person.id, person.staff_no, person.name)
                ship_a_day(here.audit, cab, key_id=who[0], key_number=who[1],
                           person_id=who[2], staff_no=who[3], name=who[4])
                ship_intake_and_handover(here.audit, cab, key_id=who[0], custodian_id=who[2],
                                         incoming_id=incoming, accepted=code == "cab-a")
            finally:
                cab.close()
    finally:
        here.close()


@pytest.fixture(scope="module")
def hub(hub_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("hub-console")
    running = prepare_hub(root / "hub", hub_db).start()
    try:
        running.login()
        _seed(running, hub_db, root)
        kiosk_cli(running.env, "admin", "create", "sup-a", "--role", "supervisor",
                  "--password-stdin", stdin=PASSWORD + "\n", cwd=running.workdir)
        status, body = http("PUT", running.base + "/hub/v1/accounts/sup-a/site",
                            {"site": "tower-a"}, token=running.token)
        assert status == 200, body
        yield running
    finally:
        running.stop()


def _page(browser: Any, hub: Hub, username: str, size: str) -> Any:
    phone = size == "phone"
    context = browser.new_context(viewport=SIZES[size], has_touch=phone, is_mobile=phone,
                                  locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(hub.base + "/console/login")
    page.fill("#f-username", username)
    page.fill("#f-password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "/console/login" not in page.url, page.inner_text("main")
    return page


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_hubs_pages_by_site_fit_and_pass_axe(browser: Any, hub: Hub, size: str) -> None:
    page = _page(browser, hub, "root", size)
    try:
        for name, path in (("loans", "/console/fleet/loans"),
                           ("alarms", "/console/fleet/alarms"),
                           ("keys", "/console/fleet/keys"),
                           ("events", "/console/fleet/events?cabinet=cab-a"),
                           ("reports", "/console/fleet/reports"),
                           ("log", "/console/fleet/log"),
                           ("intake", "/console/fleet/intake"),
                           ("handovers", "/console/fleet/handovers"),
                           ("settings", "/console/fleet/settings?site=tower-a")):
            page.goto(hub.base + path)
            assert page.locator("h1").count() == 1
            check_screen(page, f"hub-{name}", size)
        # The site filter, as a person uses it: choose tower B, press filter.
        page.goto(hub.base + "/console/fleet/loans")
        assert page.locator("tr[data-cabinet]").count() == 2
        page.select_option("#f-site", "tower-b")
        with page.expect_navigation():
            page.click("form.filters button[type=submit]")
        cabinets = page.locator("tr[data-cabinet]").evaluate_all(
            "rows => rows.map(r => r.dataset.cabinet)")
        assert cabinets == ["cab-b"]
        check_screen(page, "hub-loans-tower-b", size)
        # The merged log: both towers' cabinets in one list, then one tower by its filter.
        page.goto(hub.base + "/console/fleet/log")
        both = page.locator("tr[data-cabinet]").evaluate_all(
            "rows => rows.map(r => r.dataset.cabinet)")
        assert set(both) == {"cab-a", "cab-b"}
        page.select_option("#f-site", "tower-a")
        with page.expect_navigation():
            page.click("form.filters button[type=submit]")
        assert set(page.locator("tr[data-cabinet]").evaluate_all(
            "rows => rows.map(r => r.dataset.cabinet)")) == {"cab-a"}
    finally:
        page.context.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_scoped_supervisor_sees_its_tower_and_reads_its_settings(
        browser: Any, hub: Hub, size: str) -> None:
    page = _page(browser, hub, "sup-a", size)
    try:
        assert page.url.endswith("/console/fleet")
        page.click("a[href='/console/fleet/loans']")
        page.wait_for_url("**/console/fleet/loans")
        cabinets = page.locator("tr[data-cabinet]").evaluate_all(
            "rows => rows.map(r => r.dataset.cabinet)")
        assert cabinets == ["cab-a"]
        assert page.locator("#f-site option[value='tower-b']").count() == 0
        check_screen(page, "hub-loans-scoped", size)
        for what in ("log", "intake", "handovers"):
            page.click(f"a[href='/console/fleet/{what}']")
            page.wait_for_url(f"**/console/fleet/{what}")
            rows = page.locator("tr[data-cabinet]").evaluate_all(
                "rows => rows.map(r => r.dataset.cabinet)")
            assert rows and set(rows) == {"cab-a"}, what
            check_screen(page, f"hub-{what}-scoped", size)
        page.goto(hub.base + "/console/fleet/settings")
        assert page.locator("#site-settings").count() == 0  # no cabinets:write: read only
        check_screen(page, "hub-settings-readonly", size)
    finally:
        page.context.close()


def test_the_settings_form_refuses_a_bad_value_beside_its_box_and_saves_a_good_one_K8(
        browser: Any, hub: Hub) -> None:
    page = _page(browser, hub, "root", "phone")
    try:
        page.goto(hub.base + "/console/fleet/settings?site=tower-b")
        page.fill("#f-business_hours", '{"start": "20:00", "end": "08:00"}')
        with page.expect_navigation():
            page.click("#site-settings button[type=submit]")
        error = page.locator("#business_hours-error")
        assert error.count() == 1 and "business_hours" in error.inner_text()
        assert page.locator("#f-business_hours").get_attribute("aria-invalid") == "true"
        check_screen(page, "hub-settings-error", "phone")
        page.fill("#f-business_hours", '{"start": "07:30", "end": "19:00"}')
        page.fill("#f-site", '{"building_name": "B 座"}')
        with page.expect_navigation():
            page.click("#site-settings button[type=submit]")
        assert "site=tower-b" in page.url
        status, body = http("GET", hub.base + "/hub/v1/sites/tower-b/settings",
                            token=hub.token)
        assert status == 200 and body["settings"]["business_hours"]["start"] == "07:30:00"
        assert body["settings"]["site"]["building_name"] == "B 座"
        check_screen(page, "hub-settings-saved", "phone")
    finally:
        page.context.close()
