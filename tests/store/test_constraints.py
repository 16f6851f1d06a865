"""Integrity rules that live in the database itself, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TypedDict

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from kiosk.runtime import Runtime
from kiosk.store.models import (
    AccessRight,
    Cabinet,
    Card,
    Handover,
    Key,
    KeyCategory,
    KeyGroup,
    Loan,
    Person,
    Role,
    Slot,
)

NOW = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


class Base(TypedDict):
    """The rows every test here builds on (the ``base`` fixture)."""

    cab: Cabinet
    slots: list[Slot]
    group: KeyGroup
    key: Key
    alice: Person
    bob: Person


@pytest.fixture
def engine(runtime: Runtime) -> Engine:
    return runtime.engine


@pytest.fixture
def base(engine: Engine) -> Iterator[Base]:
    """A cabinet with two slots, a key group, a key in slot 1, and two people."""
    with Session(engine, expire_on_commit=False) as s:
        cab = s.query(Cabinet).one()
        slots = [Slot(cabinet=cab, number=n) for n in (1, 2)]
        group = KeyGroup(code="UNIT", name="Units")
        key = Key(
            key_number="U1203",
            label="1203",
            group=group,
            category=KeyCategory.UNIT,
            home_slot=slots[0],
            fob_tag="F0001",
        )
        alice = Person(staff_no="E1", name="王芳")
        bob = Person(staff_no="E2", name="李强")
        s.add_all([*slots, group, key, alice, bob])
        s.commit()
        yield {"cab": cab, "slots": slots, "group": group, "key": key, "alice": alice, "bob": bob}


def _loan(b: Base, **kw: object) -> Loan:
    fields: dict[str, object] = {
        "key_id": b["key"].id,
        "cabinet_id": b["cab"].id,
        "borrower_id": b["alice"].id,
        "reason_code": "repair",
        "drawn_at": NOW,
        "due_at": NOW + dt.timedelta(hours=2),
    }
    fields.update(kw)
    return Loan(**fields)


def _refused(engine: Engine, *rows: object) -> None:
    with Session(engine) as s:
        s.add_all(rows)
        with pytest.raises(IntegrityError):
            s.commit()


def test_key_numbers_are_unique(engine: Engine, base: Base) -> None:
    dup = Key(
        key_number="U1203",
        label="again",
        group_id=base["group"].id,
        category=KeyCategory.UNIT,
    )
    _refused(engine, dup)


def test_one_key_per_slot(engine: Engine, base: Base) -> None:
    second = Key(
        key_number="U1204",
        label="1204",
        group_id=base["group"].id,
        category=KeyCategory.UNIT,
        home_slot_id=base["slots"][0].id,
    )
    _refused(engine, second)


def test_slot_numbers_unique_per_cabinet(engine: Engine, base: Base) -> None:
    _refused(engine, Slot(cabinet_id=base["cab"].id, number=1))


def test_one_open_loan_per_key_but_a_returned_key_can_go_out_again(
    engine: Engine, base: Base
) -> None:
    with Session(engine) as s:
        first = _loan(base)
        s.add(first)
        s.commit()
        first_id = first.id
    _refused(engine, _loan(base, borrower_id=base["bob"].id))
    with Session(engine) as s:
        loan = s.get(Loan, first_id)
        assert loan is not None
        loan.returned_at = NOW + dt.timedelta(hours=1)
        s.commit()
        s.add(_loan(base, drawn_at=NOW + dt.timedelta(hours=3), due_at=NOW + dt.timedelta(hours=4)))
        s.commit()


def test_night_opening_needs_two_different_people_K8(
    engine: Engine, base: Base
) -> None:
    alice = base["alice"].id
    _refused(engine, _loan(base, duty_manager_id=alice))


def test_loan_times_must_make_sense(engine: Engine, base: Base) -> None:
    _refused(engine, _loan(base, due_at=NOW - dt.timedelta(minutes=1)))
    _refused(engine, _loan(base, returned_at=NOW - dt.timedelta(minutes=1)))


def test_foreign_keys_are_enforced(engine: Engine, base: Base) -> None:
    import uuid

    orphan = Key(
        key_number="U9999", label="orphan", group_id=uuid.uuid4(), category=KeyCategory.UNIT
    )
    _refused(engine, orphan)


def test_card_uids_unique_and_upper_hex(engine: Engine, base: Base) -> None:
    alice = base["alice"].id
    with Session(engine) as s:
        s.add(Card(uid="04A1B2C3", person_id=alice))
        s.commit()
    _refused(engine, Card(uid="04A1B2C3", person_id=alice))
    _refused(engine, Card(uid="04a1b2c4", person_id=alice))


def test_access_right_names_a_person_or_a_role_not_both(
    engine: Engine, base: Base
) -> None:
    group = base["group"].id
    alice = base["alice"].id
    _refused(engine, AccessRight(person_id=alice, role=Role.STAFF, key_group_id=group))
    _refused(engine, AccessRight(key_group_id=group))


def test_handover_needs_two_different_people_H1(engine: Engine, base: Base) -> None:
    alice = base["alice"].id
    cab = base["cab"].id
    _refused(engine, Handover(cabinet_id=cab, outgoing_id=alice, incoming_id=alice, report="{}"))


def test_unknown_enum_values_and_naive_times_are_refused(
    engine: Engine, base: Base
) -> None:
    with Session(engine) as s:
        s.add(_loan(base, drawn_at=dt.datetime(2026, 1, 1)))  # naive: no time zone
        with pytest.raises(StatementError, match="naive datetime"):
            s.commit()
    with Session(engine) as s:
        alice = base["alice"].id
        s.add(Card(uid="AABBCCDD", person_id=alice, status="stolen"))
        with pytest.raises(StatementError):
            s.commit()


def test_times_round_trip_as_utc(engine: Engine, base: Base) -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    with Session(engine) as s:
        loan = _loan(base, drawn_at=NOW.astimezone(shanghai))
        s.add(loan)
        s.commit()
        loan_id = loan.id
    with Session(engine) as s:
        stored = s.get(Loan, loan_id)
        assert stored is not None
        assert stored.drawn_at == NOW and stored.drawn_at.tzinfo is not None
        assert stored.drawn_at.utcoffset() == dt.timedelta(0)
