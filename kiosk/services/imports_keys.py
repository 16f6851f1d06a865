"""Import of keys with their home slots in this cabinet: one row per key.

Checked per row: key number new (file and register) and without spaces, key group known
(or created when ``group_name`` is given), category readable, room known (import units
first), slot a slot of this cabinet that is enabled, nobody's home yet and not given twice
in the file, copies 1-99, fob tag new.
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
    parse_int,
    required_and_single_line,
)
from kiosk.store.models import Cabinet, Key, KeyCategory, KeyGroup, Slot, Unit

COLUMNS: tuple[Column, ...] = (
    Column("key_number", "钥匙编号", "Key number", True, "唯一，不含空格", "Unique, no spaces",
           "U1201"),
    Column("label", "名称", "Label", True, "", "", "1201 室"),
    Column("group", "钥匙组代码", "Key group", True, "已有钥匙组的代码，如 UNIT",
           "Code of an existing key group, e.g. UNIT", "UNIT"),
    Column("group_name", "钥匙组名称", "Key group name", False, "钥匙组代码不存在时以此名称新建",
           "Creates the key group when its code is new", "单元钥匙"),
    Column("category", "类别", "Category", True, "单元、公共区域、设备房、总钥匙、其他",
           "unit, public_area, equipment, master, other", "单元"),
    Column("room", "房号", "Room", False, "已登记的房号（先导入房间）",
           "A room on record (import units first)", "1201"),
    Column("slot", "格口号", "Slot", False, "本柜的格口号", "Slot number in this cabinet", "1"),
    Column("copies", "数量", "Copies", False, "1 到 99，空则为 1", "1 to 99; empty: 1", "1"),
    Column("fob_tag", "钥匙扣标签", "Fob tag", False, "钥匙扣 RFID 标签号", "The key fob's RFID tag",
           "F0001201"),
)
MAX_LEN = {"key_number": 32, "label": 200, "group": 32, "group_name": 100, "category": 32,
           "room": 32, "slot": 6, "copies": 3, "fob_tag": 32}
CATEGORY_WORDS: dict[str, str] = {
    **{c.value: c.value for c in KeyCategory},
    "单元": "unit", "房间": "unit", "公共区域": "public_area", "设备房": "equipment",
    "总钥匙": "master", "总匙": "master", "其他": "other", "public area": "public_area",
}
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NO_SPACE = re.compile(r"^\S+$")


def check(session: Session, rows: list[Row], ctx: Context) -> Checked:
    out = Checked()
    required_and_single_line(rows, COLUMNS, out, MAX_LEN)
    first_seen(rows, "key_number", out, "钥匙编号", "key number")
    first_seen(rows, "slot", out, "格口", "slot")
    first_seen(rows, "fob_tag", out, "钥匙扣标签", "fob tag")
    numbers = [r.get("key_number") for r in rows if r.get("key_number")]
    taken = set(session.scalars(select(Key.key_number).where(Key.key_number.in_(numbers))))
    fobs = set(session.scalars(select(Key.fob_tag).where(
        Key.fob_tag.in_([r.get("fob_tag") for r in rows if r.get("fob_tag")]))))
    groups = {g.code: g for g in session.scalars(select(KeyGroup))}
    units = {u.room_number: u for u in session.scalars(select(Unit).where(
        Unit.room_number.in_([r.get("room") for r in rows if r.get("room")])))}
    cabinet = session.scalars(
        select(Cabinet).where(Cabinet.code == ctx.settings.cabinet_id)).one_or_none()
    slots = {s.number: s for s in session.scalars(
        select(Slot).where(Slot.cabinet_id == cabinet.id))} if cabinet else {}
    homes = dict(session.execute(
        select(Key.home_slot_id, Key.key_number).where(Key.home_slot_id.is_not(None))).all())
    new_groups: dict[str, str] = {}
    plan: list[tuple[Row, str, int, Slot | None]] = []
    for row in rows:
        number = row.get("key_number")
        if number and not NO_SPACE.match(number):
            out.problem(row.number, "key_number", "钥匙编号不能含空格",
                        "a key number has no spaces")
        elif number in taken:
            out.problem(row.number, "key_number", f"钥匙编号“{number}”已存在",
                        f"key number {number!r} is already on record")
        code = row.get("group")
        if code and code not in groups and code not in new_groups:
            if not CODE.match(code):
                out.problem(row.number, "group", f"钥匙组代码“{code}”只能含字母、数字、._-",
                            f"key group code {code!r} may hold letters, digits and ._- only")
            elif row.get("group_name"):
                new_groups[code] = row.get("group_name")
                out.will_create("key_groups", code)
            else:
                out.problem(row.number, "group", f"未知钥匙组“{code}”（填写钥匙组名称可新建）",
                            f"unknown key group {code!r} (give group_name to create it)")
        category = choice(row.get("category"), CATEGORY_WORDS)
        if row.get("category") and category is None:
            out.problem(row.number, "category", f"未知类别“{row.get('category')}”",
                        f"unknown category {row.get('category')!r} (unit, public_area, "
                        "equipment, master, other)")
        room = row.get("room")
        if room and room not in units:
            out.problem(row.number, "room", f"房号“{room}”未登记（请先导入房间）",
                        f"room {room!r} is not on record (import units first)")
        slot: Slot | None = None
        if row.get("slot"):
            wanted = parse_int(row.get("slot"))
            slot = slots.get(wanted) if wanted is not None else None
            if slot is None:
                out.problem(row.number, "slot", f"本柜没有格口“{row.get('slot')}”",
                            f"this cabinet has no slot {row.get('slot')!r}")
            elif not slot.enabled:
                out.problem(row.number, "slot", f"格口 {slot.number} 已停用",
                            f"slot {slot.number} is disabled")
            elif slot.id in homes:
                out.problem(row.number, "slot", f"格口 {slot.number} 已是钥匙 {homes[slot.id]} 的位置",
                            f"slot {slot.number} is already the home of key {homes[slot.id]}")
        copies = parse_int(row.get("copies")) if row.get("copies") else 1
        if copies is None or not 1 <= copies <= 99:
            out.problem(row.number, "copies", "数量应为 1 到 99", "copies must be 1 to 99")
        fob = row.get("fob_tag")
        if fob and fob in fobs:
            out.problem(row.number, "fob_tag", f"钥匙扣标签“{fob}”已用于其他钥匙",
                        f"fob tag {fob!r} is on another key")
        if number:
            out.will_create("keys", number)
        plan.append((row, category or "other", copies or 1, slot))
    if out.problems:
        return out

    def write() -> None:
        made = {code: KeyGroup(id=uuid.uuid4(), code=code, name=name)
                for code, name in new_groups.items()}
        session.add_all(made.values())
        session.flush()
        for row, category, copies, slot in plan:
            group = made.get(row.get("group")) or groups[row.get("group")]
            unit = units.get(row.get("room")) if row.get("room") else None
            session.add(Key(
                key_number=row.get("key_number"), label=row.get("label"), group_id=group.id,
                category=KeyCategory(category), copies=copies, fob_tag=row.get("fob_tag") or None,
                unit_id=unit.id if unit else None, home_slot_id=slot.id if slot else None,
                # on record, not yet in the cabinet: a custodian stocks it (flows/stock.py)
                awaiting_stock=slot is not None,
            ))

    out.apply = write
    return out
