"""Typed SQLAlchemy 2 models for everything the rules (docs/rules.md) name.

Rows that travel between a cabinet and a central server have UUID keys; events are
identified by ``(cabinet_id, seq)``; every time is UTC; configuration rows carry
``updated_at`` so a cabinet can ask for what changed. Integrity rules live in the database
too (unique key numbers, one open loan per key, one key per slot) so no code path, present
or future, can break them.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    Time,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from kiosk.store.types import UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), uuid.UUID: Uuid()}  # noqa: RUF012


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    """Enums stored as strings with a CHECK constraint: portable across SQLite and PostgreSQL."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


def _updated_at() -> Mapped[dt.datetime]:
    return mapped_column(default=utcnow, onupdate=utcnow)


# --------------------------------------------------------------------------------- enums
class Role(enum.StrEnum):
    STAFF = "staff"
    CUSTODIAN = "custodian"
    DEPT_LEADER = "dept_leader"
    DUTY_MANAGER = "duty_manager"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    AUDITOR = "auditor"


class CardStatus(enum.StrEnum):
    ACTIVE = "active"
    LOST = "lost"
    REVOKED = "revoked"


class CardKind(enum.StrEnum):
    STAFF = "staff"
    OWNER_PROXY = "owner_proxy"


class UnitKind(enum.StrEnum):
    OFFICE = "office"
    PUBLIC_AREA = "public_area"
    EQUIPMENT = "equipment"


class KeyCategory(enum.StrEnum):
    UNIT = "unit"
    PUBLIC_AREA = "public_area"
    EQUIPMENT = "equipment"
    MASTER = "master"
    OTHER = "other"


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    USED = "used"


class PhoneOutcome(enum.StrEnum):
    CONFIRMED = "confirmed"
    REFUSED = "refused"
    NO_ANSWER = "no_answer"


class AlarmState(enum.StrEnum):
    OPEN = "open"
    HANDLED = "handled"
    CLOSED = "closed"


class HandoverState(enum.StrEnum):
    STARTED = "started"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"


# --------------------------------------------------------------------------- people
class Department(Base):
    __tablename__ = "departments"

    id: Mapped[uuid.UUID] = _uuid_pk()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = _updated_at()


class Person(Base):
    __tablename__ = "people"

    id: Mapped[uuid.UUID] = _uuid_pk()
    staff_no: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    department_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("departments.id"))
    phone: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = _updated_at()

    department: Mapped[Department | None] = relationship()
    roles: Mapped[list[PersonRole]] = relationship(
        back_populates="person", cascade="all, delete-orphan"
    )
    cards: Mapped[list[Card]] = relationship(back_populates="person")

    def has_role(self, role: Role) -> bool:
        return any(r.role == role for r in self.roles)


class PersonRole(Base):
    __tablename__ = "person_roles"

    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), primary_key=True)

    person: Mapped[Person] = relationship(back_populates="roles")


class Card(Base):
    """An RFID credential. Lost or revoked cards stay on record so a tap is recognised and refused."""

    __tablename__ = "cards"

    id: Mapped[uuid.UUID] = _uuid_pk()
    uid: Mapped[str] = mapped_column(String(20), unique=True)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    kind: Mapped[CardKind] = mapped_column(_enum(CardKind, "card_kind"), default=CardKind.STAFF)
    status: Mapped[CardStatus] = mapped_column(
        _enum(CardStatus, "card_status"), default=CardStatus.ACTIVE
    )
    valid_from: Mapped[dt.datetime | None]
    valid_to: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = _updated_at()

    person: Mapped[Person] = relationship(back_populates="cards")

    __table_args__ = (
        CheckConstraint("uid = upper(uid)", name="uid_upper_hex"),
        CheckConstraint(
            "valid_to IS NULL OR valid_from IS NULL OR valid_to > valid_from", name="validity"
        ),
    )


# -------------------------------------------------------------------- owners and units
class Owner(Base):
    """An owner or tenant. Phone, address and employer are confidential (A1)."""

    __tablename__ = "owners"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(200))
    employer: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = _updated_at()


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[uuid.UUID] = _uuid_pk()
    room_number: Mapped[str] = mapped_column(String(32), unique=True)
    floor: Mapped[int] = mapped_column(Integer)
    kind: Mapped[UnitKind] = mapped_column(_enum(UnitKind, "unit_kind"), default=UnitKind.OFFICE)
    name: Mapped[str | None] = mapped_column(String(100))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("owners.id"))
    special: Mapped[bool] = mapped_column(Boolean, default=False)
    vacant: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = _updated_at()

    owner: Mapped[Owner | None] = relationship()

    __table_args__ = (CheckConstraint("floor BETWEEN -10 AND 200", name="floor_range"),)


# -------------------------------------------------------------------- cabinets and keys
class Cabinet(Base):
    __tablename__ = "cabinets"

    id: Mapped[uuid.UUID] = _uuid_pk()
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str | None] = mapped_column(String(200))
    registered_at: Mapped[dt.datetime | None] = mapped_column(
        doc="When the cabinet's first slots were registered (its first lock board); NULL: "
            "registered before this was recorded. The K9 scheduler catches up no daily job "
            "due before it (kiosk/scheduler.py).",
    )
    updated_at: Mapped[dt.datetime] = _updated_at()

    slots: Mapped[list[Slot]] = relationship(back_populates="cabinet", order_by="Slot.number")


class Slot(Base):
    __tablename__ = "slots"

    id: Mapped[uuid.UUID] = _uuid_pk()
    cabinet_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cabinets.id"))
    number: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    cabinet: Mapped[Cabinet] = relationship(back_populates="slots")

    __table_args__ = (
        UniqueConstraint("cabinet_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
    )


class KeyGroup(Base):
    """Keys that share rules: who may draw them, whether a custodian co-signs, when due back."""

    __tablename__ = "key_groups"

    id: Mapped[uuid.UUID] = _uuid_pk()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    requires_cosign: Mapped[bool] = mapped_column(Boolean, default=False)
    loan_minutes: Mapped[int | None] = mapped_column(
        Integer, doc="Due back after this many minutes; NULL means end of business day."
    )
    return_anywhere: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(),
        doc="Issue 13: a key of this group may be hung in any free slot (identity cabinets), "
            "which becomes its home.",
    )
    updated_at: Mapped[dt.datetime] = _updated_at()

    __table_args__ = (
        CheckConstraint("loan_minutes IS NULL OR loan_minutes > 0", name="loan_minutes_positive"),
    )


class Key(Base):
    __tablename__ = "keys"

    id: Mapped[uuid.UUID] = _uuid_pk()
    key_number: Mapped[str] = mapped_column(String(32), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("units.id"))
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("key_groups.id"))
    category: Mapped[KeyCategory] = mapped_column(_enum(KeyCategory, "key_category"))
    copies: Mapped[int] = mapped_column(Integer, default=1)
    fob_tag: Mapped[str | None] = mapped_column(String(32), unique=True)
    fob_rom: Mapped[str | None] = mapped_column(
        String(16), unique=True,
        doc="The 1-Wire ROM of the chip in the key's fob (16 hex digits), read by the slot's "
            "identity receptor; paired at intake (issue 13).",
    )
    home_slot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("slots.id"), unique=True)
    status: Mapped[KeyStatus] = mapped_column(
        _enum(KeyStatus, "key_status"), default=KeyStatus.ACTIVE
    )
    awaiting_stock: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(),
        doc="Imported with its home slot and never hung in the cabinet yet: a custodian's "
            "stocking session hangs it (kiosk/cabinet/flows/stock.py, ``key.stocked``).",
    )
    updated_at: Mapped[dt.datetime] = _updated_at()

    unit: Mapped[Unit | None] = relationship()
    group: Mapped[KeyGroup] = relationship()
    home_slot: Mapped[Slot | None] = relationship()

    __table_args__ = (CheckConstraint("copies BETWEEN 1 AND 99", name="copies_range"),)


class IntakeRecord(Base):
    """K1: a key received, who delivered it, who received it, which slot it went to."""

    __tablename__ = "intake_records"

    id: Mapped[uuid.UUID] = _uuid_pk()
    key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("keys.id"))
    delivered_by_name: Mapped[str] = mapped_column(String(100))
    delivered_by_department: Mapped[str] = mapped_column(String(100))
    room_number: Mapped[str] = mapped_column(String(32))
    key_count: Mapped[int] = mapped_column(Integer)
    deliverer_confirmed: Mapped[bool] = mapped_column(Boolean)
    custodian_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    slot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("slots.id"))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
    event_seq: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("key_count BETWEEN 1 AND 99", name="key_count_range"),)


# ------------------------------------------------------------------ rights and approvals
class AccessRight(Base):
    """A person or a role may draw keys of a group on given weekdays between two times."""

    __tablename__ = "access_rights"

    id: Mapped[uuid.UUID] = _uuid_pk()
    person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    role: Mapped[Role | None] = mapped_column(_enum(Role, "right_role"))
    key_group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("key_groups.id"))
    weekdays: Mapped[str] = mapped_column(String(7), default="1234567")
    start_time: Mapped[dt.time | None] = mapped_column(Time)
    end_time: Mapped[dt.time | None] = mapped_column(Time)
    valid_from: Mapped[dt.datetime | None]
    valid_to: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = _updated_at()

    __table_args__ = (
        CheckConstraint("(person_id IS NULL) <> (role IS NULL)", name="person_xor_role"),
    )


class Approval(Base):
    """K7: a department leader's approval for one draw of a special-room key; used once."""

    __tablename__ = "approvals"

    id: Mapped[uuid.UUID] = _uuid_pk()
    key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("keys.id"))
    requested_for_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    approver_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    status: Mapped[ApprovalStatus] = mapped_column(
        _enum(ApprovalStatus, "approval_status"), default=ApprovalStatus.PENDING
    )
    reason: Mapped[str] = mapped_column(String(200))
    valid_until: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None]
    used_loan_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("loans.id", use_alter=True), unique=True
    )
    updated_at: Mapped[dt.datetime] = _updated_at()

    __table_args__ = (
        CheckConstraint("status <> 'used' OR used_loan_id IS NOT NULL", name="used_has_loan"),
    )


class OwnerAuthorization(Base):
    """K6: an owner's letter of authorization (委托书) for a proxy, over some units, for a period."""

    __tablename__ = "owner_authorizations"

    id: Mapped[uuid.UUID] = _uuid_pk()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owners.id"))
    proxy_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    letter_ref: Mapped[str] = mapped_column(String(64))
    valid_from: Mapped[dt.datetime]
    valid_to: Mapped[dt.datetime]
    requires_phone_confirmation: Mapped[bool] = mapped_column(Boolean, default=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = _updated_at()

    units: Mapped[list[AuthorizationUnit]] = relationship(cascade="all, delete-orphan")
    phone_confirmations: Mapped[list[PhoneConfirmation]] = relationship(
        back_populates="authorization"
    )

    __table_args__ = (CheckConstraint("valid_to > valid_from", name="validity"),)


class AuthorizationUnit(Base):
    __tablename__ = "authorization_units"

    authorization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("owner_authorizations.id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), primary_key=True)


class PhoneConfirmation(Base):
    """K6: the call to the owner before a proxy's first draw: who called, when, outcome."""

    __tablename__ = "phone_confirmations"

    id: Mapped[uuid.UUID] = _uuid_pk()
    authorization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owner_authorizations.id"))
    called_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    called_at: Mapped[dt.datetime]
    outcome: Mapped[PhoneOutcome] = mapped_column(_enum(PhoneOutcome, "phone_outcome"))
    note: Mapped[str | None] = mapped_column(Text)

    authorization: Mapped[OwnerAuthorization] = relationship(back_populates="phone_confirmations")


class DutyShift(Base):
    """K8: who is the on-duty manager between two times."""

    __tablename__ = "duty_roster"

    id: Mapped[uuid.UUID] = _uuid_pk()
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime] = _updated_at()

    person: Mapped[Person] = relationship()

    __table_args__ = (CheckConstraint("ends_at > starts_at", name="shift_order"),)


# -------------------------------------------------------------------------- loans
class Loan(Base):
    """K3/K4/K5/K8: a key out of the cabinet, with whom, allowed by what, and its return."""

    __tablename__ = "loans"

    id: Mapped[uuid.UUID] = _uuid_pk()
    key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("keys.id"))
    cabinet_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cabinets.id"))
    borrower_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    issuer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("people.id"), doc="Co-signing custodian; NULL means the cabinet issued it."
    )
    duty_manager_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    approval_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("approvals.id"))
    authorization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("owner_authorizations.id")
    )
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    reason_code: Mapped[str] = mapped_column(String(32))
    reason_text: Mapped[str | None] = mapped_column(String(500))
    drawn_at: Mapped[dt.datetime]
    due_at: Mapped[dt.datetime]
    draw_event_seq: Mapped[int | None] = mapped_column(BigInteger)
    returned_at: Mapped[dt.datetime | None]
    returned_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    received_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    returned_by_other: Mapped[bool] = mapped_column(Boolean, default=False)
    return_slot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("slots.id"))
    return_event_seq: Mapped[int | None] = mapped_column(BigInteger)

    key: Mapped[Key] = relationship()
    borrower: Mapped[Person] = relationship(foreign_keys=[borrower_id])

    __table_args__ = (
        Index(
            "uq_loans_one_open_per_key",
            "key_id",
            unique=True,
            sqlite_where=text("returned_at IS NULL"),
            postgresql_where=text("returned_at IS NULL"),
        ),
        CheckConstraint("quantity BETWEEN 1 AND 99", name="quantity_range"),
        CheckConstraint("due_at > drawn_at", name="due_after_draw"),
        CheckConstraint("returned_at IS NULL OR returned_at >= drawn_at", name="return_after_draw"),
        CheckConstraint(
            "duty_manager_id IS NULL OR duty_manager_id <> borrower_id", name="two_people"
        ),
    )


# ------------------------------------------------------------------------- alarms (F1)
class Alarm(Base):
    """F1: an alarm or discrepancy has an owner and a state, not just a log line."""

    __tablename__ = "alarms"

    id: Mapped[uuid.UUID] = _uuid_pk()
    kind: Mapped[str] = mapped_column(String(32))
    cabinet_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cabinets.id"))
    slot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("slots.id"))
    key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("keys.id"))
    loan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("loans.id"))
    rule: Mapped[str | None] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    state: Mapped[AlarmState] = mapped_column(
        _enum(AlarmState, "alarm_state"), default=AlarmState.OPEN
    )
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]
    event_seq: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = _updated_at()

    notes: Mapped[list[AlarmNote]] = relationship(back_populates="alarm", order_by="AlarmNote.at")

    __table_args__ = (
        CheckConstraint("state <> 'closed' OR closed_at IS NOT NULL", name="closed_has_time"),
    )


class AlarmNote(Base):
    """A follow-up on an alarm: who, when, what, and the state it moved to."""

    __tablename__ = "alarm_notes"

    id: Mapped[uuid.UUID] = _uuid_pk()
    alarm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alarms.id"))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(Text)
    new_state: Mapped[AlarmState | None] = mapped_column(_enum(AlarmState, "note_state"))

    alarm: Mapped[Alarm] = relationship(back_populates="notes")


# ---------------------------------------------------------------------- handovers (H1)
class Handover(Base):
    """H1: outgoing and incoming staff confirm keys out, open alarms, follow-ups and counts.

    Both sign: the outgoing by a badge tap at the cabinet (``outgoing_card``) or through the
    admin API with their own linked account (``outgoing_account``); the incoming only by a
    badge tap at the cabinet (``incoming_card``), because accepting means standing in front
    of the keys. The report is frozen at the start, so both sign the same content; a
    handover not accepted by ``expires_at`` lapses and has to be started again. At most one
    handover per cabinet is pending at a time (a partial unique index).
    """

    __tablename__ = "handovers"

    id: Mapped[uuid.UUID] = _uuid_pk()
    cabinet_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cabinets.id"))
    outgoing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("people.id"))
    incoming_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    state: Mapped[HandoverState] = mapped_column(
        _enum(HandoverState, "handover_state"), default=HandoverState.STARTED
    )
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[dt.datetime | None]
    report: Mapped[str] = mapped_column(
        Text, doc="Canonical JSON: what happened, handed over, counts."
    )
    notes: Mapped[str | None] = mapped_column(Text)
    outgoing_card: Mapped[str | None] = mapped_column(
        String(32), doc="Badge UID the outgoing staff member tapped to start (at the kiosk)."
    )
    outgoing_account: Mapped[str | None] = mapped_column(
        String(64), doc="Admin account (linked to the outgoing person) that started it."
    )
    incoming_card: Mapped[str | None] = mapped_column(
        String(32), doc="Badge UID the incoming staff member tapped to accept."
    )
    expires_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None] = mapped_column(doc="Cancelled or lapsed at.")
    close_reason: Mapped[str | None] = mapped_column(String(32))
    started_seq: Mapped[int | None] = mapped_column(BigInteger)
    accepted_seq: Mapped[int | None] = mapped_column(BigInteger)
    report_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("reports.id"), doc="The stored, printable report both signed (K9: kept)."
    )

    outgoing: Mapped[Person] = relationship(foreign_keys=[outgoing_id])
    incoming: Mapped[Person | None] = relationship(foreign_keys=[incoming_id])

    __table_args__ = (
        CheckConstraint("incoming_id IS NULL OR incoming_id <> outgoing_id", name="two_people"),
        CheckConstraint(
            "state <> 'accepted' OR (incoming_id IS NOT NULL AND accepted_at IS NOT NULL)",
            name="accepted_signed",
        ),
        CheckConstraint(
            "state <> 'accepted' OR incoming_card IS NOT NULL", name="incoming_tapped"
        ),
        CheckConstraint(
            "outgoing_card IS NOT NULL OR outgoing_account IS NOT NULL", name="outgoing_signed"
        ),
        Index(
            "uq_handovers_one_pending", "cabinet_id", unique=True,
            sqlite_where=text("state = 'started'"), postgresql_where=text("state = 'started'"),
        ),
    )


# ---------------------------------------------------------------------- audit log
class Event(Base):
    """One row of the append-only, hash-chained event log (see ``kiosk.audit``)."""

    __tablename__ = "events"

    cabinet_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime]
    type: Mapped[str] = mapped_column(String(64))
    actors: Mapped[str] = mapped_column(Text, doc="Canonical JSON list of actor ids.")
    slot: Mapped[int | None] = mapped_column(Integer)
    key_number: Mapped[str | None] = mapped_column(String(32))
    decision: Mapped[str | None] = mapped_column(String(16))
    rules: Mapped[str] = mapped_column(String(200), doc="Canonical JSON list of rule ids.")
    payload: Mapped[str] = mapped_column(Text, doc="Canonical JSON object.")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        Index("ix_events_type_at", "type", "at"),
        Index("ix_events_key_number", "key_number"),
        CheckConstraint("seq >= 1", name="seq_positive"),
    )


class AuditHead(Base):
    """The last sequence number and hash per cabinet: the row appenders lock to serialise."""

    __tablename__ = "audit_heads"

    cabinet_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class Checkpoint(Base):
    """A signed statement "the log of this cabinet had this head at this sequence number"."""

    __tablename__ = "checkpoints"

    cabinet_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    head_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[dt.datetime]
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


# The hub's tables (models_fleet) are mapped only where the hub's code or the migrations
# import them: a cabinet never reads them (see models_link).
from kiosk.store import (  # noqa: E402,F401
    models_auth,
    models_link,
    models_notify,
    models_pin,
    models_reports,
)
