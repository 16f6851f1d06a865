"""The human text of an event: a one-line subject and a plain-text body, zh-CN then English.

The same text goes into the email and into the webhook body (``message``), so a chat
integration can post it as is. Alarms get a dedicated rendering that names the alarm kind,
key number, slot, rule and message, because an alarm is what a supervisor acts on at night;
every other event type gets a generic rendering of its fields, so a route to a new event
type never fails for want of a template. Values from payloads are made single-line for the
subject (a newline in a header would be an injection, and ``EmailMessage`` refuses it).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.alarm_kinds import ALARM_KINDS
from kiosk.services.alarms import alarm_kind_of
from kiosk.store.models import Event

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
SUBJECT_MAX = 200


@dataclass(frozen=True)
class EventView:
    """An event row decoded once (JSON columns parsed), for messages and webhook bodies."""

    cabinet_id: str
    seq: int
    at: dt.datetime
    type: str
    actors: list[str]
    slot: int | None
    key_number: str | None
    decision: str | None
    rules: list[str]
    payload: dict[str, Any]
    hash: str

    @classmethod
    def of(cls, row: Event) -> EventView:
        return cls(
            cabinet_id=row.cabinet_id, seq=row.seq, at=row.at, type=row.type,
            actors=json.loads(row.actors), slot=row.slot, key_number=row.key_number,
            decision=row.decision, rules=json.loads(row.rules), payload=json.loads(row.payload),
            hash=row.hash,
        )

    def as_json(self) -> dict[str, Any]:
        """The event as the webhook receives it (the stored fields, times in ISO 8601 UTC)."""
        return {
            "cabinet_id": self.cabinet_id, "seq": self.seq,
            "at": self.at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "type": self.type, "actors": self.actors, "slot": self.slot,
            "key_number": self.key_number, "decision": self.decision, "rules": self.rules,
            "payload": self.payload, "hash": self.hash,
        }


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    link: str | None = None
    """The console address to act on the event (also the last line of ``text``)."""
    link_zh: str | None = None
    link_en: str | None = None


def one_line(value: object, limit: int = SUBJECT_MAX) -> str:
    """``value`` as a single line of at most ``limit`` characters."""
    text = _CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _alarm_kind(event: EventView) -> str | None:
    """The alarm kind of an alarm-raising event (``alarm.<kind>``), or None for other events."""
    return alarm_kind_of(event.type)


def _rules(event: EventView) -> str:
    specific = [r for r in event.rules if r != "F1"]
    return ", ".join(specific or event.rules) or "—"


def _when(event: EventView, zone: ZoneInfo) -> str:
    return f"{event.at.astimezone(zone):%Y-%m-%d %H:%M:%S} ({zone.key})"


def _block(rows: Sequence[tuple[str, object]]) -> str:
    return "\n".join(f"{label}: {value}" for label, value in rows if value not in (None, ""))


def render(event: EventView, *, zone: ZoneInfo, cabinet_name: str,
           console_base: str | None = None) -> Message:
    """Subject and bilingual body for ``event`` (times in the cabinet's own zone), ending
    with a link into the console when one is configured and the event names a record."""
    from kiosk.notify.links import console_link

    message = _render(event, zone=zone, cabinet_name=cabinet_name)
    link = console_link(event, console_base)
    if link is None:
        return message
    return Message(message.subject, message.text + f"\n{link.zh} {link.en}: {link.url}\n",
                   link=link.url, link_zh=link.zh, link_en=link.en)


def _render(event: EventView, *, zone: ZoneInfo, cabinet_name: str) -> Message:
    kind = _alarm_kind(event)
    if kind is not None:
        return _alarm(event, kind, zone=zone, cabinet_name=cabinet_name)
    if event.type == "alarm.escalated":
        return _escalated(event, zone=zone, cabinet_name=cabinet_name)
    if event.type == "report.generated":
        return _report(event, zone=zone, cabinet_name=cabinet_name)
    if event.type == "loan.due_soon":
        return _due_soon(event, zone=zone, cabinet_name=cabinet_name)
    if event.type == "notification.test":
        where, _ = _header(event, cabinet_name)
        return Message(
            one_line(f"[{event.cabinet_id}] 测试通知 Test notification"),
            f"钥匙柜 {where} 的通知设置可用。\nThe notification settings of the key cabinet "
            f"{where} work.\n时间 Time: {_when(event, zone)}\n",
        )
    return _generic(event, zone=zone, cabinet_name=cabinet_name)


def _header(event: EventView, cabinet_name: str) -> tuple[str, str]:
    where = f"{cabinet_name} ({event.cabinet_id})"
    return where, f"#{event.seq} {event.type}"


def _alarm(event: EventView, kind: str, *, zone: ZoneInfo, cabinet_name: str) -> Message:
    zh, en = ALARM_KINDS.get(kind, (kind, kind))
    text = str(event.payload.get("message") or "")
    where, ref = _header(event, cabinet_name)
    subject_bits = [f"[{event.cabinet_id}] 报警 Alarm: {zh} / {en}"]
    if event.key_number:
        subject_bits.append(f"钥匙 key {event.key_number}")
    if event.slot is not None:
        subject_bits.append(f"格口 slot {event.slot}")
    body = "\n\n".join([
        f"钥匙柜报警：{where}\n" + _block([
            ("类型", f"{zh} ({kind})"), ("钥匙编号", event.key_number), ("格口", event.slot),
            ("规则", _rules(event)), ("说明", text), ("时间", _when(event, zone)),
            ("事件", ref),
        ]),
        f"Key cabinet alarm: {where}\n" + _block([
            ("Kind", f"{en} ({kind})"), ("Key", event.key_number), ("Slot", event.slot),
            ("Rule", _rules(event)), ("Message", text), ("Time", _when(event, zone)),
            ("Event", ref),
        ]),
        "请在管理后台确认并处理该报警（首接责任制 F1）。\n"
        "Acknowledge and handle the alarm in the admin console (first-contact rule F1).",
    ])
    return Message(one_line(" · ".join(subject_bits)), body + "\n")


def _escalated(event: EventView, *, zone: ZoneInfo, cabinet_name: str) -> Message:
    p = event.payload
    kind = str(p.get("kind") or "")
    zh, en = ALARM_KINDS.get(kind, (kind, kind))
    level = str(p.get("level") or "")
    levels = {"custodian": ("钥匙管理员", "custodian"), "supervisor": ("客服主管", "supervisor"),
              "long_overdue": ("长期未归", "long overdue")}
    lzh, len_ = levels.get(level, (level, level))
    where, ref = _header(event, cabinet_name)
    subject = (f"[{event.cabinet_id}] 报警升级 Alarm escalated: {zh} / {en} → {lzh} / {len_}"
               + (f" · 钥匙 key {event.key_number}" if event.key_number else ""))
    body = "\n\n".join([
        f"报警升级：{where}\n" + _block([
            ("类型", f"{zh} ({kind})"), ("级别", lzh), ("钥匙编号", event.key_number),
            ("交给", p.get("to_name")), ("逾期小时", p.get("overdue_hours")),
            ("规则", _rules(event)), ("时间", _when(event, zone)), ("事件", ref),
        ]),
        f"Alarm escalated: {where}\n" + _block([
            ("Kind", f"{en} ({kind})"), ("Level", len_), ("Key", event.key_number),
            ("To", p.get("to_name")), ("Hours overdue", p.get("overdue_hours")),
            ("Rule", _rules(event)), ("Time", _when(event, zone)), ("Event", ref),
        ]),
    ])
    return Message(one_line(subject), body + "\n")


def _report(event: EventView, *, zone: ZoneInfo, cabinet_name: str) -> Message:
    p = event.payload
    kinds = {"daily": ("日报", "daily"), "overdue": ("逾期报表", "overdue"),
             "key": ("钥匙记录", "key history"), "person": ("人员记录", "person history")}
    kzh, ken = kinds.get(str(p.get("kind")), (str(p.get("kind")), str(p.get("kind"))))
    start, end = p.get("period_start"), p.get("period_end")
    period = str(start) if start == end else f"{start} – {end}"
    where, ref = _header(event, cabinet_name)
    subject = f"[{event.cabinet_id}] 报表已生成 Report generated: {kzh} / {ken} {period}"
    body = "\n\n".join([
        f"报表已生成（当日钥匙当日点清 K9）：{where}\n" + _block([
            ("类型", kzh), ("期间", period), ("对象", p.get("subject")),
            ("报表编号", p.get("report")), ("SHA-256", p.get("sha256")),
            ("时间", _when(event, zone)), ("事件", ref),
        ]),
        f"Report generated (K9): {where}\n" + _block([
            ("Kind", ken), ("Period", period), ("Subject", p.get("subject")),
            ("Report", p.get("report")), ("SHA-256", p.get("sha256")),
            ("Time", _when(event, zone)), ("Event", ref),
        ]),
        "下载：GET /api/v1/reports/{id}/download · Download it from the admin API.".replace(
            "{id}", str(p.get("report") or "{id}")),
    ])
    return Message(one_line(subject), body + "\n")


def _due_soon(event: EventView, *, zone: ZoneInfo, cabinet_name: str) -> Message:
    """A borrower's key is due soon: what, whose, by when (the reminder is sent once)."""
    p = event.payload
    due = str(p.get("due_at") or "")
    try:
        shown = dt.datetime.fromisoformat(due).astimezone(zone).strftime("%H:%M")
    except ValueError:
        shown = due
    who = one_line(p.get("borrower_name") or "", 100)
    label = one_line(p.get("label") or "", 100)
    where, ref = _header(event, cabinet_name)
    subject = (f"[{event.cabinet_id}] 钥匙即将到期 Key due soon: {event.key_number} "
               f"· {who} · {shown}")
    body = "\n\n".join([
        f"{who}：您借用的钥匙 {event.key_number}（{label}）将于 {shown} 到期，请按时归还到钥匙柜。"
        f"\n" + _block([("钥匙柜", where), ("剩余分钟", p.get("minutes_left")), ("事件", ref)]),
        f"{who}: the key {event.key_number} ({label}) you borrowed is due back at {shown}. "
        "Please return it to the cabinet on time.\n" + _block([
            ("Cabinet", where), ("Minutes left", p.get("minutes_left")), ("Event", ref)]),
    ])
    return Message(one_line(subject), body + "\n")


def _fields(payload: Mapping[str, Any]) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for name in sorted(payload):
        value = payload[name]
        shown = value if isinstance(value, str | int | float | bool) or value is None else (
            json.dumps(value, ensure_ascii=False, sort_keys=True))
        rows.append((f"  {name}", one_line(shown, 300)))
    return rows


def _generic(event: EventView, *, zone: ZoneInfo, cabinet_name: str) -> Message:
    where, ref = _header(event, cabinet_name)
    subject = f"[{event.cabinet_id}] 事件 Event: {event.type}" + (
        f" · 钥匙 key {event.key_number}" if event.key_number else "")
    common = [("事件 Event", ref), ("时间 Time", _when(event, zone)),
              ("钥匙 Key", event.key_number), ("格口 Slot", event.slot),
              ("规则 Rules", ", ".join(event.rules) or None),
              ("决定 Decision", event.decision),
              ("操作者 Actors", ", ".join(event.actors) or None)]
    body = f"钥匙柜事件 Key cabinet event: {where}\n" + _block(common)
    if event.payload:
        body += "\n内容 Details:\n" + _block(_fields(event.payload))
    return Message(one_line(subject), body + "\n")
