"""Fixtures for the admin API: an app on the test database, accounts per role, a small tower.

Accounts get their tokens straight from ``kiosk.services.tokens`` (the same code a login
runs) so most tests do not pay for argon2; the login tests use a cheaper but real argon2id
parameter set.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pg_server
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.audit import AuditLog
from kiosk.cabinet import Cabinet, calendar_from
from kiosk.runtime import Runtime
from kiosk.services import accounts, tokens, tx
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models import (
    Card,
    Department,
    Key,
    KeyCategory,
    KeyGroup,
    Loan,
    Owner,
    Person,
    PersonRole,
    Role,
    Slot,
    Unit,
    UnitKind,
)
from kiosk.store.models_auth import AccountRole
from kiosk.store.types import utcnow
from kiosk.wiring import build_simulated

collect_ignore_glob = [] if pg_server.wanted() else ["test_schemathesis_*_postgres.py"]
"""The PostgreSQL schemathesis runs exist only where the suite runs PostgreSQL."""

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@dataclass
class World:
    """A small tower on the test database, with helpers to add rows and make accounts."""

    runtime: Runtime
    client: TestClient
    policy: AuthPolicy
    ids: dict[str, uuid.UUID] = field(default_factory=dict)

    @property
    def audit(self) -> AuditLog:
        return self.runtime.audit

    def add(self, *rows: object) -> None:
        with tx.write(self.audit) as session:
            session.add_all(rows)

    def person(
        self, staff_no: str, *, dept: str | None, roles: tuple[Role, ...] = (Role.STAFF,)
    ) -> uuid.UUID:
        person = Person(
            staff_no=staff_no,
            name=f"员工{staff_no}",
            department_id=self.ids[f"dept:{dept}"] if dept else None,
            phone="13900000000",
        )
        person.roles = [PersonRole(role=r) for r in roles]
        self.add(person)
        return person.id

    def token(
        self,
        role: AccountRole,
        *,
        dept: str | None = None,
        person: uuid.UUID | None = None,
        username: str | None = None,
    ) -> dict[str, str]:
        """Bearer headers of a fresh account with ``role`` (scoped to ``dept`` when given)."""
        name = username or f"{role.value}-{uuid.uuid4().hex[:8]}"
        with tx.write(self.audit) as session:
            account = accounts.create_account(
                session,
                self.audit,
                by=None,
                username=name,
                password="correct horse battery",
                role=role,
                person_id=person,
                department_id=self.ids[f"dept:{dept}"] if dept else None,
                policy=self.policy,
            )
            _, secret = tokens.issue_access_token(session, account=account, policy=self.policy)
        return {"Authorization": f"Bearer {secret}"}

    def loan(
        self, key: str, borrower: uuid.UUID, *, drawn_hours_ago: float, due_in_hours: float,
        now: dt.datetime | None = None,
    ) -> uuid.UUID:
        """An open loan; ``now`` pins it to a test's own clock instead of the wall clock."""
        now = now or utcnow()
        drawn = now - dt.timedelta(hours=drawn_hours_ago)
        loan = Loan(
            key_id=self.ids[f"key:{key}"],
            cabinet_id=self.ids["cabinet"],
            borrower_id=borrower,
            reason_code="repair",
            drawn_at=drawn,
            due_at=now + dt.timedelta(hours=due_in_hours),
        )
        self.add(loan)
        return loan.id


def build_world(runtime: Runtime, client: TestClient, policy: AuthPolicy) -> World:
    world = World(runtime, client, policy)
    cabinet = runtime.ensure_cabinet()
    world.ids["cabinet"] = cabinet.id
    depts = {"A": Department(code="ENG", name="工程部"), "B": Department(code="SEC", name="安保部")}
    slots = [Slot(cabinet_id=cabinet.id, number=n) for n in range(1, 21)]
    group = KeyGroup(code="UNIT", name="单元钥匙")
    equip = KeyGroup(code="EQUIP", name="设备房钥匙")
    owner = Owner(name="华信科技有限公司", phone="13812345678", address="百富国际大厦 1201 室",
                  employer="华信科技")
    unit = Unit(room_number="1201", floor=12, kind=UnitKind.OFFICE, owner=owner)
    other_unit = Unit(room_number="1202", floor=12, kind=UnitKind.OFFICE)
    power = Unit(room_number="配电房-B1", floor=-1, kind=UnitKind.EQUIPMENT, special=True)
    world.add(*depts.values(), *slots, group, equip, owner, unit, other_unit, power)
    keys = {
        "U1201": Key(key_number="U1201", label="1201 室", unit_id=unit.id, group_id=group.id,
                     category=KeyCategory.UNIT, home_slot_id=slots[0].id),
        "U1202": Key(key_number="U1202", label="1202 室", unit_id=other_unit.id,
                     group_id=group.id, category=KeyCategory.UNIT, home_slot_id=slots[1].id),
        "E-PWR": Key(key_number="E-PWR", label="高压配电房", unit_id=power.id, group_id=equip.id,
                     category=KeyCategory.EQUIPMENT, home_slot_id=slots[2].id),
    }
    world.add(*keys.values())
    for name, dept in depts.items():
        world.ids[f"dept:{name}"] = dept.id
    for i, slot in enumerate(slots, 1):
        world.ids[f"slot:{i}"] = slot.id
    for number, key in keys.items():
        world.ids[f"key:{number}"] = key.id
    world.ids.update(
        group=group.id, equip_group=equip.id, owner=owner.id, unit=unit.id,
        other_unit=other_unit.id, power_unit=power.id,
    )
    world.ids["custodian"] = world.person("C001", dept="A", roles=(Role.STAFF, Role.CUSTODIAN))
    world.ids["staff_a"] = world.person("A001", dept="A")
    world.ids["staff_b"] = world.person("B001", dept="B")
    world.ids["leader_a"] = world.person("A900", dept="A", roles=(Role.STAFF, Role.DEPT_LEADER))
    world.ids["leader_b"] = world.person("B900", dept="B", roles=(Role.STAFF, Role.DEPT_LEADER))
    world.ids["manager"] = world.person("M001", dept=None, roles=(Role.STAFF, Role.DUTY_MANAGER))
    world.ids["proxy"] = world.person("P001", dept=None)
    card_a = Card(uid="A1B2C3D4", person_id=world.ids["staff_a"])
    card_b = Card(uid="B1B2C3D4", person_id=world.ids["staff_b"])
    world.add(card_a, card_b)
    world.ids["card_a"], world.ids["card_b"] = card_a.id, card_b.id
    return world


@contextmanager
def attached_cabinet(world: World) -> Iterator[Cabinet]:
    """A real cabinet on the world's runtime and simulated locks, started on the test
    client's event loop and attached to its app (the live and remote-unlock endpoints)."""
    portal = world.client.portal
    assert portal is not None, "use the client inside its `with` block"
    hw = build_simulated(world.runtime)
    cabinet = portal.call(lambda: Cabinet(
        world.runtime, hw.locks, calendar=calendar_from(world.runtime.settings),
        door_is_open=lambda: hw.door_sensor.is_open,
    ))
    portal.call(cabinet.start)
    world.client.app.state.cabinet = cabinet  # type: ignore[attr-defined]
    try:
        yield cabinet
    finally:
        world.client.app.state.cabinet = None  # type: ignore[attr-defined]
        portal.call(cabinet.stop)
        hw.close()


@pytest.fixture
def policy() -> AuthPolicy:
    return AuthPolicy(hasher=FAST_HASHER)


@pytest.fixture
def world(runtime: Runtime, policy: AuthPolicy) -> Iterator[World]:
    app = create_admin_app(runtime, AdminOptions(auth_policy=policy))
    with TestClient(app) as client:
        yield build_world(runtime, client, policy)
