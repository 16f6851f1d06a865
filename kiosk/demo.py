"""Demo data that looks like the real building: 百富国际大厦, floors 6–30, basements B1–B4.

About 200 keys (office units, public areas, special equipment rooms, master keys), about 50
staff over five departments, owners with proxies and letters of authorization, a duty
roster for the next two weeks. Deterministic for a given seed so screenshots and tests
can name people and keys.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drivers.identity.onewire import FobId
from kiosk.audit import NewEvent
from kiosk.errors import Conflict
from kiosk.runtime import Runtime
from kiosk.store.models import (
    AccessRight,
    Approval,
    AuthorizationUnit,
    Cabinet,
    Card,
    CardKind,
    Department,
    DutyShift,
    Key,
    KeyCategory,
    KeyGroup,
    Owner,
    OwnerAuthorization,
    Person,
    PersonRole,
    PhoneConfirmation,
    PhoneOutcome,
    Role,
    Slot,
    Unit,
    UnitKind,
)
from kiosk.store.types import utcnow

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志文辉鹏飞宇晨浩然思雨欣怡子涵"
COMPANIES = [
    "华信科技有限公司",
    "中盛贸易有限公司",
    "联合律师事务所",
    "博远咨询有限公司",
    "鼎泰投资有限公司",
    "瑞丰会计师事务所",
    "天成建筑设计院",
    "安和保险代理有限公司",
    "恒通物流有限公司",
    "明德教育科技",
    "盛世传媒有限公司",
    "东方证券营业部",
    "金石资产管理",
    "新元生物科技",
    "远航软件有限公司",
]

DEPARTMENTS = [
    # code, name, English, staff count, groups their staff may draw
    ("CS", "客服部", "Customer service", 9, ("UNIT", "VACANT", "PUBLIC", "MASTER")),
    ("ENG", "工程部", "Engineering", 13, ("UNIT", "VACANT", "PUBLIC", "EQUIP")),
    ("SEC", "安保部", "Security", 13, ("PUBLIC", "VACANT")),
    ("CLN", "保洁部", "Cleaning", 9, ("PUBLIC", "VACANT")),
    ("MGT", "管理处", "Management office", 7, ("UNIT", "VACANT", "PUBLIC", "EQUIP", "MASTER")),
]

KEY_GROUPS = [
    # code, name, requires custodian co-sign, loan minutes (None: end of business day)
    ("UNIT", "业主单元钥匙 Owner unit keys", False, None),
    ("VACANT", "空置房钥匙 Vacant unit keys", False, 240),
    ("PUBLIC", "公共区域钥匙 Public-area keys", False, 120),
    ("EQUIP", "设备房钥匙（特殊房间） Equipment rooms (special)", False, 120),
    ("MASTER", "总钥匙 Master keys", True, 60),
]

SLOTS = 208  # 13 Kerong KR-CU16 boards of 16 locks


def _name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        if name not in used:
            used.add(name)
            return name


def _uid(rng: random.Random, nbytes: int) -> str:
    return rng.randbytes(nbytes).hex().upper()


def load_demo(
    runtime: Runtime, *, seed: int = 20261127, now: dt.datetime | None = None
) -> dict[str, int]:
    """Load the demo tower into an empty database; refuse if people are already there."""
    rng = random.Random(seed)
    zone = ZoneInfo(runtime.settings.timezone)
    now = now or dt.datetime.now(dt.UTC)
    with Session(runtime.engine, expire_on_commit=False) as s:
        if s.scalar(select(func.count()).select_from(Person)):
            raise Conflict(
                "the database already holds people: demo data loads only into an empty one"
            )
        cabinet = s.scalars(
            select(Cabinet).where(Cabinet.code == runtime.settings.cabinet_id)
        ).one()
        cabinet.location = "1F 客服中心 Customer service centre, lobby"
        slots = [Slot(cabinet=cabinet, number=n) for n in range(1, SLOTS + 1)]
        s.add_all(slots)

        groups = {
            code: KeyGroup(code=code, name=name, requires_cosign=cosign, loan_minutes=minutes)
            for code, name, cosign, minutes in KEY_GROUPS
        }
        groups["PUBLIC"].return_anywhere = True  # issue 13: any free slot takes them back
        s.add_all(groups.values())

        # ----------------------------------------------------------------- people
        used_names: set[str] = set()
        people: dict[str, list[Person]] = {}
        staff_no = 1000
        for code, name, name_en, count, _ in DEPARTMENTS:
            dept = Department(code=code, name=name, name_en=name_en)
            s.add(dept)
            people[code] = []
            for _ in range(count):
                staff_no += 1
                p = Person(
                    staff_no=f"E{staff_no}",
                    name=_name(rng, used_names),
                    department=dept,
                    phone=f"139{rng.randrange(10**8):08d}",
                )
                p.roles.append(PersonRole(role=Role.STAFF))
                p.cards.append(Card(uid=_uid(rng, 4), kind=CardKind.STAFF))
                people[code].append(p)
                s.add(p)

        def grant(code: str, index: int, role: Role) -> Person:
            person = people[code][index]
            person.roles.append(PersonRole(role=role))
            return person

        for i in range(4):
            grant("CS", i, Role.CUSTODIAN)
        grant("CS", 4, Role.SUPERVISOR)
        for code in ("CS", "ENG", "SEC", "CLN"):
            grant(code, len(people[code]) - 1, Role.DEPT_LEADER)
        managers = [grant("MGT", i, Role.DUTY_MANAGER) for i in range(4)]
        grant("MGT", 4, Role.ADMIN)
        grant("MGT", 5, Role.AUDITOR)
        grant("MGT", 6, Role.DEPT_LEADER)

        # ------------------------------------------------------------- units, owners
        owners: list[Owner] = []
        units: list[Unit] = []
        for floor in range(6, 31):
            for n in range(1, 7):
                room = f"{floor}{n:02d}"
                vacant = rng.random() < 0.15
                owner = None
                if not vacant:
                    owner = Owner(
                        name=rng.choice(COMPANIES)
                        if rng.random() < 0.7
                        else _name(rng, used_names),
                        phone=f"138{rng.randrange(10**8):08d}",
                        address=f"百富国际大厦 {room} 室",
                        employer=rng.choice(COMPANIES),
                    )
                    owners.append(owner)
                units.append(
                    Unit(
                        room_number=room,
                        floor=floor,
                        kind=UnitKind.OFFICE,
                        owner=owner,
                        vacant=vacant,
                    )
                )
        public_areas = [
            (f"{well}梯-{lvl}", lvl, f"{well}号楼梯 {lvl} 消防门 Stairwell {well} fire door {lvl}")
            for well in ("A", "B")
            for lvl in ("B4", "B3", "B2", "B1", "1F", "6F", "12F", "18F", "24F", "29F")
        ]
        public_areas += [
            (f"消梯厅-{lvl}", lvl, f"消防电梯厅 {lvl} Fire-lift lobby {lvl}")
            for lvl in ("B4", "B1", "1F", "10F", "20F", "30F")
        ]
        public_areas += [
            ("大堂-东门", "1F", "大堂东门 Main lobby east door"),
            ("大堂-西门", "1F", "大堂西门 Main lobby west door"),
            ("B1-走道", "B1", "地下一层走道门 B1 corridor door"),
            ("B1-电梯厅", "B1", "地下一层电梯厅 B1 lift lobby"),
            ("天台", "RF", "天台门 Roof door"),
        ]
        equipment = [
            ("配电房-B1", "B1", "高压配电房 HV power room"),
            ("配电房-B2", "B2", "低压配电房 LV power room"),
            ("水泵房-B3", "B3", "生活水泵房 Domestic water pumps"),
            ("水泵房-B4", "B4", "消防水泵房 Fire pumps"),
            ("网络机房-B1", "B1", "网络机房 Network room"),
            ("消防控制室", "1F", "消防控制室 Fire control room"),
            ("电梯机房", "RF", "电梯机房 Lift machine room"),
            ("发电机房", "B2", "柴油发电机房 Generator room"),
        ]
        equipment += [
            (f"强电间-{f}F", f"{f}F", f"{f}层强电间 Power riser room") for f in (6, 12, 18, 24, 30)
        ]
        equipment += [
            (f"弱电间-{f}F", f"{f}F", f"{f}层弱电间 Network riser room")
            for f in (6, 12, 18, 24, 30)
        ]

        def floor_of(level: str) -> int:
            if level.startswith("B"):
                return -int(level[1:])
            return 31 if level == "RF" else int(level.rstrip("F"))

        for room, level, label in public_areas:
            units.append(
                Unit(room_number=room, floor=floor_of(level), kind=UnitKind.PUBLIC_AREA, name=label)
            )
        for room, level, label in equipment:
            units.append(
                Unit(
                    room_number=room,
                    floor=floor_of(level),
                    kind=UnitKind.EQUIPMENT,
                    name=label,
                    special=True,
                )
            )
        s.add_all(owners)
        s.add_all(units)

        # -------------------------------------------------------------------- keys
        keys: list[Key] = []
        for unit in units:
            if unit.kind == UnitKind.OFFICE:
                group, category = groups["VACANT" if unit.vacant else "UNIT"], KeyCategory.UNIT
                number, label = (
                    f"U{unit.room_number}",
                    f"{unit.room_number} 室" + (" (空置)" if unit.vacant else ""),
                )
            elif unit.kind == UnitKind.PUBLIC_AREA:
                group, category = groups["PUBLIC"], KeyCategory.PUBLIC_AREA
                number, label = f"P-{unit.room_number}", unit.name or unit.room_number
            else:
                group, category = groups["EQUIP"], KeyCategory.EQUIPMENT
                number, label = f"E-{unit.room_number}", unit.name or unit.room_number
            keys.append(
                Key(key_number=number, label=label, unit=unit, group=group, category=category)
            )
        for i, label in enumerate(
            (
                "6–15层总钥匙 Master 6F–15F",
                "16–30层总钥匙 Master 16F–30F",
                "地下室总钥匙 Master basements",
            ),
            1,
        ):
            keys.append(
                Key(
                    key_number=f"M-{i:02d}",
                    label=label,
                    group=groups["MASTER"],
                    category=KeyCategory.MASTER,
                )
            )
        if len(keys) > SLOTS:
            raise Conflict(f"{len(keys)} demo keys do not fit {SLOTS} slots")
        for key, slot in zip(keys, slots, strict=False):
            key.home_slot = slot
            key.fob_tag = _uid(rng, 7)  # NTAG-style 7-byte UID of the key fob
            # The 1-Wire chip in the same fob: what the simulated cabinet's receptors read.
            key.fob_rom = FobId.derived(key.fob_tag).hex
            key.copies = 1 if key.category != KeyCategory.UNIT else rng.choice((1, 1, 2))
        s.add_all(keys)
        # Two units handed over this month whose keys have not been delivered yet: what a
        # custodian's intake registers (issue 14, item 7: the room must be a unit).
        s.add_all([Unit(room_number=room, floor=30, kind=UnitKind.OFFICE, vacant=True,
                        name="新交付 keys awaited") for room in ("3007", "3008")])
        s.flush()

        # ------------------------------------------------------------ access rights
        for code, _, _, _, group_codes in DEPARTMENTS:
            for person in people[code]:
                for gc in group_codes:
                    s.add(AccessRight(person_id=person.id, key_group_id=groups[gc].id))
        # Cleaning works 07:00–19:00 only, every day.
        for person in people["CLN"]:
            for right in s.scalars(select(AccessRight).where(AccessRight.person_id == person.id)):
                right.start_time, right.end_time = dt.time(7, 0), dt.time(19, 0)

        # ------------------------------------------------- owner proxies (K6)
        occupied = [u for u in units if u.owner is not None]
        proxies = []
        for i in range(6):
            unit = occupied[i * 7]
            assert unit.owner is not None
            proxy = Person(
                staff_no=f"P{2001 + i}",
                name=_name(rng, used_names),
                phone=f"137{rng.randrange(10**8):08d}",
            )
            proxy.roles.append(PersonRole(role=Role.STAFF))
            proxy.cards.append(
                Card(
                    uid=_uid(rng, 7),
                    kind=CardKind.OWNER_PROXY,
                    valid_from=now - dt.timedelta(days=1),
                    valid_to=now + dt.timedelta(days=30),
                )
            )
            s.add(proxy)
            s.flush()
            auth = OwnerAuthorization(
                owner_id=unit.owner.id,
                proxy_id=proxy.id,
                letter_ref=f"WT-2026-{101 + i:04d}",
                valid_from=now - dt.timedelta(days=1),
                valid_to=now + dt.timedelta(days=30),
                requires_phone_confirmation=True,
            )
            auth.units.append(AuthorizationUnit(unit_id=unit.id))
            s.add(auth)
            s.flush()
            if i % 2 == 0:
                s.add(
                    PhoneConfirmation(
                        authorization_id=auth.id,
                        called_by_id=people["CS"][0].id,
                        called_at=now - dt.timedelta(hours=20),
                        outcome=PhoneOutcome.CONFIRMED,
                        note="业主电话确认委托 Owner confirmed by phone",
                    )
                )
            proxies.append(proxy)

        # ---------------------------------------------------- duty roster (K8)
        # Every hour is covered, day shifts as well as nights: after hours (evenings,
        # weekends, holidays) a duty manager can always co-sign, so a first try at any time
        # of day goes through; in business hours the day shift is simply not needed.
        hours = runtime.settings.business_hours
        today = now.astimezone(zone).date()
        for d in range(-1, 14):
            day = today + dt.timedelta(days=d)
            opens = dt.datetime.combine(day, hours.start, zone)
            closes = dt.datetime.combine(day, hours.end, zone)
            next_open = dt.datetime.combine(day + dt.timedelta(days=1), hours.start, zone)
            # two people a day, so nobody's night runs on into the next day shift
            s.add(DutyShift(person_id=managers[(2 * d) % len(managers)].id,
                            starts_at=opens, ends_at=closes))
            s.add(DutyShift(person_id=managers[(2 * d + 1) % len(managers)].id,
                            starts_at=closes, ends_at=next_open))

        # ------------------------------------------------ a pending K7 approval
        power_room = next(k for k in keys if k.key_number == "E-配电房-B1")
        s.add(
            Approval(
                key_id=power_room.id,
                requested_for_id=people["ENG"][0].id,
                requested_by_id=people["ENG"][0].id,
                reason="季度配电柜检修 Quarterly switchgear maintenance",
                valid_until=now + dt.timedelta(days=2),
            )
        )
        s.commit()

        summary = {
            "departments": len(DEPARTMENTS),
            "people": sum(len(v) for v in people.values()) + len(proxies),
            "cards": s.scalar(select(func.count()).select_from(Card)) or 0,
            "owners": len(owners),
            "units": len(units),
            "keys": len(keys),
            "slots": len(slots),
            "special keys": sum(1 for k in keys if k.unit is not None and k.unit.special),
            "proxies": len(proxies),
        }
        roles = Counter(r.role.value for ps in people.values() for p in ps for r in p.roles)
    runtime.audit.append(
        NewEvent(type="demo.loaded", payload={"seed": seed, **summary, "roles": dict(roles)})
    )
    return summary


DEMO_ROLES = ("staff", "custodian", "duty manager", "leader", "proxy", "supervisor")


@dataclass(frozen=True)
class DemoBadge:
    """One badge to try the cabinet with: whose it is and what it shows."""

    role: str
    name: str
    uid: str
    note: str


def demo_badges(runtime: Runtime, *, now: dt.datetime | None = None) -> list[DemoBadge]:
    """A badge per role of the demo tower (``kiosk demo-data --list``, the README's table):
    staff, custodian, the duty manager rostered at ``now``, a department leader, an owner's
    proxy whose letter is phone-confirmed, and the supervisor."""
    now = now or dt.datetime.now(dt.UTC)
    with Session(runtime.engine) as s:
        people = s.scalars(select(Person).where(Person.active.is_(True))
                           .order_by(Person.staff_no)).all()

        def badge(person: Person | None, role: str, note: str) -> DemoBadge | None:
            if person is None or not person.cards:
                return None
            return DemoBadge(role, person.name, person.cards[0].uid, note)

        def first(role: Role, dept: str | None = None, only: bool = False) -> Person | None:
            return next((p for p in people if p.has_role(role)
                         and (dept is None or (p.department and p.department.code == dept))
                         and (not only or len(p.roles) == 1)
                         and any(c.kind == CardKind.STAFF for c in p.cards)), None)

        shift = s.scalars(select(DutyShift).where(DutyShift.starts_at <= now,
                                                  DutyShift.ends_at > now)).first()
        manager = s.get(Person, shift.person_id) if shift is not None else None
        confirmed = next((a for a in s.scalars(select(OwnerAuthorization)
                                               .order_by(OwnerAuthorization.letter_ref))
                          if any(p.outcome == PhoneOutcome.CONFIRMED
                                 for p in a.phone_confirmations)), None)
        proxy = s.get(Person, confirmed.proxy_id) if confirmed is not None else None
        rows = [
            badge(first(Role.STAFF, "ENG", only=True), "staff",
                  "工程部 engineering: draws unit keys (after hours with the duty manager, K8)"),
            badge(first(Role.CUSTODIAN), "custodian",
                  "钥匙管理员: co-signs master keys (K3), registers keys (K1), hands over (H1)"),
            badge(manager, "duty manager",
                  "值班经理 on the roster now: co-signs after hours (K8)"),
            badge(first(Role.DEPT_LEADER, "ENG"), "leader",
                  "部门领导: approves special-room keys for their department (K7)"),
            badge(proxy, "proxy",
                  f"业主代理 owner's proxy, letter {confirmed.letter_ref if confirmed else '-'} "
                  "phone-confirmed: sees only the owner's units (K6)"),
            badge(first(Role.SUPERVISOR), "supervisor",
                  "主管: hands over (H1), owns most alarms (F1)"),
        ]
    return [row for row in rows if row is not None]


EMPTY_CABINET_SLOTS = 16
"""The empty simulated cabinet: one Kerong KR-CU16 board (``kiosk.wiring.CHANNELS`` locks)."""


def register_simulated_slots(runtime: Runtime, count: int = EMPTY_CABINET_SLOTS, *,
                             now: dt.datetime | None = None) -> int:
    """``kiosk run --empty``: register the simulated cabinet's slots, and nothing else.

    A building set up from the console imports keys *with their home slots*, which must be
    slots of this cabinet; on a real cabinet the installer registers them with its lock
    boards (``POST /cabinets/{id}/slots``). The simulated board is installed by the daemon,
    so it registers the board's slots itself, as one ``cabinet.slots_added`` event. A cabinet
    that already has slots is left alone (0). ``now`` (default: the clock's) is when the
    cabinet counts as registered (``cabinets.registered_at``: no K9 job due before it is
    caught up)."""
    with Session(runtime.engine) as s:
        cabinet = s.scalars(
            select(Cabinet).where(Cabinet.code == runtime.settings.cabinet_id)).one()
        if s.scalar(select(func.count()).select_from(Slot).where(Slot.cabinet_id == cabinet.id)):
            return 0
        s.add_all(Slot(cabinet_id=cabinet.id, number=n) for n in range(1, count + 1))
        cabinet.registered_at = cabinet.registered_at or now or utcnow()
        s.commit()
        cabinet_id = str(cabinet.id)
    runtime.audit.append(NewEvent(type="cabinet.slots_added", payload={
        "cabinet": cabinet_id, "first": 1, "count": count, "simulated": True}))
    return count


def try_it(runtime: Runtime, *, config: Path | None = None,
           now: dt.datetime | None = None) -> str:
    """The `kiosk sim` lines printed at start, for this database and the settings in force:
    the same ``--config`` as the daemon, and its kiosk port when the environment set it (the
    sim commands read the port from the same config and environment)."""
    badges = {b.role: b for b in demo_badges(runtime, now=now)}
    staff, manager = badges.get("staff"), badges.get("duty manager")
    with Session(runtime.engine) as s:
        row = s.execute(
            select(Key.key_number, Slot.number, Key.fob_tag)
            .join(Slot, Key.home_slot_id == Slot.id)
            .where(Slot.cabinet_id == select(Cabinet.id).where(
                Cabinet.code == runtime.settings.cabinet_id).scalar_subquery())
            .order_by(Slot.number)
        ).first()
    if staff is None or row is None:
        return ""
    number, slot, fob = row
    env = (f"KIOSK_KIOSK_PORT={runtime.settings.kiosk_port} "
           if "KIOSK_KIOSK_PORT" in os.environ else "")
    kiosk = f"{env}.venv/bin/kiosk" + (f" --config {shlex.quote(str(config))}" if config else "")
    lines = [
        "kiosk: try it from another terminal:",
        f"  {kiosk} sim tap {staff.uid}    # {staff.name} (staff) taps a badge",
    ]
    if manager is not None:
        lines.append(f"  {kiosk} sim tap {manager.uid}    # after hours only (K8): "
                     f"{manager.name}, the duty manager on the roster, co-signs")
    lines += [
        f"  (choose {number} and a reason on the kiosk screen)",
        f"  {kiosk} sim take {slot}    # take the key out of slot {slot}",
        f"  {kiosk} sim tap {fob}    # tap the key's fob to return it,",
        f"  {kiosk} sim tap {staff.uid}    # then the badge: who returns it (K4)",
        f"  {kiosk} sim insert {fob} {slot}",
        f"  {kiosk} sim door open    # no session: a forced-door alarm (F1)",
        f"  {kiosk} demo-data --list    # a demo badge for every role",
    ]
    return "\n".join(lines) + "\n"
