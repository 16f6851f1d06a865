"""A small tower for the K9 scheduler and report tests: one cabinet, four keys, five people.

Built straight on the store (no drivers, no simulators) so the scheduler's tests run in
milliseconds; the presence map stands in for the cabinet's last sensor scan.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from kiosk.config import ScheduleSettings, Settings
from kiosk.reports import render
from kiosk.runtime import Runtime
from kiosk.services import tx
from kiosk.store.models import Key, KeyCategory, KeyGroup, Loan, Person, PersonRole, Role, Slot

SH = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 11, 27)


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SH).astimezone(dt.UTC)


class Clock:
    """A settable clock in UTC; tests move it in local (Asia/Shanghai) time."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, day: dt.date, hour: int, minute: int = 0) -> None:
        self.now = local(day, hour, minute)


@dataclass
class Tower:
    runtime: Runtime
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    presence: dict[int, bool] = field(default_factory=dict)

    def add(self, *rows: object) -> None:
        with tx.write(self.runtime.audit) as session:
            session.add_all(rows)

    def person(self, staff_no: str, name: str, *roles: Role) -> uuid.UUID:
        person = Person(staff_no=staff_no, name=name)
        person.roles = [PersonRole(role=r) for r in (Role.STAFF, *roles)]
        self.add(person)
        return person.id

    def draw(self, key: str, borrower: str, *, at: dt.datetime, hours: float,
             reason: str = "repair") -> uuid.UUID:
        """A loan as the cabinet records it; the key's slot goes empty."""
        loan = Loan(key_id=self.ids[f"key:{key}"], cabinet_id=self.ids["cabinet"],
                    borrower_id=self.ids[borrower], reason_code=reason, drawn_at=at,
                    due_at=at + dt.timedelta(hours=hours))
        self.add(loan)
        self.presence[self.slot_of[key]] = False
        return loan.id

    def give_back(self, loan_id: uuid.UUID, *, at: dt.datetime, key: str) -> None:
        with tx.write(self.runtime.audit) as session:
            loan = session.get(Loan, loan_id)
            assert loan is not None
            loan.returned_at = at
        self.presence[self.slot_of[key]] = True

    slot_of: ClassVar[dict[str, int]] = {"U601": 1, "U602": 2, "E-PWR-B1": 3, "S-29F": 4}


def open_runtime(tmp_path: Path, db_url: str, **schedule: Any) -> Runtime:
    settings = Settings(data_dir=tmp_path / "var", database_url=db_url, cabinet_id="cab-k9",
                        cabinet_name="百富国际大厦 客服中心钥匙柜", schedule=ScheduleSettings(**schedule))
    return Runtime.open(settings)


def build_tower(runtime: Runtime) -> Tower:
    tower = Tower(runtime)
    cabinet = runtime.ensure_cabinet()
    tower.ids["cabinet"] = cabinet.id
    slots = [Slot(cabinet_id=cabinet.id, number=n) for n in range(1, 6)]
    group = KeyGroup(code="UNIT", name="单元钥匙")
    tower.add(*slots, group)
    labels = {"U601": "601 室 华信科技", "U602": "602 室 空置房", "E-PWR-B1": "B1 高压配电房",
              "S-29F": "29F 楼梯间防火门"}
    keys = [Key(key_number=k, label=labels[k], group_id=group.id, category=KeyCategory.UNIT,
                home_slot_id=slots[n - 1].id) for k, n in Tower.slot_of.items()]
    tower.add(*keys)
    for key in keys:
        tower.ids[f"key:{key.key_number}"] = key.id
    tower.ids["gao"] = tower.person("E1001", "高军")
    tower.ids["zhou"] = tower.person("E1002", "周晓燕")
    tower.ids["custodian"] = tower.person("C0001", "李娜", Role.CUSTODIAN)
    tower.ids["supervisor"] = tower.person("S0001", "王建国", Role.SUPERVISOR)
    # slot 5 is nobody's home and empty; every key is in
    tower.presence.update({1: True, 2: True, 3: True, 4: True, 5: False})
    return tower


def need_font() -> None:
    """The embedded-CJK PDF needs Debian's fonts-wqy-zenhei: install it as root (CI), else skip."""
    if render.FONT_PATH.is_file():
        return
    if shutil.which("apt-get") is None or not _root():
        pytest.skip(f"needs the Debian package {render.FONT_PACKAGE} (not root: cannot install)")
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", render.FONT_PACKAGE], check=False,
                   capture_output=True)
    if not render.FONT_PATH.is_file():
        pytest.skip(f"could not install {render.FONT_PACKAGE}")


def _root() -> bool:
    import os

    return os.geteuid() == 0


def pdf_text(path: Path) -> str:
    """Text of a PDF: pdftotext (poppler-utils) when present, else pypdf."""
    if shutil.which("pdftotext"):
        done = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                              capture_output=True)
        return done.stdout.decode("utf-8")
    pypdf = pytest.importorskip("pypdf", reason="needs pdftotext (poppler-utils) or pypdf")
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(str(path)).pages)
