"""The web console in a real headless Chromium on a real ``kiosk run`` daemon (demo tower,
simulated hardware): one journey per role at its natural size, every screen at desktop
(1366×768) and phone (360×740) size with axe-core and no horizontal scrolling, form errors
beside their fields in both languages, a hostile stored name shown as text."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.browser_console import (
    DESKTOP,
    PHONE,
    ConsoleDaemon,
    check_screen,
    no_horizontal_scroll,
    sign_in,
    start_console_daemon,
    with_role,
)

pytestmark = pytest.mark.browser
EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    rig = start_console_daemon(tmp_path_factory.mktemp("console"))
    try:
        d = rig.daemon
        rig.create_account("admin1", "admin", staff_no=with_role(d, "MGT", "admin")["staff_no"])
        rig.create_account("sup1", "supervisor",
                           staff_no=with_role(d, "CS", "supervisor")["staff_no"])
        rig.create_account("cust1", "custodian",
                           staff_no=with_role(d, "CS", "custodian")["staff_no"])
        rig.create_account("duty1", "duty_manager",
                           staff_no=with_role(d, "MGT", "duty_manager")["staff_no"])
        rig.create_account("aud1", "auditor")
        rig.create_account("lead1", "dept_leader", department="ENG",
                           staff_no=with_role(d, "ENG", "dept_leader")["staff_no"])
        _seed(rig)
        yield rig
    finally:
        rig.daemon.stop()


def _seed(rig: ConsoleDaemon) -> None:
    d = rig.daemon
    special = rig.api("GET", "/keys?special=true&limit=5", user="cust1")["items"]
    staff = next(p for p in d.people["ENG"] if p["roles"] == {"staff"})
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    approval = rig.api("POST", "/approvals", {
        "key_id": special[0]["id"], "requested_for_id": staff["id"], "reason": "配电房检修",
        "valid_until": until}, user="cust1")
    rig.accounts["lead1"].update(approval=approval["id"], key=special[0]["key_number"],
                                 borrower=staff)
    # a key out now, drawn at the cabinet by another engineer (the dashboard's first table)
    other = [p for p in d.people["ENG"] if p["roles"] == {"staff"}][1]
    d.tap(other["uid"])
    screen = d.wait_state("choosing")
    plain = next(k for k in screen["keys"] if k["status"] == "ok" and not k["cosign"]
                 and not k["special"])
    _draw(d, plain["key_number"], plain["slot"])
    alarm = rig.api("POST", "/alarms", {"kind": "door_forced", "rule": "K2",
                                         "message": "柜门在无人操作时被打开"}, user="duty1")
    rig.accounts["duty1"]["alarm"] = alarm["id"]
    evil = rig.api("POST", "/people", {"staff_no": "X666", "name": EVIL}, user="admin1")
    rig.accounts["admin1"]["evil"] = evil["id"]
    done = subprocess.run([sys.executable, "-m", "kiosk", "report", "daily", "--format", "csv",
                           "--out", str(d.data_dir.parent / "daily.csv")],
                          env=rig.env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def _draw(d: Any, key_number: str, slot: int) -> None:
    """At the cabinet: the signed-in person chooses the key, the slot opens, the key leaves."""
    d.post("/kiosk/api/draw", {"keys": [key_number], "reason_code": "repair"})
    assert d.wait_slot_open(slot)
    d.post("/sim/take", {"slot": slot})
    d.wait_state("idle")
    # The screen is idle once the loan is queued for the writer thread; what the console
    # shows next is what was committed (a fresh-clone CI run read the approval before it).
    assert d.get("/sim/writes")["settled"] is True


class Tab:
    """One browser context (its own cookies) at a size; page errors and dialogs recorded."""

    def __init__(self, browser: Any, viewport: dict[str, int], *, phone: bool = False) -> None:
        self.context = browser.new_context(viewport=viewport, has_touch=phone,
                                           is_mobile=phone, locale="zh-CN")
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("dialog", self._dialog)
        self.touches = 0

    def _dialog(self, dialog: Any) -> None:
        """Record a dialog (the page must raise none) and dismiss it so the page goes on."""
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def touch(self, selector: str) -> None:
        self.page.locator(selector).first.click()
        self.touches += 1

    def close(self) -> None:
        assert self.errors == [] and self.dialogs == [], (self.errors, self.dialogs)
        self.context.close()


@pytest.fixture
def tabs(browser: Any) -> Iterator[Any]:
    opened: list[Tab] = []

    def make(viewport: dict[str, int], phone: bool = False) -> Tab:
        tab = Tab(browser, viewport, phone=phone)
        opened.append(tab)
        return tab

    yield make
    for tab in opened:
        tab.close()


def _screens(rig: ConsoleDaemon, page: Any) -> list[tuple[str, str]]:
    """Every screen an administrator reaches, with a record to open where it has one."""
    base = rig.url + "/console"
    page.goto(base + "/")
    loan = page.locator("table a[href*='/console/loans/']").first.get_attribute("href")
    page.goto(base + "/keys?room=1201")
    key = page.locator("table a[href*='/console/keys/']").first.get_attribute("href")
    page.goto(base + "/owners")
    owner = page.locator("table a[href*='/console/owners/']").first.get_attribute("href")
    page.goto(base + "/reports")
    report = page.locator("table a[href$='-0000'], table a[href*='/console/reports/']").first
    report_href = report.get_attribute("href")
    return [
        ("dashboard", "/"), ("loan", str(loan).removeprefix("/console")),
        ("approvals", "/approvals"),
        ("approval", f"/approvals/{rig.accounts['lead1']['approval']}"),
        ("alarms", "/alarms"), ("alarm", f"/alarms/{rig.accounts['duty1']['alarm']}"),
        ("keys", "/keys?room=1201"), ("key", str(key).removeprefix("/console")),
        ("people", "/people"), ("person", f"/people/{rig.accounts['admin1']['evil']}"),
        ("rights", "/rights"), ("roster", "/roster"), ("owners", "/owners"),
        ("owner", str(owner).removeprefix("/console")), ("authorizations", "/authorizations"),
        ("handovers", "/handovers"), ("reports", "/reports"),
        ("report", str(report_href).removeprefix("/console")), ("audit", "/audit?rule=K2"),
        ("accounts", "/accounts"), ("report-new", "/reports/new"),
        ("report-preview", "/reports/new?kind=daily"),
        ("report-refused", "/reports/new?kind=key"),
        ("imports", "/imports?kind=units"),
    ]


UNITS_WITH_A_PROBLEM = "房号 room_number,楼层 floor\r\n3101,31\r\n3101,31\r\n".encode("utf-8-sig")


def _new_screens(rig: ConsoleDaemon, page: Any, size: str) -> None:
    """The screens that follow a post: an import preview with a row's problem beside it, and
    a card enrolment waiting at the cabinet, then done by a tap there (issue 11)."""
    page.goto(rig.url + "/console/imports?kind=units")
    page.set_input_files("#import-file", files=[{
        "name": "units.csv", "mimeType": "text/csv", "buffer": UNITS_WITH_A_PROBLEM}])
    with page.expect_navigation():
        page.click("form[action$='/imports/units/preview'] button[type=submit]")
    assert page.locator("#row-3 .row-problems li").count() == 1
    check_screen(page, "import-preview", size)
    page.goto(rig.url + f"/console/people/{rig.accounts['admin1']['evil']}")
    with page.expect_navigation():
        page.click("form[action$='/cards/enrol'] button[type=submit]")
    page.wait_for_selector("#enrol-state[data-state=waiting]")
    check_screen(page, "enrol-waiting", size)
    rig.daemon.tap({"desktop": "ED0C0FFE", "phone": "EF0C0FFE"}[size])  # a new badge
    page.wait_for_selector("#enrol-state[data-state=enrolled]")
    check_screen(page, "enrol-done", size)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_every_screen_fits_and_passes_axe(console: ConsoleDaemon, tabs: Any, size: str) -> None:
    tab = tabs(DESKTOP if size == "desktop" else PHONE, phone=size == "phone")
    page = tab.page
    page.goto(console.url + "/console/login")
    check_screen(page, "login", size)
    sign_in(page, console.url, "admin1")
    for name, path in _screens(console, page):
        page.goto(console.url + "/console" + path)
        assert page.locator("main h1").count() == 1, (name, page.content()[:2000])
        check_screen(page, name, size)
    _new_screens(console, page, size)
    page.goto(console.url + "/console/?lang=en")
    check_screen(page, "dashboard-en", size)
    page.goto(console.url + "/console/approvals/00000000-0000-4000-8000-000000000000")
    assert page.locator("h1").inner_text() == "Not found"
    check_screen(page, "not-found-en", size)


def test_leader_approves_from_the_link_on_a_phone_in_two_touches(
    console: ConsoleDaemon, tabs: Any
) -> None:
    """K7: the link in the message opens the request; after signing in, one touch decides."""
    tab = tabs(PHONE, phone=True)
    page = tab.page
    link = f"/console/approvals/{console.accounts['lead1']['approval']}"
    sign_in(page, console.url, "lead1", path=link)
    assert page.url.endswith(link)
    assert page.locator("text=配电房检修").count() == 1
    check_screen(page, "approval-leader", "phone")
    tab.touch("textarea[name=note]")
    page.fill("textarea[name=note]", "同意，注意安全")
    with page.expect_navigation():
        tab.touch("button[value=approve]")
    page.wait_for_selector(".flash")
    assert "已批准" in page.locator(".flash").inner_text()
    assert page.locator(".badge.state-approved").count() == 1
    assert tab.touches <= 2
    check_screen(page, "approval-approved", "phone")
    # K7: with the approval, the draw succeeds at the cabinet
    d = console.daemon
    borrower = console.accounts["lead1"]["borrower"]
    d.tap(borrower["uid"])
    screen = d.wait_state("choosing")
    key = next(k for k in screen["keys"] if k["key_number"] == console.accounts["lead1"]["key"])
    assert key["status"] == "ok", key
    _draw(d, key["key_number"], key["slot"])
    page.reload()
    assert page.locator(".badge.state-used").count() == 1


def test_duty_manager_acknowledges_follows_up_and_closes_an_alarm_on_a_phone(
    console: ConsoleDaemon, tabs: Any
) -> None:
    """F1: acknowledge (the first to do so owns it), a follow-up note, close with a
    resolution; an empty note is refused beside its field in both languages."""
    tab = tabs(PHONE, phone=True)
    page = tab.page
    sign_in(page, console.url, "duty1")
    page.goto(console.url + "/console/alarms?state=open&kind=door_forced")
    with page.expect_navigation():
        page.locator("table a[href*='/console/alarms/']").first.click()
    with page.expect_navigation():
        page.click("form[action$='/acknowledge'] button[type=submit]")
    error = page.locator("#acknowledge-note-error")
    assert error.inner_text() == "必填"
    assert page.locator("#f-acknowledge-note").get_attribute("aria-describedby") == \
        "acknowledge-note-error"
    no_horizontal_scroll(page)
    check_screen(page, "alarm-error-zh", "phone")
    page.goto(page.url.split("?")[0].removesuffix("/acknowledge") + "?lang=en")
    with page.expect_navigation():
        page.click("form[action$='/acknowledge'] button[type=submit]")
    assert page.locator("#acknowledge-note-error").inner_text() == "Required"
    check_screen(page, "alarm-error-en", "phone")
    page.fill("#f-acknowledge-note", "On my way to the cabinet")
    with page.expect_navigation():
        page.click("form[action$='/acknowledge'] button[type=submit]")
    page.fill("#f-note-note", "Door latch checked, no damage")
    with page.expect_navigation():
        page.click("form[action$='/note'] button[type=submit]")
    page.fill("#f-close-note", "Cleaner opened it with a spare key; key taken back")
    with page.expect_navigation():
        page.click("form[action$='/close'] button[type=submit]")
    assert page.locator(".badge.state-closed").count() == 1
    assert page.locator("ol.card li").count() == 3


def test_supervisor_sees_the_day_and_plans_the_roster(console: ConsoleDaemon, tabs: Any) -> None:
    tab = tabs(DESKTOP)
    page = tab.page
    sign_in(page, console.url, "sup1")
    assert page.locator("#cabinet-live .slot").count() > 10  # the live grid
    with page.expect_response(lambda r: r.url.endswith("/console/live")) as polled:
        pass  # htmx asks for the grid again every 5 s and swaps it in place
    assert polled.value.status == 200
    page.wait_for_selector("#cabinet-live .slot")
    assert page.locator("#cabinet-live").count() == 1
    page.goto(console.url + "/console/roster")
    manager = page.locator("#f-add-person_id option").nth(1).get_attribute("value")
    page.select_option("#f-add-person_id", manager)
    # five weeks on: past the demo tower's two-week roster, which a new shift must not
    # overlap (the roster refuses overlaps: "who was on duty" must be unambiguous)
    monday = dt.date.today() + dt.timedelta(days=35 - dt.date.today().weekday())
    page.fill("#f-add-starts_at", f"{monday}T18:00")
    page.fill("#f-add-ends_at", f"{monday + dt.timedelta(days=1)}T08:00")
    page.fill("#f-add-repeat", "2")
    with page.expect_navigation():
        page.click("form[action$='/roster'] button[type=submit]")
    assert page.locator(".flash").count() == 1
    assert page.locator(".shift").count() >= 2  # Monday night shows on Monday and Tuesday
    page.goto(console.url + "/console/reports")
    with page.expect_navigation():
        page.locator("table a[href*='/console/reports/']").first.click()
    with page.expect_navigation():
        page.click("form[action$='/acknowledge'] button[type=submit]")
    assert page.locator(".flash").count() == 1


def test_custodian_finds_a_key_by_room_and_moves_it(console: ConsoleDaemon, tabs: Any) -> None:
    tab = tabs(DESKTOP)
    page = tab.page
    sign_in(page, console.url, "cust1")
    page.goto(console.url + "/console/keys")
    page.fill("#f-room", "1201")
    with page.expect_navigation():
        page.click("form[role=search] button[type=submit]")
    with page.expect_navigation():
        page.locator("table a[href*='/console/keys/']").first.click()
    options = page.locator("#f-move-slot_id option")
    assert options.count() > 1
    page.select_option("#f-move-slot_id", options.nth(1).get_attribute("value"))
    with page.expect_navigation():
        page.click("form[action$='/move'] button[type=submit]")
    assert "钥匙已移至新钥匙位" in page.locator(".flash").inner_text()
    with page.expect_navigation():
        page.click("form[action$='/retire'] button[type=submit]")
    assert page.locator("#retire-reason-error").inner_text() == "必填"


def test_auditor_reads_and_verifies_but_changes_nothing(console: ConsoleDaemon, tabs: Any) -> None:
    tab = tabs(DESKTOP)
    page = tab.page
    sign_in(page, console.url, "aud1")
    page.goto(console.url + "/console/audit?type=auth")
    assert page.locator("table tbody tr").count() > 0
    with page.expect_navigation():
        page.click("form[action$='/audit/verify'] button")
    assert "日志完整" in page.locator("p.flash").inner_text()
    page.goto(console.url + "/console/keys?room=1201")
    with page.expect_navigation():
        page.locator("table a[href*='/console/keys/']").first.click()
    assert page.locator("form[action$='/edit']").count() == 0  # no edit for a reader
    page.goto(console.url + "/console/accounts")  # the auditor reads accounts, adds none
    assert page.locator("td:text-is('admin1')").count() == 1
    assert page.locator("form[action$='/console/accounts']").count() == 0


def test_admin_makes_an_account_and_a_token(console: ConsoleDaemon, tabs: Any) -> None:
    tab = tabs(DESKTOP)
    page = tab.page
    sign_in(page, console.url, "admin1")
    page.goto(console.url + "/console/accounts")
    page.fill("#f-add-username", "night-desk")
    page.fill("#f-add-password", "a long enough password")
    page.select_option("#f-add-role", "duty_manager")
    with page.expect_navigation():
        page.click("form[action$='/console/accounts'] button[type=submit]")
    assert page.locator("td:text-is('night-desk')").count() == 1
    page.select_option("#f-token-account_id", label="night-desk")
    page.fill("#f-token-name", "wallboard")
    page.check("input[name=scopes][value='loans:read']")
    with page.expect_navigation():
        page.click("form[action$='/api-tokens'] button[type=submit]")
    secret = page.locator(".flash code").inner_text()
    assert len(secret) > 20


def test_a_hostile_name_shows_as_text_in_the_browser(console: ConsoleDaemon, tabs: Any) -> None:
    tab = tabs(DESKTOP)
    page = tab.page
    sign_in(page, console.url, "admin1")
    page.goto(console.url + f"/console/people/{console.accounts['admin1']['evil']}")
    assert page.locator("h1").inner_text() == EVIL
    assert page.locator("main img").count() == 0
    page.goto(console.url + "/console/people?q=X666")
    assert page.locator(f"text={EVIL}").count() >= 1
    # tab.close() checks that no alert() ran


def test_signing_out_ends_the_session(console: ConsoleDaemon, tabs: Any) -> None:
    tab = tabs(PHONE, phone=True)
    page = tab.page
    sign_in(page, console.url, "aud1")
    with page.expect_navigation():
        page.click(".top form button")
    assert "/console/login" in page.url and "已退出登录" in page.locator(".flash").inner_text()
    page.goto(console.url + "/console/audit")
    assert "/console/login" in page.url


