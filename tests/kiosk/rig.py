"""A whole simulated cabinet for tests: demo tower, Kerong bus over TCP, MFRC522 chip sim.

The cabinet runs on a controllable clock (business hours and timeouts are the clock's), the
drivers talk real bytes to the simulators, and the physical model is what a person touches.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.cabinet import Cabinet, calendar_from, options_from
from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.runtime import Runtime
from kiosk.store.models import (
    Card,
    Department,
    DutyShift,
    Event,
    Key,
    KeyGroup,
    Loan,
    Person,
    PersonRole,
    Role,
    Slot,
)
from kiosk.wiring import SimulatedHardware, build_simulated

SH = ZoneInfo("Asia/Shanghai")
FRI_10AM = dt.datetime(2026, 11, 27, 10, 0, tzinfo=SH)


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start.astimezone(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)

    def set_local(self, local: dt.datetime) -> None:
        self.now = local.astimezone(dt.UTC)


@dataclass
class Rig:
    runtime: Runtime
    hw: SimulatedHardware
    cabinet: Cabinet
    clock: Clock

    # ---------------------------------------------------------------- people and keys
    def card_of(self, *, role: Role | None = None, dept: str | None = None, index: int = 0,
                exclude_roles: tuple[Role, ...] = ()) -> tuple[str, Person]:
        with Session(self.runtime.engine) as s:
            q = select(Person).join(Card).where(Card.kind == "staff").order_by(Person.staff_no)
            if dept:
                q = q.join(Department).where(Department.code == dept)
            people = [p for p in s.scalars(q).unique()
                      if (role is None or p.has_role(role))
                      and not any(p.has_role(r) for r in exclude_roles)]
            person = people[index]
            return person.cards[0].uid, person

    def duty_manager_on(self, at: dt.datetime) -> tuple[str, Person]:
        with Session(self.runtime.engine) as s:
            shift = s.scalars(select(DutyShift).where(DutyShift.starts_at <= at,
                                                      DutyShift.ends_at > at)).first()
            assert shift is not None
            person = s.get(Person, shift.person_id)
            assert person is not None
            return person.cards[0].uid, person

    def key(self, key_number: str) -> tuple[int, str]:
        """(home slot, fob tag)."""
        with Session(self.runtime.engine) as s:
            key = s.scalars(select(Key).where(Key.key_number == key_number)).one()
            slot = s.get(Slot, key.home_slot_id)
            assert slot is not None and key.fob_tag is not None
            return slot.number, key.fob_tag

    def first_key(self, group_code: str) -> str:
        """The key number of the first key (by number) in a key group, e.g. 'UNIT'."""
        with Session(self.runtime.engine) as s:
            return s.scalars(select(Key.key_number).join(KeyGroup).where(KeyGroup.code == group_code)
                             .order_by(Key.key_number)).first() or ""

    def open_loans(self) -> list[Loan]:
        with Session(self.runtime.engine) as s:
            return list(s.scalars(select(Loan).where(Loan.returned_at.is_(None))))

    def events(self, type_prefix: str = "") -> list[Event]:
        with Session(self.runtime.engine) as s:
            return [e for e in s.scalars(select(Event).order_by(Event.seq))
                    if e.type.startswith(type_prefix)]

    # ------------------------------------------------------------------------- acting
    async def settle(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            await self.cabinet.tick()

    async def take(self, slot: int) -> str:
        fob = self.hw.model.take(slot)
        self.hw.model.shut_slot(slot)
        await self.settle()
        return fob

    async def drawn(self, uid: str, key_number: str, reason: str = "repair") -> tuple[int, str]:
        """Badge, draw, take: ``key_number`` is out with the badge's holder. (slot, fob)."""
        slot, fob = self.key(key_number)
        await self.cabinet.tap(uid)
        await self.cabinet.choose_draw([key_number], reason)
        await self.take(slot)
        return slot, fob

    async def put_back(self, fob: str, slot: int) -> None:
        self.hw.model.insert(fob, slot)
        self.hw.model.shut_slot(slot)
        await self.settle()


async def make_rig(tmp_path: Path, *, start: dt.datetime = FRI_10AM, **settings: object) -> Rig:
    cfg = Settings(data_dir=tmp_path / "var", cabinet_id="cab-01", **settings)  # type: ignore[arg-type]
    runtime = Runtime.open(cfg)
    clock = Clock(start)
    load_demo(runtime, now=clock())
    hw = build_simulated(runtime)
    cabinet = Cabinet(runtime, hw.bank, calendar=calendar_from(cfg), options=options_from(cfg),
                      clock=clock, door_is_open=lambda: hw.door_sensor.is_open)
    await cabinet.start()
    return Rig(runtime, hw, cabinet, clock)


async def close_rig(rig: Rig) -> None:
    await rig.cabinet.stop()
    rig.hw.close()
    rig.runtime.close()


def grant(rig: Rig, person: Person, role: Role) -> None:
    with Session(rig.runtime.engine) as s:
        s.add(PersonRole(person_id=person.id, role=role))
        s.commit()
