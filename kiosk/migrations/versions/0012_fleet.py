"""The fleet: hub sites, enrolled cabinets, ingested logs (partitioned), alarms; cabinet link

Reviewed by hand. On PostgreSQL ``hub_events`` is declared ``PARTITION BY HASH
(cabinet_id)`` with 16 partitions (no partition maintenance, one cabinet per partition
read); SQLite gets a plain table (a cabinet never writes it; the schema stays one history).

Revision ID: 0012
Revises: 0007
Create Date: 2026-12-05 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0012"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTITIONS = 16
_TIME = kiosk.store.types.UTCDateTime


def _event_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("cabinet_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("at", _TIME(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("actors", sa.Text(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=True),
        sa.Column("key_number", sa.String(32), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("rules", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("received_at", _TIME(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "hub_sites",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_sites")),
        sa.UniqueConstraint("code", name=op.f("uq_hub_sites_code")),
    )
    op.create_table(
        "hub_cabinets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("cabinet_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("enrolled_at", _TIME(), nullable=False),
        sa.Column("revoked_at", _TIME(), nullable=True),
        sa.Column("acked_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", _TIME(), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["hub_sites.id"],
                                name=op.f("fk_hub_cabinets_site_id_hub_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_cabinets")),
        sa.UniqueConstraint("cabinet_id", name=op.f("uq_hub_cabinets_cabinet_id")),
    )
    op.create_table(
        "hub_enrolment_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("expires_at", _TIME(), nullable=False),
        sa.Column("used_at", _TIME(), nullable=True),
        sa.Column("used_by", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["hub_sites.id"],
                                name=op.f("fk_hub_enrolment_codes_site_id_hub_sites")),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_hub_enrolment_codes")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_table(
            "hub_events", *_event_columns(),
            sa.PrimaryKeyConstraint("cabinet_id", "seq", name=op.f("pk_hub_events")),
            postgresql_partition_by="HASH (cabinet_id)",
        )
        for n in range(PARTITIONS):
            op.execute(
                f"CREATE TABLE hub_events_p{n:02d} PARTITION OF hub_events "
                f"FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {n})"
            )
    else:
        op.create_table(
            "hub_events", *_event_columns(),
            sa.PrimaryKeyConstraint("cabinet_id", "seq", name=op.f("pk_hub_events")),
        )
    op.create_table(
        "hub_checkpoints",
        sa.Column("cabinet_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("signed_at", _TIME(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("cabinet_id", "seq", name=op.f("pk_hub_checkpoints")),
    )
    op.create_table(
        "hub_records",
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("cabinet_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_at", _TIME(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "record_id", name=op.f("pk_hub_records")),
    )
    op.create_index("ix_hub_records_cabinet", "hub_records", ["cabinet_id", "kind"])
    op.create_table(
        "hub_alarms",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("cabinet_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("raised_at", _TIME(), nullable=False),
        sa.Column("last_at", _TIME(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_alarms")),
    )
    op.create_table(
        "hub_nonces",
        sa.Column("cabinet_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("at", _TIME(), nullable=False),
        sa.PrimaryKeyConstraint("cabinet_id", "nonce", name=op.f("pk_hub_nonces")),
    )
    op.create_table(
        "hub_config_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_config_head")),
    )
    op.execute("INSERT INTO hub_config_head (id, version) VALUES (1, 0)")
    op.create_table(
        "hub_config_changes",
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("row_id", sa.Uuid(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("version", "entity", "row_id", name=op.f("pk_hub_config_changes")),
    )
    op.create_table(
        "fleet_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_fleet_state")),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # made by `kiosk hub` at start (kiosk/fleet/changes.py), on a hub's database only
        for table in ("departments", "people", "cards", "key_groups", "access_rights",
                      "duty_roster", "person_roles"):
            op.execute(f"DROP TRIGGER IF EXISTS hub_track_{table} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS hub_track_change()")
        op.execute("DROP FUNCTION IF EXISTS hub_track_person_role()")
    for table in ("fleet_state", "hub_config_changes", "hub_config_head", "hub_nonces",
                  "hub_alarms", "hub_records", "hub_checkpoints", "hub_events",
                  "hub_enrolment_codes", "hub_cabinets", "hub_sites"):
        op.drop_table(table)
