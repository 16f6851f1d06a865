"""Import of people with their cards: one row per person, a card UID optional.

Checked per row: staff number and name present and single-line, the staff number new (in
the file and in the register), the department known (or created when ``department_name``
is given, and the importer may act for it), roles known, phone plausible, card UID 4, 7 or
10 bytes of hex and new, card end date a date after today.
"""

from __future__ import annotations

import datetime as dt
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
    parse_date,
    required_and_single_line,
)
from kiosk.store.models import Card, CardKind, Department, Person, PersonRole, Role

COLUMNS: tuple[Column, ...] = (
    Column("staff_no", "工号", "Staff no.", True, "员工的唯一编号", "The person's unique number",
           "E1001"),
    Column("name", "姓名", "Name", True, "", "", "张伟"),
    Column("department", "部门代码", "Department", False, "已有部门的代码，如 ENG",
           "Code of an existing department, e.g. ENG", "ENG"),
    Column("department_name", "部门名称", "Department name", False,
           "部门代码不存在时，以此名称新建部门", "Creates the department when its code is new",
           "工程部"),
    Column("phone", "电话", "Phone", False, "", "", "13800000000"),
    Column("roles", "角色", "Roles", False,
           "以逗号分隔：员工、钥匙管理员、部门领导、值班经理、主管；空则为员工",
           "Comma-separated: staff, custodian, dept_leader, duty_manager, supervisor; "
           "empty means staff", "员工,值班经理"),
    Column("card_uid", "卡号", "Card UID", False, "工卡 UID，8、14 或 20 位十六进制",
           "Badge UID: 8, 14 or 20 hex digits", "04A1B2C3"),
    Column("card_valid_to", "卡有效期至", "Card valid to", False, "YYYY-MM-DD，空则长期有效",
           "YYYY-MM-DD; empty: no end", "2027-12-31"),
)
MAX_LEN = {"staff_no": 32, "name": 100, "department": 32, "department_name": 100,
           "phone": 32, "roles": 200, "card_uid": 20, "card_valid_to": 10}
ROLE_WORDS: dict[str, str] = {
    **{r.value: r.value for r in Role},
    "员工": "staff", "钥匙管理员": "custodian", "部门领导": "dept_leader",
    "值班经理": "duty_manager", "主管": "supervisor", "客服主管": "supervisor",
    "管理员": "admin", "审计": "auditor",
}
CARD_UID = re.compile(r"^(?:[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})$")
PHONE = re.compile(r"^\+?[0-9 ()-]{3,32}$")
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _roles(row: Row, out: Checked) -> list[Role]:
    words = [w for w in re.split(r"[,，、;；\s]+", row.get("roles")) if w]
    roles = {Role.STAFF}
    for word in words:
        code = choice(word, ROLE_WORDS)
        if code is None:
            out.problem(row.number, "roles", f"未知角色“{word}”", f"unknown role {word!r}")
        else:
            roles.add(Role(code))
    return sorted(roles)


def check(session: Session, rows: list[Row], ctx: Context) -> Checked:
    out = Checked()
    required_and_single_line(rows, COLUMNS, out, MAX_LEN)
    first_seen(rows, "staff_no", out, "工号", "staff number")
    first_seen(rows, "card_uid", out, "卡号", "card UID", normalise=lambda v: v.upper())
    staff = [r.get("staff_no") for r in rows if r.get("staff_no")]
    taken = set(session.scalars(select(Person.staff_no).where(Person.staff_no.in_(staff))))
    uids = [r.get("card_uid").upper() for r in rows if r.get("card_uid")]
    cards_taken = set(session.scalars(select(Card.uid).where(Card.uid.in_(uids))))
    departments = {d.code: d for d in session.scalars(select(Department))}
    new_departments: dict[str, str] = {}
    today = dt.datetime.now(ctx.settings.zone).date()
    plan: list[tuple[Row, list[Role], str | None, dt.date | None]] = []
    for row in rows:
        staff_no = row.get("staff_no")
        if staff_no in taken:
            out.problem(row.number, "staff_no", f"工号“{staff_no}”已存在",
                        f"staff number {staff_no!r} is already on record")
        code = row.get("department")
        if code:
            known = departments.get(code)
            if known is None and code not in new_departments:
                if not CODE.match(code):
                    out.problem(row.number, "department", f"部门代码“{code}”只能含字母、数字、._-",
                                f"department code {code!r} may hold letters, digits and ._- only")
                elif row.get("department_name"):
                    new_departments[code] = row.get("department_name")
                    out.will_create("departments", code)
                else:
                    out.problem(row.number, "department", f"未知部门“{code}”（填写部门名称可新建）",
                                f"unknown department {code!r} (give department_name to create it)")
            if known is not None and not ctx.by.sees_department(known.id):
                out.problem(row.number, "department", f"您不能为部门“{code}”导入人员",
                            f"you may not import people into department {code!r}")
            if known is None and ctx.by.department_id is not None:
                out.problem(row.number, "department", "部门账户不能新建部门",
                            "a department-scoped account cannot create departments")
        elif ctx.by.department_id is not None:
            out.problem(row.number, "department", "请填写您的部门代码",
                        "give your own department's code")
        phone = row.get("phone")
        if phone and not PHONE.match(phone):
            out.problem(row.number, "phone", f"电话“{phone}”格式不对",
                        f"phone {phone!r} is not a phone number")
        roles = _roles(row, out)
        uid = row.get("card_uid").upper().replace(" ", "") or None
        if uid is not None:
            if not CARD_UID.match(uid):
                out.problem(row.number, "card_uid", f"卡号“{row.get('card_uid')}”应为 8、14 或 20 位"
                            "十六进制", f"card UID {row.get('card_uid')!r} must be 8, 14 or 20 "
                            "hex digits (4, 7 or 10 bytes)")
            elif uid in cards_taken:
                out.problem(row.number, "card_uid", f"卡号“{uid}”已登记（挂失和注销的卡也保留）",
                            f"card {uid} is already on record (lost and revoked cards stay)")
        valid_to = parse_date(row.get("card_valid_to"))
        if row.get("card_valid_to") and valid_to is None:
            out.problem(row.number, "card_valid_to", "日期应为 YYYY-MM-DD",
                        "a date is written YYYY-MM-DD")
        elif valid_to is not None and valid_to <= today:
            out.problem(row.number, "card_valid_to", "卡有效期应晚于今天",
                        "the card's end date must be after today")
        if valid_to is not None and uid is None:
            out.problem(row.number, "card_valid_to", "没有卡号时不能填写卡有效期",
                        "a card end date needs a card UID")
        if staff_no:
            out.will_create("people", staff_no)
        if uid:
            out.will_create("cards", uid)
        plan.append((row, roles, uid, valid_to))
    if out.problems:
        return out

    def write() -> None:
        made = {code: Department(id=uuid.uuid4(), code=code, name=name)
                for code, name in new_departments.items()}
        session.add_all(made.values())
        session.flush()
        for row, roles, uid, valid_to in plan:
            code = row.get("department")
            department = (made.get(code) or departments.get(code)) if code else None
            person = Person(staff_no=row.get("staff_no"), name=row.get("name"),
                            phone=row.get("phone") or None,
                            department_id=department.id if department else None)
            person.roles = [PersonRole(role=r) for r in roles]
            session.add(person)
            if uid:
                end = (dt.datetime.combine(valid_to, dt.time(23, 59, 59),
                                           tzinfo=ctx.settings.zone) if valid_to else None)
                session.add(Card(uid=uid, person=person, kind=CardKind.STAFF, valid_to=end))

    out.apply = write
    return out
