"""WeCom and DingTalk group robots, each against a real HTTP receiver on 127.0.0.1 that
behaves as the robot APIs document: it checks the key or token, DingTalk's signed timestamp
(computed here independently, from DingTalk's published recipe), and answers with
``errcode``. The tests check the exact bytes that arrive, the console links in them, and
the borrower's once-per-loan due-soon reminder (issue 11 item 5).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from kiosk.audit import NewEvent
from kiosk.notify.dispatcher import Dispatcher
from kiosk.notify.robots import dingtalk_sign
from kiosk.scheduler import Scheduler
from kiosk.services import tx
from kiosk.store.models import Event, Loan, Person
from kiosk.store.models_notify import DueReminder, NotificationDelivery
from tests.notify.conftest import Clock, OpenRuntime, SmtpServer, add_key

WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DING_TOKEN = "a1b2c3d4e5f6a7b8c9d0"
DING_SECRET = "SEC1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcd"
CONSOLE = "https://cabinet.tower.example:8443"


@dataclass
class Hit:
    path: str
    query: dict[str, str]
    body: bytes


@dataclass
class Robot:
    """A loopback stand-in for the WeCom and DingTalk robot APIs."""

    base: str = ""
    hits: list[Hit] = field(default_factory=list)
    next_errcode: list[int] = field(default_factory=list)

    def answer(self, path: str, query: dict[str, str], now_ms: int) -> dict[str, Any]:
        if self.next_errcode:
            code = self.next_errcode.pop(0)
            return {"errcode": code, "errmsg": "scripted"}
        if path == "/cgi-bin/webhook/send":
            if query.get("key") != WECOM_KEY:
                return {"errcode": 93000, "errmsg": "invalid webhook url"}
            return {"errcode": 0, "errmsg": "ok"}
        if path == "/robot/send":
            if query.get("access_token") != DING_TOKEN:
                return {"errcode": 300001, "errmsg": "token is not exist"}
            stamp = query.get("timestamp", "")
            if not stamp.isdigit() or abs(now_ms - int(stamp)) > 3_600_000:
                return {"errcode": 310000, "errmsg": "sign not match, more: [timestamp]"}
            # DingTalk's recipe, written out here rather than imported from the code under test
            mac = hmac.new(DING_SECRET.encode(), f"{stamp}\n{DING_SECRET}".encode(),
                           hashlib.sha256).digest()
            if query.get("sign") != base64.b64encode(mac).decode():
                return {"errcode": 310000, "errmsg": "sign not match"}
            return {"errcode": 0, "errmsg": "ok"}
        return {"errcode": 404, "errmsg": "no such robot API"}


@pytest.fixture
def robot(clock: Clock) -> Iterator[Robot]:
    state = Robot()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))  # decodes the sign's %-escapes
            state.hits.append(Hit(url.path, query, body))
            answer = json.dumps(state.answer(url.path, query,
                                             int(clock().timestamp() * 1000))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _section(robot: Robot, events: list[str], *, wecom_type: str = "markdown",
             ding_type: str = "markdown", ding_secret: str = DING_SECRET) -> dict[str, Any]:
    return {
        "max_attempts": 3, "backoff_initial_s": 10, "backoff_max_s": 60,
        "console_base_url": CONSOLE + "/",
        "wecom": {"desk": {"key": WECOM_KEY, "url": f"{robot.base}/cgi-bin/webhook/send",
                           "msgtype": wecom_type}},
        "dingtalk": {"leaders": {"access_token": DING_TOKEN, "secret": ding_secret,
                                 "url": f"{robot.base}/robot/send", "msgtype": ding_type}},
        "routes": [{"events": events, "wecom": ["desk"], "dingtalk": ["leaders"]}],
    }


def _canonical(body: bytes) -> Any:
    """The parsed body, after checking the bytes are its compact, sorted UTF-8 JSON."""
    parsed = json.loads(body)
    assert body == json.dumps(parsed, ensure_ascii=False, separators=(",", ":"),
                              sort_keys=True).encode("utf-8")
    return parsed


def _deliveries(runtime: Any) -> list[NotificationDelivery]:
    with tx.read(runtime.audit) as session:
        return list(session.scalars(select(NotificationDelivery)
                                    .order_by(NotificationDelivery.channel)))


def test_dingtalk_sign_matches_the_published_recipe() -> None:
    stamp = 1_764_921_600_000
    mac = hmac.new(b"SECtest-secret", f"{stamp}\nSECtest-secret".encode(), hashlib.sha256)
    assert dingtalk_sign("SECtest-secret", stamp) == urllib.parse.quote_plus(
        base64.b64encode(mac.digest()))


async def test_a_k7_request_reaches_both_robots_with_the_approval_link(
    open_runtime: OpenRuntime, robot: Robot, clock: Clock
) -> None:
    runtime = open_runtime(**_section(robot, ["approval.requested"]))
    dispatcher = Dispatcher(runtime, clock=clock)
    await dispatcher.tick()
    approval = uuid.uuid4()
    runtime.audit.append(NewEvent(
        type="approval.requested", actors=["account:zhang"], key_number="E-PWR", rules=["K7"],
        payload={"approval": str(approval), "for": str(uuid.uuid4()), "reason": "高压柜检修"}))
    await dispatcher.tick()

    wecom = next(h for h in robot.hits if h.path == "/cgi-bin/webhook/send")
    assert wecom.query == {"key": WECOM_KEY}
    doc = _canonical(wecom.body)
    assert set(doc) == {"msgtype", "markdown"} and doc["msgtype"] == "markdown"
    content = doc["markdown"]["content"]
    assert content.startswith("**[cab-test] 事件 Event: approval.requested · 钥匙 key E-PWR**\n")
    assert content.endswith(
        f"\n[审批此申请 Approve or refuse this request]({CONSOLE}/console/approvals/{approval})")
    assert "> 内容 Details:" in content and "高压柜检修" in content

    ding = next(h for h in robot.hits if h.path == "/robot/send")
    assert set(ding.query) == {"access_token", "timestamp", "sign"}
    assert ding.query["timestamp"] == str(int(clock().timestamp() * 1000))
    doc = _canonical(ding.body)
    assert set(doc) == {"msgtype", "markdown", "at"}
    assert doc["at"] == {"atMobiles": [], "isAtAll": False}
    assert doc["markdown"]["title"].startswith("[cab-test] 事件 Event: approval.requested")
    assert doc["markdown"]["text"] == content  # the same text in both groups
    assert [(d.channel, d.target, d.state) for d in _deliveries(runtime)] == [
        ("dingtalk", "leaders", "delivered"), ("wecom", "desk", "delivered")]


async def test_dingtalk_with_the_wrong_secret_is_refused_and_fails_permanently(
    open_runtime: OpenRuntime, robot: Robot, clock: Clock
) -> None:
    runtime = open_runtime(**_section(robot, ["alarm.*"], ding_secret="SECnot-the-robots-secret"))
    dispatcher = Dispatcher(runtime, clock=clock)
    await dispatcher.tick()
    runtime.audit.append(NewEvent(type="alarm.door_forced", rules=["F1"],
                                  payload={"alarm": str(uuid.uuid4()), "message": "柜门被撬开"}))
    await dispatcher.tick()
    states = {d.channel: (d.state, d.last_error) for d in _deliveries(runtime)}
    assert states["wecom"] == ("delivered", None)
    assert states["dingtalk"][0] == "failed" and "310000" in str(states["dingtalk"][1])
    assert DING_SECRET not in str(states) and "SECnot" not in str(states)


async def test_robot_rate_limit_is_retried_and_a_bad_key_is_not(
    open_runtime: OpenRuntime, robot: Robot, clock: Clock
) -> None:
    section = _section(robot, ["alarm.*"])
    section["routes"] = [{"events": ["alarm.*"], "wecom": ["desk"]}]
    runtime = open_runtime(**section)
    dispatcher = Dispatcher(runtime, clock=clock, jitter=lambda: 1.0)
    await dispatcher.tick()
    robot.next_errcode = [45009]  # "API freq out of limit"
    runtime.audit.append(NewEvent(type="alarm.slot_left_open", slot=3,
                                  payload={"alarm": str(uuid.uuid4()), "message": "格口 3 未关"}))
    await dispatcher.tick()
    [row] = _deliveries(runtime)
    assert row.state == "pending" and "45009" in str(row.last_error)
    clock.advance(10)
    await dispatcher.tick()
    [row] = _deliveries(runtime)
    assert row.state == "delivered" and len(robot.hits) == 2

    robot.next_errcode = [93000]  # "invalid webhook url": a wrong key, never retried
    runtime.audit.append(NewEvent(type="alarm.slot_left_open", slot=4,
                                  payload={"alarm": str(uuid.uuid4()), "message": "格口 4 未关"}))
    await dispatcher.tick()
    assert [d.state for d in _deliveries(runtime)].count("failed") == 1


async def test_a_name_cannot_inject_a_link_into_robot_markdown(
    open_runtime: OpenRuntime, robot: Robot, clock: Clock
) -> None:
    runtime = open_runtime(**_section(robot, ["alarm.*"]))
    dispatcher = Dispatcher(runtime, clock=clock)
    await dispatcher.tick()
    runtime.audit.append(NewEvent(type="alarm.manual", payload={
        "alarm": str(uuid.uuid4()), "message": "[点此处理](http://evil.example) <img src=x>"}))
    await dispatcher.tick()
    wecom = next(h for h in robot.hits if h.path == "/cgi-bin/webhook/send")
    content = _canonical(wecom.body)["markdown"]["content"]
    assert "](http://evil.example)" not in content and "<img" not in content
    assert "[点此处理］(http://evil.example) ＜img src=x＞" in content


async def test_borrower_is_reminded_once_30_minutes_before_due_with_a_mention(
    open_runtime: OpenRuntime, robot: Robot, clock: Clock
) -> None:
    runtime = open_runtime(**_section(robot, ["loan.due_soon"], wecom_type="text"))
    tower = add_key(runtime)
    overdue_key = add_key(runtime, key_number="U1202", slot=8)
    with tx.write(runtime.audit) as session:
        person = Person(staff_no="E7", name="王伟", phone="139 0000 1234")
        late = Person(staff_no="E8", name="李雷")
        session.add_all([person, late])
        session.flush()
        now = clock()
        session.add(Loan(key_id=tower.key_id, cabinet_id=tower.cabinet_id, borrower_id=person.id,
                         reason_code="repair", drawn_at=now - dt.timedelta(hours=1),
                         due_at=now + dt.timedelta(minutes=45)))
        session.add(Loan(key_id=overdue_key.key_id, cabinet_id=tower.cabinet_id,
                         borrower_id=late.id, reason_code="repair",
                         drawn_at=now - dt.timedelta(hours=3), due_at=now - dt.timedelta(hours=1)))
    dispatcher = Dispatcher(runtime, clock=clock)
    await dispatcher.tick()
    scheduler = Scheduler(runtime, presence=None, clock=clock)

    scheduler.remind_due_soon(clock())  # 45 minutes left: not yet
    clock.advance(16 * 60)  # 29 minutes left
    scheduler.remind_due_soon(clock())
    clock.advance(60)
    scheduler.remind_due_soon(clock())  # once per loan, however often the scheduler ticks
    await dispatcher.tick()

    with tx.read(runtime.audit) as session:
        events = list(session.scalars(select(Event).where(Event.type == "loan.due_soon")))
        reminders = list(session.scalars(select(DueReminder)))
    assert len(events) == 1 and len(reminders) == 1  # none for the loan already overdue
    payload = json.loads(events[0].payload)
    assert (events[0].key_number, payload["borrower_name"], payload["minutes_left"]) == (
        "U1201", "王伟", 29)
    # the phone number stays out of the audit log (in any spelling; "139" alone can occur
    # in a random UUID of the payload)
    assert "13900001234" not in events[0].payload and "139 0000 1234" not in events[0].payload
    assert "phone" not in events[0].payload and "mobile" not in events[0].payload
    wecom = next(h for h in robot.hits if h.path == "/cgi-bin/webhook/send")
    doc = _canonical(wecom.body)
    assert set(doc) == {"msgtype", "text"}
    assert doc["text"]["mentioned_mobile_list"] == ["13900001234"]
    assert "王伟：您借用的钥匙 U1201（U1201 室）将于" in doc["text"]["content"]
    assert f"{CONSOLE}/console/loans/{payload['loan']}" in doc["text"]["content"]
    ding = next(h for h in robot.hits if h.path == "/robot/send")
    ding_doc = _canonical(ding.body)
    assert ding_doc["at"] == {"atMobiles": ["13900001234"], "isAtAll": False}
    assert ding_doc["markdown"]["text"].endswith("\n\n@13900001234")


async def test_email_carries_the_console_link_to_the_alarm(
    open_runtime: OpenRuntime, smtp: SmtpServer, clock: Clock
) -> None:
    runtime = open_runtime(
        console_base_url=CONSOLE,
        smtp={"host": smtp.host, "port": smtp.port, "security": "none",
              "from_address": "kiosk@tower.example"},
        routes=[{"events": ["alarm.*"], "email": ["supervisor@tower.example"]}],
    )
    dispatcher = Dispatcher(runtime, clock=clock)
    await dispatcher.tick()
    alarm = uuid.uuid4()
    runtime.audit.append(NewEvent(type="alarm.door_forced", rules=["F1"],
                                  payload={"alarm": str(alarm), "message": "柜门被撬开"}))
    await dispatcher.tick()
    [mail] = smtp.messages
    assert mail.get_content().rstrip().endswith(
        f"处理此报警 Handle this alarm: {CONSOLE}/console/alarms/{alarm}")
