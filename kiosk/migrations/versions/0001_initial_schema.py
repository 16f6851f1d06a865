"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 04:45:48.161250
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_heads",
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("cabinet_id", name=op.f("pk_audit_heads")),
    )
    op.create_table(
        "cabinets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cabinets")),
        sa.UniqueConstraint("code", name=op.f("uq_cabinets_code")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("cabinet_id", "seq", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "departments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=True),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_departments")),
        sa.UniqueConstraint("code", name=op.f("uq_departments_code")),
    )
    op.create_table(
        "events",
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("actors", sa.Text(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=True),
        sa.Column("key_number", sa.String(length=32), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("rules", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_events_seq_positive")),
        sa.PrimaryKeyConstraint("cabinet_id", "seq", name=op.f("pk_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_events_hash")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_key_number", ["key_number"], unique=False)
        batch_op.create_index("ix_events_type_at", ["type", "at"], unique=False)

    op.create_table(
        "key_groups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("requires_cosign", sa.Boolean(), nullable=False),
        sa.Column("loan_minutes", sa.Integer(), nullable=True),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "loan_minutes IS NULL OR loan_minutes > 0",
            name=op.f("ck_key_groups_loan_minutes_positive"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_groups")),
        sa.UniqueConstraint("code", name=op.f("uq_key_groups_code")),
    )
    op.create_table(
        "owners",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("address", sa.String(length=200), nullable=True),
        sa.Column("employer", sa.String(length=200), nullable=True),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owners")),
    )
    op.create_table(
        "people",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("staff_no", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("department_id", sa.Uuid(), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name=op.f("fk_people_department_id_departments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint("staff_no", name=op.f("uq_people_staff_no")),
    )
    op.create_table(
        "slots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("cabinet_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.CheckConstraint("number >= 1", name=op.f("ck_slots_number_positive")),
        sa.ForeignKeyConstraint(
            ["cabinet_id"], ["cabinets.id"], name=op.f("fk_slots_cabinet_id_cabinets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slots")),
        sa.UniqueConstraint("cabinet_id", "number", name=op.f("uq_slots_cabinet_id_number")),
    )
    op.create_table(
        "units",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("room_number", sa.String(length=32), nullable=False),
        sa.Column("floor", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "office",
                "public_area",
                "equipment",
                name="unit_kind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("special", sa.Boolean(), nullable=False),
        sa.Column("vacant", sa.Boolean(), nullable=False),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("floor BETWEEN -10 AND 200", name=op.f("ck_units_floor_range")),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], name=op.f("fk_units_owner_id_owners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_units")),
        sa.UniqueConstraint("room_number", name=op.f("uq_units_room_number")),
    )
    op.create_table(
        "access_rights",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=True),
        sa.Column(
            "role",
            sa.Enum(
                "staff",
                "custodian",
                "dept_leader",
                "duty_manager",
                "supervisor",
                "admin",
                "auditor",
                name="right_role",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=True,
        ),
        sa.Column("key_group_id", sa.Uuid(), nullable=False),
        sa.Column("weekdays", sa.String(length=7), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=True),
        sa.Column("end_time", sa.Time(), nullable=True),
        sa.Column("valid_from", kiosk.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("valid_to", kiosk.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(person_id IS NULL) <> (role IS NULL)", name=op.f("ck_access_rights_person_xor_role")
        ),
        sa.ForeignKeyConstraint(
            ["key_group_id"],
            ["key_groups.id"],
            name=op.f("fk_access_rights_key_group_id_key_groups"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_access_rights_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_rights")),
    )
    op.create_table(
        "cards",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("uid", sa.String(length=20), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "staff",
                "owner_proxy",
                name="card_kind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "lost",
                "revoked",
                name="card_status",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("valid_from", kiosk.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("valid_to", kiosk.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("uid = upper(uid)", name=op.f("ck_cards_uid_upper_hex")),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_from IS NULL OR valid_to > valid_from",
            name=op.f("ck_cards_validity"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_cards_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cards")),
        sa.UniqueConstraint("uid", name=op.f("uq_cards_uid")),
    )
    op.create_table(
        "duty_roster",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_duty_roster_shift_order")),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_duty_roster_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duty_roster")),
    )
    op.create_table(
        "handovers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("cabinet_id", sa.Uuid(), nullable=False),
        sa.Column("outgoing_id", sa.Uuid(), nullable=False),
        sa.Column("incoming_id", sa.Uuid(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "started",
                "accepted",
                "cancelled",
                name="handover_state",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("started_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state <> 'accepted' OR (incoming_id IS NOT NULL AND accepted_at IS NOT NULL)",
            name=op.f("ck_handovers_accepted_signed"),
        ),
        sa.CheckConstraint(
            "incoming_id IS NULL OR incoming_id <> outgoing_id",
            name=op.f("ck_handovers_two_people"),
        ),
        sa.ForeignKeyConstraint(
            ["cabinet_id"], ["cabinets.id"], name=op.f("fk_handovers_cabinet_id_cabinets")
        ),
        sa.ForeignKeyConstraint(
            ["incoming_id"], ["people.id"], name=op.f("fk_handovers_incoming_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["outgoing_id"], ["people.id"], name=op.f("fk_handovers_outgoing_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handovers")),
    )
    op.create_table(
        "keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_number", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=True),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column(
            "category",
            sa.Enum(
                "unit",
                "public_area",
                "equipment",
                "master",
                "other",
                name="key_category",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("copies", sa.Integer(), nullable=False),
        sa.Column("fob_tag", sa.String(length=32), nullable=True),
        sa.Column("home_slot_id", sa.Uuid(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "retired",
                name="key_status",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("copies BETWEEN 1 AND 99", name=op.f("ck_keys_copies_range")),
        sa.ForeignKeyConstraint(
            ["group_id"], ["key_groups.id"], name=op.f("fk_keys_group_id_key_groups")
        ),
        sa.ForeignKeyConstraint(
            ["home_slot_id"], ["slots.id"], name=op.f("fk_keys_home_slot_id_slots")
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_keys_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keys")),
        sa.UniqueConstraint("fob_tag", name=op.f("uq_keys_fob_tag")),
        sa.UniqueConstraint("home_slot_id", name=op.f("uq_keys_home_slot_id")),
        sa.UniqueConstraint("key_number", name=op.f("uq_keys_key_number")),
    )
    op.create_table(
        "owner_authorizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("proxy_id", sa.Uuid(), nullable=False),
        sa.Column("letter_ref", sa.String(length=64), nullable=False),
        sa.Column("valid_from", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("valid_to", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("requires_phone_confirmation", sa.Boolean(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("valid_to > valid_from", name=op.f("ck_owner_authorizations_validity")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_owner_authorizations_owner_id_owners")
        ),
        sa.ForeignKeyConstraint(
            ["proxy_id"], ["people.id"], name=op.f("fk_owner_authorizations_proxy_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owner_authorizations")),
    )
    op.create_table(
        "person_roles",
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "staff",
                "custodian",
                "dept_leader",
                "duty_manager",
                "supervisor",
                "admin",
                "auditor",
                name="role",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_person_roles_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("person_id", "role", name=op.f("pk_person_roles")),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("requested_for_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by_id", sa.Uuid(), nullable=True),
        sa.Column("approver_id", sa.Uuid(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "approved",
                "rejected",
                "expired",
                "used",
                name="approval_status",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("valid_until", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("used_loan_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status <> 'used' OR used_loan_id IS NOT NULL", name=op.f("ck_approvals_used_has_loan")
        ),
        sa.ForeignKeyConstraint(
            ["approver_id"], ["people.id"], name=op.f("fk_approvals_approver_id_people")
        ),
        sa.ForeignKeyConstraint(["key_id"], ["keys.id"], name=op.f("fk_approvals_key_id_keys")),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["people.id"], name=op.f("fk_approvals_requested_by_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["requested_for_id"], ["people.id"], name=op.f("fk_approvals_requested_for_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint("used_loan_id", name=op.f("uq_approvals_used_loan_id")),
    )
    op.create_table(
        "authorization_units",
        sa.Column("authorization_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["owner_authorizations.id"],
            name=op.f("fk_authorization_units_authorization_id_owner_authorizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_authorization_units_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("authorization_id", "unit_id", name=op.f("pk_authorization_units")),
    )
    op.create_table(
        "intake_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("delivered_by_name", sa.String(length=100), nullable=False),
        sa.Column("delivered_by_department", sa.String(length=100), nullable=False),
        sa.Column("room_number", sa.String(length=32), nullable=False),
        sa.Column("key_count", sa.Integer(), nullable=False),
        sa.Column("deliverer_confirmed", sa.Boolean(), nullable=False),
        sa.Column("custodian_id", sa.Uuid(), nullable=False),
        sa.Column("slot_id", sa.Uuid(), nullable=True),
        sa.Column("received_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("event_seq", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "key_count BETWEEN 1 AND 99", name=op.f("ck_intake_records_key_count_range")
        ),
        sa.ForeignKeyConstraint(
            ["custodian_id"], ["people.id"], name=op.f("fk_intake_records_custodian_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["key_id"], ["keys.id"], name=op.f("fk_intake_records_key_id_keys")
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"], ["slots.id"], name=op.f("fk_intake_records_slot_id_slots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_records")),
    )
    op.create_table(
        "phone_confirmations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("authorization_id", sa.Uuid(), nullable=False),
        sa.Column("called_by_id", sa.Uuid(), nullable=False),
        sa.Column("called_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "confirmed",
                "refused",
                "no_answer",
                name="phone_outcome",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["owner_authorizations.id"],
            name=op.f("fk_phone_confirmations_authorization_id_owner_authorizations"),
        ),
        sa.ForeignKeyConstraint(
            ["called_by_id"], ["people.id"], name=op.f("fk_phone_confirmations_called_by_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_confirmations")),
    )
    op.create_table(
        "loans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("cabinet_id", sa.Uuid(), nullable=False),
        sa.Column("borrower_id", sa.Uuid(), nullable=False),
        sa.Column("issuer_id", sa.Uuid(), nullable=True),
        sa.Column("duty_manager_id", sa.Uuid(), nullable=True),
        sa.Column("approval_id", sa.Uuid(), nullable=True),
        sa.Column("authorization_id", sa.Uuid(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("reason_text", sa.String(length=500), nullable=True),
        sa.Column("drawn_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("draw_event_seq", sa.BigInteger(), nullable=True),
        sa.Column("returned_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("returned_by_id", sa.Uuid(), nullable=True),
        sa.Column("received_by_id", sa.Uuid(), nullable=True),
        sa.Column("returned_by_other", sa.Boolean(), nullable=False),
        sa.Column("return_slot_id", sa.Uuid(), nullable=True),
        sa.Column("return_event_seq", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("due_at > drawn_at", name=op.f("ck_loans_due_after_draw")),
        sa.CheckConstraint(
            "duty_manager_id IS NULL OR duty_manager_id <> borrower_id",
            name=op.f("ck_loans_two_people"),
        ),
        sa.CheckConstraint("quantity BETWEEN 1 AND 99", name=op.f("ck_loans_quantity_range")),
        sa.CheckConstraint(
            "returned_at IS NULL OR returned_at >= drawn_at",
            name=op.f("ck_loans_return_after_draw"),
        ),
        sa.ForeignKeyConstraint(
            ["approval_id"], ["approvals.id"], name=op.f("fk_loans_approval_id_approvals")
        ),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["owner_authorizations.id"],
            name=op.f("fk_loans_authorization_id_owner_authorizations"),
        ),
        sa.ForeignKeyConstraint(
            ["borrower_id"], ["people.id"], name=op.f("fk_loans_borrower_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["cabinet_id"], ["cabinets.id"], name=op.f("fk_loans_cabinet_id_cabinets")
        ),
        sa.ForeignKeyConstraint(
            ["duty_manager_id"], ["people.id"], name=op.f("fk_loans_duty_manager_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["people.id"], name=op.f("fk_loans_issuer_id_people")
        ),
        sa.ForeignKeyConstraint(["key_id"], ["keys.id"], name=op.f("fk_loans_key_id_keys")),
        sa.ForeignKeyConstraint(
            ["received_by_id"], ["people.id"], name=op.f("fk_loans_received_by_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["return_slot_id"], ["slots.id"], name=op.f("fk_loans_return_slot_id_slots")
        ),
        sa.ForeignKeyConstraint(
            ["returned_by_id"], ["people.id"], name=op.f("fk_loans_returned_by_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loans")),
    )
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.create_index(
            "uq_loans_one_open_per_key",
            ["key_id"],
            unique=True,
            sqlite_where=sa.text("returned_at IS NULL"),
            postgresql_where=sa.text("returned_at IS NULL"),
        )

    # approvals.used_loan_id and loans.approval_id point at each other:
    # add this foreign key once both tables exist.
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_approvals_used_loan_id_loans"), "loans", ["used_loan_id"], ["id"]
        )

    op.create_table(
        "alarms",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("cabinet_id", sa.Uuid(), nullable=True),
        sa.Column("slot_id", sa.Uuid(), nullable=True),
        sa.Column("key_id", sa.Uuid(), nullable=True),
        sa.Column("loan_id", sa.Uuid(), nullable=True),
        sa.Column("rule", sa.String(length=8), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "open",
                "handled",
                "closed",
                name="alarm_state",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("raised_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("event_seq", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state <> 'closed' OR closed_at IS NOT NULL", name=op.f("ck_alarms_closed_has_time")
        ),
        sa.ForeignKeyConstraint(
            ["cabinet_id"], ["cabinets.id"], name=op.f("fk_alarms_cabinet_id_cabinets")
        ),
        sa.ForeignKeyConstraint(["key_id"], ["keys.id"], name=op.f("fk_alarms_key_id_keys")),
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], name=op.f("fk_alarms_loan_id_loans")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["people.id"], name=op.f("fk_alarms_owner_id_people")
        ),
        sa.ForeignKeyConstraint(["slot_id"], ["slots.id"], name=op.f("fk_alarms_slot_id_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
    )
    op.create_table(
        "alarm_notes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("alarm_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("at", kiosk.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "new_state",
            sa.Enum(
                "open",
                "handled",
                "closed",
                name="note_state",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarms.id"], name=op.f("fk_alarm_notes_alarm_id_alarms")
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["people.id"], name=op.f("fk_alarm_notes_author_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_notes")),
    )


def downgrade() -> None:
    op.drop_table("alarm_notes")
    op.drop_table("alarms")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_approvals_used_loan_id_loans"), type_="foreignkey")

    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_loans_one_open_per_key",
            sqlite_where=sa.text("returned_at IS NULL"),
            postgresql_where=sa.text("returned_at IS NULL"),
        )

    op.drop_table("loans")
    op.drop_table("phone_confirmations")
    op.drop_table("intake_records")
    op.drop_table("authorization_units")
    op.drop_table("approvals")
    op.drop_table("person_roles")
    op.drop_table("owner_authorizations")
    op.drop_table("keys")
    op.drop_table("handovers")
    op.drop_table("duty_roster")
    op.drop_table("cards")
    op.drop_table("access_rights")
    op.drop_table("units")
    op.drop_table("slots")
    op.drop_table("people")
    op.drop_table("owners")
    op.drop_table("key_groups")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_type_at")
        batch_op.drop_index("ix_events_key_number")

    op.drop_table("events")
    op.drop_table("departments")
    op.drop_table("checkpoints")
    op.drop_table("cabinets")
    op.drop_table("audit_heads")
