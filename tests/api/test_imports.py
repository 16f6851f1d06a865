"""Bulk import (issue 11): a building from a spreadsheet, every problem shown before
anything is written, all or nothing, one audit event per import.
"""

from __future__ import annotations

import io
import json
from typing import Any

from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kiosk.store.models import Card, Event, Key, Owner, Person, Slot, Unit
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World
from tests.console.conftest import console_user

V1 = "/api/v1"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _csv(rows: list[list[str]], encoding: str = "utf-8-sig") -> bytes:
    return "\r\n".join(",".join(r) for r in rows).encode(encoding)


def _post(world: World, path: str, blob: bytes, name: str, headers: dict[str, str]) -> Any:
    media = XLSX if name.endswith(".xlsx") else "text/csv"
    return world.client.post(f"{V1}{path}", files={"file": (name, blob, media)}, headers=headers)


def _count(world: World, model: type) -> int:
    with Session(world.runtime.engine) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _imports(world: World) -> list[dict[str, Any]]:
    with Session(world.runtime.engine) as s:
        return [json.loads(e.payload) for e in
                s.scalars(select(Event).where(Event.type == "import.applied").order_by(Event.seq))]


def test_templates_download_in_both_formats_and_read_back(world: World) -> None:
    custodian = world.token(AccountRole.CUSTODIAN)
    for kind in ("people", "units", "keys"):
        csv = world.client.get(f"{V1}/imports/{kind}/template.csv", headers=custodian)
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        header = csv.content.decode("utf-8-sig").splitlines()[0]
        assert header.split(",")[0] in ("工号 staff_no", "房号 room_number", "钥匙编号 key_number")
        xlsx = world.client.get(f"{V1}/imports/{kind}/template.xlsx", headers=custodian)
        book = load_workbook(io.BytesIO(xlsx.content))
        assert book.sheetnames == [kind, "说明 Help"]
        assert [c.value for c in book[kind][1]] == header.split(",")
        # the untouched template is understood and simply has nothing in it
        empty = _post(world, f"/imports/{kind}/preview", xlsx.content, "t.xlsx", custodian)
        assert empty.status_code == 200, empty.text
        assert [p["en"] for p in empty.json()["problems"]] == ["the file has no data rows"]


def test_a_building_is_imported_from_xlsx_units_then_keys_then_people(world: World) -> None:
    supervisor = world.token(AccountRole.SUPERVISOR)
    events_before = _count(world, Event)
    units = _xlsx([
        ["房号 room_number", "楼层 floor", "类型 kind", "特殊房间 special", "业主 owner_name",
         "业主电话 owner_phone"],
        ["2101", 21, "办公", "否", "远航贸易有限公司", "13911112222"],
        ["2102", 21, "办公", "否", "远航贸易有限公司", "13911112222"],
        ["配电房-B2", -2, "设备房", "是", None, None],
    ])
    done = _post(world, "/imports/units", units, "units.xlsx", supervisor)
    assert done.status_code == 201, done.text
    assert done.json()["creates"] == {"owners": 1, "units": 3}
    with Session(world.runtime.engine) as s:
        owner = s.scalars(select(Owner).where(Owner.name == "远航贸易有限公司")).one()
        rooms = s.scalars(select(Unit).where(Unit.owner_id == owner.id)).all()
        assert sorted(u.room_number for u in rooms) == ["2101", "2102"]  # one owner, two rooms
        assert s.scalars(select(Unit).where(Unit.room_number == "配电房-B2")).one().special

    keys = _xlsx([
        ["钥匙编号 key_number", "名称 label", "钥匙组代码 group", "钥匙组名称 group_name",
         "类别 category", "房号 room", "格口号 slot"],
        ["U2101", "2101 室", "UNIT", None, "单元", "2101", 10],
        ["U2102", "2102 室", "UNIT", None, "unit", "2102", 11],
        ["E-B2", "B2 配电房", "POWER", "配电房钥匙", "设备房", "配电房-B2", 12],
    ])
    done = _post(world, "/imports/keys", keys, "keys.xlsx", supervisor)
    assert done.status_code == 201, done.text
    with Session(world.runtime.engine) as s:
        key = s.scalars(select(Key).where(Key.key_number == "U2101")).one()
        slot = s.get_one(Slot, key.home_slot_id)
        assert slot.number == 10 and key.unit is not None and key.unit.room_number == "2101"
    # K1/K2: on record with its slot, not yet in the cabinet: a custodian stocks it there
    got = world.client.get(f"{V1}/keys/{key.id}", headers=supervisor)
    assert got.status_code == 200 and got.json()["awaiting_stock"] is True, got.text

    people = _xlsx([
        ["工号 staff_no", "姓名 name", "部门代码 department", "角色 roles", "卡号 card_uid",
         "卡有效期至 card_valid_to"],
        ["G001", "钱多多", "ENG", "员工", "04a1b2c3", "2099-12-31"],
        ["G002", "孙悟净", "SEC", "员工,值班经理", "04A1B2C3D4E5F6", None],
        ["G003", "沙僧", "ENG", "钥匙管理员", None, None],
    ])
    done = _post(world, "/imports/people", people, "people.xlsx", supervisor)
    assert done.status_code == 201, done.text
    with Session(world.runtime.engine) as s:
        card = s.scalars(select(Card).where(Card.uid == "04A1B2C3")).one()  # upper-cased
        assert card.person.staff_no == "G001" and card.valid_to is not None
        g2 = s.scalars(select(Person).where(Person.staff_no == "G002")).one()
        assert sorted(r.role.value for r in g2.roles) == ["duty_manager", "staff"]
    # three imports, three events: one audit event each, naming every record created
    logged = _imports(world)
    assert [e["kind"] for e in logged] == ["units", "keys", "people"]
    assert logged[2]["created"] == {"cards": ["04A1B2C3", "04A1B2C3D4E5F6"],
                                    "people": ["G001", "G002", "G003"]}
    assert _count(world, Event) == events_before + 3
    # ... and the console's keys page says so
    listed = console_user(world, AccountRole.SUPERVISOR).get("/console/keys?q=U2101")
    assert "待上架" in listed.text.split("<tbody>")[1], listed.text[-1500:]


def test_preview_lists_every_problem_by_row_and_column_and_writes_nothing(world: World) -> None:
    custodian = world.token(AccountRole.CUSTODIAN)
    keys = _csv([
        ["钥匙编号 key_number", "名称 label", "钥匙组代码 group", "类别 category", "格口号 slot"],
        ["N-1", "新钥匙一", "UNIT", "单元", "15"],
        ["N-1", "重复编号", "UNIT", "单元", "16"],         # duplicate in the file
        ["U1201", "已有编号", "UNIT", "单元", "17"],       # duplicate of the register
        ["N-3", "格口不存在", "UNIT", "单元", "999"],      # unknown slot
        ["N-4", "格口已占用", "UNIT", "单元", "1"],        # slot 1 is U1201's home
        ["N-5", "未知组", "NOPE", "火星", "18"],           # unknown group and category
        ["N-6", "同一格口", "UNIT", "单元", "15"],         # slot twice in the file
    ])
    keys_before, events_before = _count(world, Key), _count(world, Event)
    got = _post(world, "/imports/keys/preview", keys, "keys.csv", custodian)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["ok"] is False and body["rows"] == 7
    found = {(p["row"], p["column"]) for p in body["problems"]}
    assert found == {(3, "key_number"), (4, "key_number"), (5, "slot"), (6, "slot"),
                     (7, "group"), (7, "category"), (8, "slot")}
    by_cell = {(p["row"], p["column"]): p for p in body["problems"]}
    assert by_cell[(5, "slot")]["zh"] == "本柜没有格口“999”"
    assert by_cell[(5, "slot")]["en"] == "this cabinet has no slot '999'"
    assert "U1201" in by_cell[(6, "slot")]["en"]
    assert by_cell[(3, "key_number")]["en"] == "key number 'N-1' repeats row 2"
    # the import itself is refused whole, with the same problems
    refused = _post(world, "/imports/keys", keys, "keys.csv", custodian)
    assert refused.status_code == 422
    assert len(refused.json()["errors"]) == 7
    assert refused.json()["errors"][0]["loc"] == ["file", 3, "key_number"]
    assert (_count(world, Key), _count(world, Event)) == (keys_before, events_before)


def test_people_problems_bad_card_uids_departments_roles_and_dates(world: World) -> None:
    custodian = world.token(AccountRole.CUSTODIAN)
    people = _csv([
        ["工号", "姓名", "部门代码", "角色", "卡号", "卡有效期至"],
        ["H1", "好人", "ENG", "", "04A1B2C3", ""],
        ["H2", "坏卡", "ENG", "", "XYZ12345", ""],          # not hex
        ["H3", "短卡", "ENG", "", "04A1B2", ""],            # 3 bytes
        ["H4", "旧卡", "ENG", "", "A1B2C3D4", ""],          # already on record (world)
        ["H5", "同卡", "ENG", "", "04a1b2c3", ""],          # same as row 2, other case
        ["H6", "无部门", "MARS", "", "", ""],
        ["H7", "怪角色", "ENG", "国王", "", ""],
        ["A001", "重号", "ENG", "", "", ""],                # staff number taken (world)
        ["H9", "", "ENG", "", "", ""],                      # name missing
        ["H10", "过期", "ENG", "", "0A0B0C0D", "2001-01-01"],
    ], encoding="gb18030")  # as WPS saves a CSV on a Chinese Windows
    got = _post(world, "/imports/people/preview", people, "people.csv", custodian).json()
    found = {(p["row"], p["column"]) for p in got["problems"]}
    assert found == {(3, "card_uid"), (4, "card_uid"), (5, "card_uid"), (6, "card_uid"),
                     (7, "department"), (8, "roles"), (9, "staff_no"), (10, "name"),
                     (11, "card_valid_to")}
    assert all(p["zh"] and p["en"] for p in got["problems"])


def test_all_or_nothing_one_bad_row_keeps_every_good_row_out(world: World) -> None:
    admin = world.token(AccountRole.ADMIN)
    units = _csv([["房号", "楼层"], ["3101", "31"], ["3102", "31"], ["3103", "三十一"]])
    refused = _post(world, "/imports/units", units, "u.csv", admin)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["file", 4, "floor"]
    with Session(world.runtime.engine) as s:
        assert s.scalars(select(Unit).where(Unit.room_number.in_(["3101", "3102"]))).all() == []
    assert _imports(world) == []


def test_header_problems_and_file_errors(world: World) -> None:
    admin = world.token(AccountRole.ADMIN)
    unknown = _post(world, "/imports/units/preview", _csv([["房号", "颜色"], ["1", "红"]]),
                    "u.csv", admin).json()
    assert {(p["row"], p["column"]) for p in unknown["problems"]} == {(1, "颜色"), (1, "floor")}
    broken = _post(world, "/imports/units/preview", b"PK\x03\x04 not really a zip", "u.xlsx",
                   admin)
    assert broken.status_code == 422 and "XLSX" in broken.json()["detail"]
    too_big = _post(world, "/imports/units/preview", b"a" * (2 * 1024 * 1024 + 1), "u.csv",
                    admin)
    assert too_big.status_code == 422 and "MiB" in too_big.json()["detail"]


def test_only_importers_may_import(world: World) -> None:
    units = _csv([["房号", "楼层"], ["4101", "41"]])
    for role in (AccountRole.AUDITOR, AccountRole.DUTY_MANAGER):
        token = world.token(role)
        assert _post(world, "/imports/units/preview", units, "u.csv", token).status_code == 403
        assert _post(world, "/imports/units", units, "u.csv", token).status_code == 403
    assert _imports(world) == []
