"""The pure parts: routing by pattern, the bilingual text, backoff, HTTP classification."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from kiosk.notify.message import EventView, render
from kiosk.notify.outbox import Backoff
from kiosk.notify.routing import Target, targets_for
from kiosk.notify.settings import RouteSettings
from kiosk.notify.webhook import classify, sign, verify_signature

SHANGHAI = ZoneInfo("Asia/Shanghai")


def event(type_: str, **fields: object) -> EventView:
    base: dict[str, object] = dict(
        cabinet_id="cab-01", seq=42, at=dt.datetime(2026, 11, 27, 10, 30, tzinfo=dt.UTC),
        type=type_, actors=["cabinet"], slot=None, key_number=None, decision=None, rules=[],
        payload={}, hash="ab" * 32,
    )
    base.update(fields)
    return EventView(**base)  # type: ignore[arg-type]


def test_routing_matches_patterns_dedupes_and_never_routes_notifications() -> None:
    routes = [
        RouteSettings(events=["alarm.*"], email=["sup@x.example"], webhooks=["ops"]),
        RouteSettings(events=["alarm.door_*", "report.generated"], webhooks=["ops", "chat"]),
        RouteSettings(events=["*"], email=["audit@x.example"]),
    ]
    assert targets_for("alarm.door_forced", routes) == [
        Target("email", "sup@x.example"), Target("webhook", "ops"), Target("webhook", "chat"),
        Target("email", "audit@x.example")]
    assert targets_for("report.generated", routes) == [
        Target("webhook", "ops"), Target("webhook", "chat"), Target("email", "audit@x.example")]
    assert targets_for("key.drawn", routes[:2]) == []
    assert targets_for("Alarm.raised", routes[:2]) == []  # case-sensitive, like event types
    assert targets_for("notification.failed", routes) == []
    assert targets_for("notification.retried", routes) == []


def test_an_alarm_from_the_cabinet_names_kind_key_slot_rule_and_local_time() -> None:
    message = render(event("alarm.wrong_slot", slot=12, key_number="U601", rules=["K4"],
                           payload={"message": "key U601 put in slot 12, its home is 3"}),
                     zone=SHANGHAI, cabinet_name="客服中心钥匙柜")
    assert message.subject == ("[cab-01] 报警 Alarm: 钥匙放错格口 / Key returned to the wrong "
                               "slot · 钥匙 key U601 · 格口 slot 12")
    for line in ("类型: 钥匙放错格口 (wrong_slot)", "钥匙编号: U601", "格口: 12", "规则: K4",
                 "Kind: Key returned to the wrong slot (wrong_slot)", "Key: U601", "Slot: 12",
                 "Rule: K4", "Message: key U601 put in slot 12, its home is 3",
                 "时间: 2026-11-27 18:30:00 (Asia/Shanghai)", "Event: #42 alarm.wrong_slot"):
        assert line in message.text, line


def test_alarm_lifecycle_reports_and_unknown_types_have_text_too() -> None:
    raised = render(event("alarm.something_new", rules=["F1"],
                          payload={"kind": "something_new", "message": "x"}),
                    zone=SHANGHAI, cabinet_name="柜")
    assert "something_new" in raised.subject and "规则: F1" in raised.text
    closed = render(event("alarm.closed", payload={"note": "已处理"}), zone=SHANGHAI,
                    cabinet_name="柜")
    assert closed.subject == "[cab-01] 事件 Event: alarm.closed" and "note: 已处理" in closed.text
    report = render(event("report.generated", payload={
        "kind": "daily", "period_start": "2026-11-27", "period_end": "2026-11-27",
        "report": "r-1", "sha256": "00"}), zone=SHANGHAI, cabinet_name="柜")
    assert "日报 / daily 2026-11-27" in report.subject and "/api/v1/reports/r-1/download" in report.text
    escalated = render(event("alarm.escalated", key_number="U601", payload={
        "kind": "key_overdue", "level": "supervisor", "to_name": "李主管", "overdue_hours": 2.5}),
        zone=SHANGHAI, cabinet_name="柜")
    assert "客服主管" in escalated.subject and "李主管" in escalated.text
    odd = render(event("x.y", payload={"message": "line one\nline two\r\n", "nested": {"a": 1}},
                       key_number="K\n1"), zone=SHANGHAI, cabinet_name="柜")
    assert "\n" not in odd.subject and '{"a": 1}' in odd.text and "line one line two" in odd.text


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    b = Backoff(initial_s=30, max_s=300)
    assert [b.delay_s(n, 1.0) for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]
    assert [b.delay_s(n, 0.0) for n in range(1, 4)] == [15, 30, 60]
    assert b.delay_s(3, 0.5) == 90
    assert b.delay_s(60, 1.0) == 300  # no overflow for a long-failing delivery


def test_http_status_classes() -> None:
    assert classify(200) == (True, False) and classify(204) == (True, False)
    assert classify(400) == (False, True) and classify(404) == (False, True)
    assert classify(410) == (False, True)
    for retried in (301, 408, 429, 500, 502, 503):
        assert classify(retried) == (False, False), retried


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = '{"a":"钥匙"}'.encode()
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k" * 16, 1700000000, body) == f"sha256={expected}"
    assert verify_signature("k" * 16, "1700000000", body, f"sha256={expected}",
                            now=1700000100.0)
    assert not verify_signature("k" * 16, "1700000000", body, f"sha256={expected}",
                                now=1700000100.0, tolerance_s=60)
    assert not verify_signature("k" * 16, "1700000000", body, None, now=1700000000)
    assert not verify_signature("k" * 16, "1700000000", body, expected, now=1700000000)
