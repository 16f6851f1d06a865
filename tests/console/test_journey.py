"""Issue 11, "Done means": the whole journey in a real Chromium, from an empty database.

One test, in the order the issue gives, on a real ``kiosk run --empty`` (simulated hardware,
no demo tower) with a DingTalk group robot as the leaders' channel (a loopback receiver that
checks the robot's signature, as DingTalk does):

1. the administrator, signed in to the console, makes the supervisor's account;
2. the supervisor downloads the XLSX templates, fills them in and imports the building:
   units with their owners (one special room, K7), keys with their home slots, people;
   the custodian stocks the cabinet: her badge, 上架, each key hung in its released home
   slot is recorded as stocked by her (K1/K2), with no alarm;
3. the supervisor enrols three badges by tapping them at the cabinet, grants access rights
   (K3) and puts a duty manager on the roster (K8); the administrator makes the department
   leader's account;
4. at the cabinet, a staff member is refused the special room's key (K7) and asks for it;
   the request reaches the leaders' robot, the delivery log says so, and the leader opens
   the message's link on a phone (360×740) and approves in two touches;
5. the draw then succeeds at the cabinet; later the cabinet's door is opened with no one
   signed in (a forced-door alarm, K2);
6. that alarm is acknowledged, given a follow-up note and closed (F1); the supervisor's
   dashboard shows the key out with its holder and no alarm left open;
7. a daily report is generated, issued, downloaded as PDF and acknowledged (K9).

The only terminal step is the installer's: ``kiosk admin create`` of the first administrator
(docs/deploy.md, step 6); everything after it happens in the browser or at the cabinet.
Screenshots of the steps go to ``CONSOLE_SHOTS`` (the README's walkthrough uses them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kiosk.notify.robots import dingtalk_sign
from tests.browser.browser_rig import Daemon
from tests.console.browser_console import (
    DESKTOP,
    PHONE,
    ConsoleDaemon,
    check_screen,
    sign_in,
    start_console_daemon,
)
from tests.console.test_browser import Tab, tabs  # noqa: F401  (fixture)
from tests.ports import free_port
from tests.reports.tower import pdf_text

pytestmark = pytest.mark.browser

DING_TOKEN = "journey-robot-token"
DING_SECRET = "SECjourney-robot-secret"

UNITS = [  # room, floor, kind, name, special, vacant, owner, owner phone
    ("1201", 12, "办公", "华信科技", "否", "否", "华信科技有限公司", "13812345678"),
    ("1202", 12, "办公", "", "否", "是", "", ""),
    ("配电房-B1", -1, "设备房", "B1 配电房", "是", "否", "", ""),
]
KEYS = [  # key number, label, group, group name, category, room, slot
    ("U1201", "1201 室", "UNIT", "单元钥匙", "单元", "1201", 1),
    ("U1202", "1202 室（空置）", "UNIT", "", "单元", "1202", 2),
    ("E-PWR-B1", "B1 配电房", "EQUIP", "设备房钥匙（特殊房间）", "设备房", "配电房-B1", 3),
]
PEOPLE = [  # staff no, name, department, department name, phone, roles, card uid
    ("CS01", "田志涵", "CS", "客服部", "13900000001", "员工,主管", "0191AD86"),
    ("CS02", "张平飞", "CS", "客服部", "13900000002", "员工,钥匙管理员", "1956BC2A"),
    ("ENG01", "陈国晨", "ENG", "工程部", "13900000003", "员工,部门领导", ""),
    ("ENG02", "高军", "ENG", "", "13900000004", "员工", ""),
    ("MGT01", "周磊", "MGT", "管理处", "13900000005", "员工,值班经理", ""),
]
NEW_BADGES = {"ENG02": "0A11CE02", "ENG01": "0A11CE01", "MGT01": "0A11CE05"}
"""Three badges nobody has yet, enrolled by tapping them at the cabinet."""
STAFF, LEADER, MANAGER = "ENG02", "ENG01", "MGT01"
CUSTODIAN_BADGE = "1956BC2A"  # 张平飞, 钥匙管理员: imported with her card
SPECIAL = "E-PWR-B1"


# ------------------------------------------------------------------ the leaders' robot
@dataclass
class Robot:
    """A DingTalk group robot on loopback: checks the token and the 加签 signature, keeps
    each message, answers ``errcode 0``."""

    url: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def wait(self, count: int, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < end:
            time.sleep(0.1)
        assert len(self.messages) >= count, (self.messages, self.refused)


@contextlib.contextmanager
def dingtalk_robot() -> Iterator[Robot]:
    robot = Robot()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            expected = urllib.parse.unquote_plus(dingtalk_sign(DING_SECRET, query["timestamp"]))
            if query.get("access_token") != DING_TOKEN or query.get("sign") != expected:
                robot.refused.append(self.path)
                answer = {"errcode": 310000, "errmsg": "sign not match"}
            else:
                robot.messages.append(body)
                answer = {"errcode": 0, "errmsg": "ok"}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    robot.url = f"http://127.0.0.1:{server.server_address[1]}/robot/send"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        yield robot
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def robot() -> Iterator[Robot]:
    with dingtalk_robot() as r:
        yield r


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory, robot: Robot) -> Iterator[ConsoleDaemon]:
    """``kiosk run --empty`` with the K7 route to the leaders' robot, and the installer's
    first administrator."""
    tmp = tmp_path_factory.mktemp("journey")
    (tmp / "kiosk.toml").write_text(
        "[notifications]\npoll_s = 0.2\nbackoff_initial_s = 0.5\n"
        "[notifications.dingtalk.leaders]\n"
        f'access_token = "{DING_TOKEN}"\nsecret = "{DING_SECRET}"\nurl = "{robot.url}"\n'
        '[[notifications.routes]]\nevents = ["approval.requested"]\ndingtalk = ["leaders"]\n',
        encoding="utf-8")
    port = free_port()
    rig = start_console_daemon(tmp, "--empty", port=port,
                               KIOSK_NOTIFICATIONS__CONSOLE_BASE_URL=f"http://127.0.0.1:{port}")
    try:
        rig.create_account("admin", "admin")
        yield rig
    finally:
        rig.daemon.stop()


# ------------------------------------------------------------------------- helpers
def _fill_template(page: Any, kind: str, rows: list[tuple[Any, ...]], tmp: Path) -> Path:
    """Download the kind's XLSX template from the console and fill in its first sheet, as
    the supervisor would in WPS or Excel (the header row is the template's own)."""
    from openpyxl import load_workbook

    with page.expect_download() as download:
        page.click(f"a[href$='/imports/{kind}/template.xlsx']")
    path = tmp / f"{kind}.xlsx"
    download.value.save_as(path)
    book = load_workbook(path)
    sheet = book.worksheets[0]
    for r, row in enumerate(rows, start=2):
        for c, value in enumerate(row, start=1):
            sheet.cell(row=r, column=c, value=value)
    buf = io.BytesIO()
    book.save(buf)
    path.write_bytes(buf.getvalue())
    return path


def _import(page: Any, base: str, kind: str, rows: list[tuple[Any, ...]], tmp: Path,
            shot: str | None = None) -> None:
    page.goto(f"{base}/console/imports?kind={kind}")
    path = _fill_template(page, kind, rows, tmp)
    page.set_input_files("#import-file", str(path))
    with page.expect_navigation():
        page.click(f"form[action$='/imports/{kind}/preview'] button[type=submit]")
    assert page.locator("#import-preview .row-problems").count() == 0, \
        page.inner_text("#import-preview")
    assert page.locator("#import-preview tbody tr").count() == len(rows)
    if shot:
        check_screen(page, shot, "desktop")
    with page.expect_navigation():
        page.click(f"form[action$='/imports/{kind}'] button[type=submit]")
    assert page.locator("#import-done").count() == 1, page.inner_text("main")


def _person_href(page: Any, base: str, staff_no: str) -> str:
    page.goto(f"{base}/console/people?q={staff_no}")
    href = page.locator("table a[href*='/console/people/']").first.get_attribute("href")
    assert href, page.inner_text("main")
    return str(href)


def _option(page: Any, select: str, text: str) -> str:
    """The value of the option of ``select`` whose label contains ``text``."""
    options = page.locator(f"{select} option")
    for i in range(options.count()):
        if text in options.nth(i).inner_text():
            return str(options.nth(i).get_attribute("value"))
    raise AssertionError(f"{select}: no option with {text!r}")


def _wait_for_alarm(rig: ConsoleDaemon, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The cabinet's next sensor scans notice what the hardware did; wait for them."""
    end = time.monotonic() + timeout
    while True:
        items = rig.api("GET", f"/alarms?kind={kind}", user="admin")["items"]
        if items or time.monotonic() > end:
            assert items, f"no {kind} alarm"
            return dict(items[0])
        time.sleep(0.1)


def _stocked_when_logged(d: Daemon, count: int, timeout: float = 10.0) -> list[Any]:
    """The ``key.stocked`` events, once the cabinet's writer thread has committed all
    ``count`` of them: it queues them as each key is hung, so the screen can be idle a
    moment before the last is in the log (issue 15: writes off the loop)."""
    end = time.monotonic() + timeout
    while True:
        with contextlib.closing(d.db()) as db:
            stocked = db.execute("SELECT key_number, actors FROM events "
                                 "WHERE type = 'key.stocked' ORDER BY seq").fetchall()
        if len(stocked) >= count or time.monotonic() > end:
            return list(stocked)
        time.sleep(0.1)


def _at_cabinet(d: Daemon, uid: str) -> dict[str, Any]:
    d.tap(uid)
    return d.wait_state("choosing")


# ------------------------------------------------------------------------- the journey
def test_from_an_empty_database_to_a_signed_daily_report(
    empty: ConsoleDaemon, robot: Robot, tabs: Any, tmp_path: Path  # noqa: F811
) -> None:
    d, base = empty.daemon, empty.url
    with contextlib.closing(d.db()) as db:  # an empty register: no people, no keys
        assert db.execute("SELECT count(*) FROM people").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM keys").fetchone() == (0,)

    # 1. the administrator makes the supervisor's account
    admin = tabs(DESKTOP).page
    sign_in(admin, base, "admin")
    admin.goto(base + "/console/accounts")
    admin.fill("#f-add-username", "tian.zh")
    admin.fill("#f-add-password", "supervisor password 2026")
    admin.select_option("#f-add-role", "supervisor")
    with admin.expect_navigation():
        admin.click("form[action$='/console/accounts'] button[type=submit]")
    assert admin.locator("td:text-is('tian.zh')").count() == 1
    empty.accounts["tian.zh"] = {"role": "supervisor"}

    # 2. the supervisor imports the building: units with owners, keys with slots, people
    sup = tabs(DESKTOP).page
    sign_in_as(sup, base, "tian.zh", "supervisor password 2026")
    _import(sup, base, "units", [u for u in UNITS], tmp_path)
    _import(sup, base, "keys", [k for k in KEYS], tmp_path, shot="journey-1-import-keys")
    _import(sup, base, "people", [p for p in PEOPLE], tmp_path)
    # the custodian stocks the cabinet (K1/K2): her badge, 上架; the imported keys' home
    # slots open, each key hung in its own is recorded as stocked by her; no alarm
    status, latched = d.request("POST", "/sim/insert", {"fob": KEYS[0][0], "slot": KEYS[0][-1]})
    assert status == 409 and "locked" in str(latched), latched  # a latched slot takes no key
    screen = _at_cabinet(d, CUSTODIAN_BADGE)
    assert screen["stock"] == {"awaiting": len(KEYS)}, screen["stock"]  # the 上架 button
    stocking = d.post("/kiosk/api/stock")
    assert sorted(stocking["stock_slots"]) == sorted(k[-1] for k in KEYS)
    for number, *_rest, slot in KEYS:
        assert d.wait_slot_open(slot)
        d.post("/sim/insert", {"fob": number, "slot": slot})
    d.wait_state("idle")
    stocked = _stocked_when_logged(d, len(KEYS))
    with contextlib.closing(d.db()) as db:
        custodian_id = db.execute("SELECT person_id FROM cards WHERE uid = ?",
                                  (CUSTODIAN_BADGE,)).fetchone()[0]
        assert db.execute("SELECT count(*) FROM alarms").fetchone() == (0,)
    assert [n for n, _ in stocked] == [k[0] for k in KEYS]
    assert all(custodian_id.replace("-", "") in actors.replace("-", "") for _, actors in stocked)

    # 3a. three badges enrolled by tapping them at the cabinet
    for staff_no, uid in NEW_BADGES.items():
        sup.goto(base + _person_href(sup, base, staff_no))
        with sup.expect_navigation():
            sup.click("form[action$='/cards/enrol'] button[type=submit]")
        sup.wait_for_selector("#enrol-state[data-state=waiting]")
        if staff_no == STAFF:
            check_screen(sup, "journey-2-enrol-waiting", "desktop")
        d.tap(uid)
        sup.wait_for_selector("#enrol-state[data-state=enrolled]")
    with contextlib.closing(d.db()) as db:
        enrolled = {uid for (uid,) in db.execute("SELECT uid FROM cards")}
    assert set(NEW_BADGES.values()) <= enrolled

    # 3b. rights (K3): every staff member may draw unit keys; 高军 the equipment rooms too
    sup.goto(base + "/console/rights")
    sup.select_option("#f-grant-role", "staff")
    sup.select_option("#f-grant-key_group_id", _option(sup, "#f-grant-key_group_id", "单元钥匙"))
    for day in range(1, 8):
        sup.check(f"input[name=weekdays][value='{day}']")
    with sup.expect_navigation():
        sup.click("form[method=post][action$='/console/rights'] button[type=submit]")
    sup.select_option("#f-grant-person_id", _option(sup, "#f-grant-person_id", STAFF))
    sup.select_option("#f-grant-key_group_id", _option(sup, "#f-grant-key_group_id", "设备房"))
    for day in range(1, 8):
        sup.check(f"input[name=weekdays][value='{day}']")
    with sup.expect_navigation():
        sup.click("form[method=post][action$='/console/rights'] button[type=submit]")
    assert sup.locator("table.rows tbody tr").count() == 2, sup.inner_text("main")
    check_screen(sup, "journey-3-rights", "desktop")

    # 3c. the roster (K8): 周磊 on duty from now for twelve hours
    sup.goto(base + "/console/roster")
    sup.select_option("#f-add-person_id", _option(sup, "#f-add-person_id", "周磊"))
    hour = dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(minute=0, second=0, microsecond=0)
    start = hour.strftime("%Y-%m-%dT%H:%M")  # the cabinet's time zone, as the form takes it
    end = (hour + dt.timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M")
    sup.fill("#f-add-starts_at", start)
    sup.fill("#f-add-ends_at", end)
    with sup.expect_navigation():
        sup.click("form[method=post][action$='/roster'] button[type=submit]")
    assert sup.locator(".flash").count() == 1, sup.inner_text("main")
    assert "周磊" in sup.locator("section:has(#h-now)").inner_text()  # on duty now
    check_screen(sup, "journey-4-roster", "desktop")

    # 3d. the administrator makes the engineering leader's account, linked to his person
    admin.goto(base + "/console/accounts")
    admin.fill("#f-add-username", "chen.gc")
    admin.fill("#f-add-password", "leader password 2026")
    admin.select_option("#f-add-role", "dept_leader")
    admin.select_option("#f-add-person_id", _option(admin, "#f-add-person_id", LEADER))
    admin.select_option("#f-add-department_id", _option(admin, "#f-add-department_id", "工程部"))
    with admin.expect_navigation():
        admin.click("form[action$='/console/accounts'] button[type=submit]")
    assert admin.locator("td:text-is('chen.gc')").count() == 1, admin.inner_text("main")
    # ... and links the supervisor's account to her person, now on record: follow-up notes
    # are signed by a person (F1)
    row = admin.locator("tr", has=admin.locator("td:text-is('tian.zh')"))
    row.locator("summary").click()
    edit = row.locator("form[action$='/edit']")
    edit.locator("select[name=person_id]").select_option(
        _option(admin, "form[action$='/edit'] select[name=person_id]", "田志涵"))
    with admin.expect_navigation():
        edit.locator("button[type=submit]").click()
    assert "田志涵" in admin.locator("tr", has=admin.locator("td:text-is('tian.zh')")).inner_text()

    # 4a. at the cabinet: 高军 is refused the special room's key (K7) and asks for it
    screen = _at_cabinet(d, NEW_BADGES[STAFF])
    special = next(k for k in screen["keys"] if k["key_number"] == SPECIAL)
    assert special["status"] == "approval_required", special
    status, refused = d.request("POST", "/kiosk/api/draw",
                                {"keys": [SPECIAL], "reason_code": "repair"})
    assert status != 200, refused
    assert d.screen()["state"] != "releasing"
    d.post("/kiosk/api/request-approval", {"key_number": SPECIAL})
    d.post("/kiosk/api/cancel")
    d.wait_state("idle")

    # 4b. the request reaches the leaders' robot, and the delivery log says so
    robot.wait(1)
    message = robot.messages[0]["markdown"]["text"]
    link = next(part for part in message.replace(")", " ").replace("(", " ").split()
                if "/console/approvals/" in part)
    assert link.startswith(base + "/console/approvals/"), message
    deliveries = empty.api("GET", "/notifications?event_type=approval.requested",
                           user="admin")["items"]
    assert [(x["channel"], x["target"], x["state"]) for x in deliveries] == \
        [("dingtalk", "leaders", "delivered")]

    # 4c. the leader opens the link on a phone and approves in two touches
    phone = tabs(PHONE, phone=True)
    lead = phone.page
    lead.goto(link)
    lead.fill("#f-username", "chen.gc")
    lead.fill("#f-password", "leader password 2026")
    with lead.expect_navigation():
        lead.click("button[type=submit]")
    assert lead.url == link, lead.url
    assert lead.locator(f"text={SPECIAL}").count() >= 1
    check_screen(lead, "journey-5-approval", "phone")
    phone.touch("textarea[name=note]")
    lead.fill("textarea[name=note]", "同意，注意用电安全")
    with lead.expect_navigation():
        phone.touch("button[value=approve]")
    assert "已批准" in lead.locator(".flash").inner_text()
    assert phone.touches == 2
    check_screen(lead, "journey-6-approved", "phone")

    # 5. the draw now succeeds at the cabinet
    screen = _at_cabinet(d, NEW_BADGES[STAFF])
    special = next(k for k in screen["keys"] if k["key_number"] == SPECIAL)
    assert special["status"] == "ok", special
    d.post("/kiosk/api/draw", {"keys": [SPECIAL], "reason_code": "repair"})
    assert d.wait_slot_open(special["slot"])
    d.post("/sim/take", {"slot": special["slot"]})
    d.wait_state("idle")
    d.post("/sim/door", {"open": True})  # the cabinet's door opened with no one signed in
    _wait_for_alarm(empty, "door_forced")  # K2

    # 6. F1: the forced-door alarm acknowledged, followed up once the door is shut, and closed
    sup.goto(base + "/console/alarms?state=open&kind=door_forced")
    with sup.expect_navigation():
        sup.locator("table a[href*='/console/alarms/']").first.click()
    sup.fill("#f-acknowledge-note", "已派保安到柜前查看")
    with sup.expect_navigation():
        sup.click("form[action$='/acknowledge'] button[type=submit]")
    d.post("/sim/door", {"open": False})
    sup.fill("#f-note-note", "柜门已关好，各格口钥匙与记录一致")
    with sup.expect_navigation():
        sup.click("form[action$='/note'] button[type=submit]")
    sup.fill("#f-close-note", "维修人员检查柜门锁，未少钥匙，已关闭")
    with sup.expect_navigation():
        sup.click("form[action$='/close'] button[type=submit]")
    assert sup.locator(".badge.state-closed").count() == 1
    assert sup.locator("ol.card li").count() == 3  # acknowledged, followed up, closed
    check_screen(sup, "journey-7-alarm-closed", "desktop")
    sup.goto(base + "/console/alarms?state=open")
    assert sup.locator("table a[href*='/console/alarms/']").count() == 0

    # the supervisor's dashboard: the key out with its holder (K10), no alarm left open
    sup.goto(base + "/console/")
    out = sup.locator("main table").first.inner_text()
    assert SPECIAL in out and "高军" in out and "维修" in out, out
    assert sup.locator(f"#cabinet-live li.slot.out:has-text('{SPECIAL}')").count() == 1
    assert sup.locator("#cabinet-live li.slot.fault").count() == 0
    check_screen(sup, "journey-8-dashboard", "desktop")

    # 7. K9: the daily report generated, issued, downloaded as PDF and acknowledged
    sup.goto(base + "/console/reports/new?kind=daily")
    assert SPECIAL in sup.inner_text("main")
    with sup.expect_navigation():
        sup.click("#report-form button[formmethod=post]")
    assert "/console/reports/" in sup.url and "/new" not in sup.url, sup.url
    with sup.expect_download() as download:
        sup.click("a[href$='download?format=pdf']")
    pdf = tmp_path / "daily.pdf"
    download.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    text = pdf_text(pdf)
    assert SPECIAL in text and "高军" in text and "主管审核" in text, text[:2000]
    sup.fill("#f-ack-note", "已阅，E-PWR-B1 今日归还")
    with sup.expect_navigation():
        sup.click("form[action$='/acknowledge'] button[type=submit]")
    assert sup.locator(".flash").count() == 1
    check_screen(sup, "journey-9-report-acknowledged", "desktop")


def sign_in_as(page: Any, base: str, username: str, password: str) -> None:
    page.goto(base + "/console/")
    page.fill("#f-username", username)
    page.fill("#f-password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "/console/login" not in page.url, page.inner_text("main")

