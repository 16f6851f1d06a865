"""Import of units (rooms) with their owners: one row per room, the owner optional.

Checked per row: room number new (file and register), floor a whole number in range,
kind and yes/no columns readable, owner phone plausible and never without an owner's name.
Rows naming the same owner (name and phone) share one owner record, and an owner already
on record with that name and phone is reused rather than duplicated (A1: one file per
owner, not one per room).
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.services.imports import (
    Checked,
    Column,
    Context,
    Row,
    choice,
    first_seen,
    parse_bool,
    parse_int,
    required_and_single_line,
)
from kiosk.store.models import Owner, Unit, UnitKind

COLUMNS: tuple[Column, ...] = (
    Column("room_number", "房号", "Room", True, "唯一，如 1201 或 配电房-B1",
           "Unique, e.g. 1201 or 配电房-B1", "1201"),
    Column("floor", "楼层", "Floor", True, "整数，地下为负数", "Whole number, negative below "
           "ground", "12"),
    Column("kind", "类型", "Kind", False, "办公、公共区域、设备房；空则为办公",
           "office, public_area, equipment; empty: office", "办公"),
    Column("name", "名称", "Name", False, "", "", "华信科技"),
    Column("special", "特殊房间", "Special", False, "是/否：钥匙须部门领导审批 (K7)",
           "yes/no: its keys need a department leader's approval (K7)", "否"),
    Column("vacant", "空置", "Vacant", False, "是/否", "yes/no", "否"),
    Column("owner_name", "业主", "Owner", False, "业主或租户名称", "Owner or tenant", "华信科技有限公司"),
    Column("owner_phone", "业主电话", "Owner phone", False, "", "", "13812345678"),
    Column("owner_address", "业主地址", "Owner address", False, "", "", "百富国际大厦 1201 室"),
    Column("owner_employer", "业主单位", "Owner employer", False, "", "", "华信科技"),
)
MAX_LEN = {"room_number": 32, "floor": 6, "kind": 32, "name": 100, "special": 8, "vacant": 8,
           "owner_name": 100, "owner_phone": 32, "owner_address": 200, "owner_employer": 200}
KIND_WORDS: dict[str, str] = {
    **{k.value: k.value for k in UnitKind},
    "办公": "office", "办公室": "office", "公共区域": "public_area", "设备房": "equipment",
    "public area": "public_area",
}
PHONE = re.compile(r"^\+?[0-9 ()-]{3,32}$")
FLOORS = range(-10, 201)


def check(session: Session, rows: list[Row], ctx: Context) -> Checked:
    out = Checked()
    required_and_single_line(rows, COLUMNS, out, MAX_LEN)
    first_seen(rows, "room_number", out, "房号", "room")
    rooms = [r.get("room_number") for r in rows if r.get("room_number")]
    taken = set(session.scalars(select(Unit.room_number).where(Unit.room_number.in_(rooms))))
    owners_on_record = {(o.name, o.phone or ""): o for o in session.scalars(
        select(Owner).where(Owner.name.in_([r.get("owner_name") for r in rows
                                            if r.get("owner_name")])))}
    new_owners: dict[tuple[str, str], Row] = {}
    plan: list[tuple[Row, int, str, bool, bool, tuple[str, str] | None]] = []
    for row in rows:
        room = row.get("room_number")
        if room in taken:
            out.problem(row.number, "room_number", f"房号“{room}”已存在",
                        f"room {room!r} is already on record")
        floor = parse_int(row.get("floor"))
        if row.get("floor") and (floor is None or floor not in FLOORS):
            out.problem(row.number, "floor", f"楼层应为 {FLOORS.start} 到 {FLOORS.stop - 1} 的整数",
                        f"floor must be a whole number from {FLOORS.start} to {FLOORS.stop - 1}")
        kind = choice(row.get("kind"), KIND_WORDS) if row.get("kind") else "office"
        if kind is None:
            out.problem(row.number, "kind", f"未知类型“{row.get('kind')}”（办公、公共区域、设备房）",
                        f"unknown kind {row.get('kind')!r} (office, public_area, equipment)")
        flags = {}
        for code, zh in (("special", "特殊房间"), ("vacant", "空置")):
            flags[code] = parse_bool(row.get(code))
            if flags[code] is None:
                out.problem(row.number, code, f"“{zh}”应填 是 或 否",
                            f"{code} must be yes or no")
        owner_name, phone = row.get("owner_name"), row.get("owner_phone")
        if phone and not PHONE.match(phone):
            out.problem(row.number, "owner_phone", f"电话“{phone}”格式不对",
                        f"phone {phone!r} is not a phone number")
        owner_key: tuple[str, str] | None = None
        if owner_name:
            owner_key = (owner_name, phone)
            if owner_key not in owners_on_record and owner_key not in new_owners:
                new_owners[owner_key] = row
                out.will_create("owners", owner_name)
        elif any(row.get(c) for c in ("owner_phone", "owner_address", "owner_employer")):
            out.problem(row.number, "owner_name", "填写了业主信息但缺少业主名称",
                        "owner details are given without the owner's name")
        if room:
            out.will_create("units", room)
        plan.append((row, floor or 0, kind or "office", bool(flags["special"]),
                     bool(flags["vacant"]), owner_key))
    if out.problems:
        return out

    def write() -> None:
        owners = dict(owners_on_record)
        for key, row in new_owners.items():
            owners[key] = Owner(id=uuid.uuid4(), name=key[0], phone=key[1] or None,
                                address=row.get("owner_address") or None,
                                employer=row.get("owner_employer") or None)
            session.add(owners[key])
        session.flush()
        for row, floor, kind, special, vacant, owner_key in plan:
            session.add(Unit(
                room_number=row.get("room_number"), floor=floor, kind=UnitKind(kind),
                name=row.get("name") or None, special=special, vacant=vacant,
                owner_id=owners[owner_key].id if owner_key else None,
            ))

    out.apply = write
    return out
