"""Hub: typed times and state of the cabinets' records, and their counts, for the lists

Reviewed by hand. Issue 12, "Not yet": the hub's lists by site (loans, cabinet alarms,
reports) filtered and ordered by fields inside each record's JSON body, so the whole
fleet's loans sorted and counted every loan (1.5 s at 200,000). ``hub_records`` gains
``occurred_at`` (the record's own time: a loan's draw, an alarm's raising, a report's
generation), ``due_at`` (a loan's) and ``facet`` (what its list narrows by: a loan's
out/returned, an alarm's state, a report's kind), written at ingest
(``kiosk.fleet.record_columns``) and filled here for the records already held, with the
same rules: a time that is not ISO 8601 is null, one without an offset is UTC.
``hub_record_counts`` holds each cabinet's count per kind and facet, kept by ingest, so a
list's total is a sum over the cabinets in view instead of a count of millions of rows.

The indexes: a cabinet's records of a kind newest first; the fleet's (and a site's, the
cabinet checked inside the index) newest first; the loans out now (partial, replacing the
JSON-predicate one of 0021). ``ix_hub_records_cabinet`` of 0012 is a prefix of the first
and goes. On a hub holding millions of records this migration rewrites ``hub_records``
under a lock (minutes); see docs/fleet.md, "Running the hub in production".

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 17:30:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types
from kiosk.fleet.record_columns import FACET_MAX, ISO_TIME, typed_columns

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOANS_OUT = "kind = 'loan' AND facet = 'out'"
OLD_LOANS_OUT_PG = "kind = 'loan' AND ((body)::jsonb ->> 'returned_at') IS NULL"
OLD_LOANS_OUT_SQLITE = "kind = 'loan' AND json_extract(body, '$.returned_at') IS NULL"

# PostgreSQL fills the columns in one statement; a time of the right shape that is still
# no time (2026-02-30) is null, as at ingest, instead of failing the migration.
PG_TIME_FUNCTION = f"""
CREATE FUNCTION pg_temp.hub_record_time(t text) RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
  IF t IS NULL OR t !~ '^{ISO_TIME.pattern}$' THEN RETURN NULL; END IF;
  RETURN t::timestamptz;
EXCEPTION WHEN others THEN RETURN NULL;
END $$
"""
# A body ``jsonb`` cannot read (NaN or Infinity, which the hub's JSON parser took before it
# refused them at ingest) keeps its record with null columns instead of failing the upgrade.
PG_JSON_FUNCTION = """
CREATE FUNCTION pg_temp.hub_record_json(t text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  RETURN t::jsonb;
EXCEPTION WHEN others THEN RETURN NULL;
END $$
"""
PG_BACKFILL = f"""
UPDATE hub_records r SET
  occurred_at = pg_temp.hub_record_time(src.b ->> src.time_field),
  due_at = CASE WHEN r.kind = 'loan' THEN pg_temp.hub_record_time(src.b ->> 'due_at') END,
  facet = CASE
      WHEN src.b IS NULL OR jsonb_typeof(src.b) <> 'object' THEN NULL
      WHEN r.kind = 'loan' THEN CASE WHEN coalesce(jsonb_typeof(src.b -> 'returned_at'),
                                                   'null') = 'null'
                                     THEN 'out' ELSE 'returned' END
      WHEN jsonb_typeof(src.b -> src.facet_field) = 'string'
           AND length(src.b ->> src.facet_field) <= {FACET_MAX}
          THEN src.b ->> src.facet_field
  END
FROM (SELECT kind, record_id, pg_temp.hub_record_json(body) AS b,
             CASE kind WHEN 'loan' THEN 'drawn_at' WHEN 'alarm' THEN 'raised_at'
                 WHEN 'report' THEN 'generated_at' WHEN 'intake' THEN 'received_at'
                 WHEN 'handover' THEN 'started_at' WHEN 'alarm_note' THEN 'at' END
                 AS time_field,
             CASE kind WHEN 'alarm' THEN 'state' WHEN 'handover' THEN 'state'
                 WHEN 'report' THEN 'kind' END AS facet_field
      FROM hub_records) AS src
WHERE r.kind = src.kind AND r.record_id = src.record_id
"""
COUNTS = """
INSERT INTO hub_record_counts (cabinet_id, kind, facet, n)
SELECT cabinet_id, kind, coalesce(facet, ''), count(*) FROM hub_records
GROUP BY cabinet_id, kind, coalesce(facet, '')
"""


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _backfill_rows(conn: sa.Connection) -> None:
    """Elsewhere (SQLite, where a hub holds test data only): row by row, by the same code
    ingest uses."""
    records = sa.table("hub_records", sa.column("kind", sa.String()),
                       sa.column("record_id", sa.Uuid()), sa.column("body", sa.Text()),
                       sa.column("occurred_at", kiosk.store.types.UTCDateTime()),
                       sa.column("due_at", kiosk.store.types.UTCDateTime()),
                       sa.column("facet", sa.String()))
    for kind, record_id, body in conn.execute(
            sa.select(records.c.kind, records.c.record_id, records.c.body)).all():
        try:  # as on PostgreSQL: NaN or Infinity is no JSON, the columns stay null
            parsed = json.loads(body, parse_constant=_not_json)
        except ValueError:
            parsed = None
        conn.execute(records.update().where(records.c.kind == kind,
                                            records.c.record_id == record_id)
                     .values(**typed_columns(kind, parsed)))


def upgrade() -> None:
    with op.batch_alter_table("hub_records") as batch:
        batch.add_column(sa.Column("occurred_at", kiosk.store.types.UTCDateTime(),
                                   nullable=True))
        batch.add_column(sa.Column("due_at", kiosk.store.types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("facet", sa.String(length=FACET_MAX), nullable=True))
    op.create_table(
        "hub_record_counts",
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("facet", sa.String(length=FACET_MAX), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cabinet_id", "kind", "facet",
                                name=op.f("pk_hub_record_counts")),
    )
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("SET LOCAL TimeZone = 'UTC'")  # a time without an offset is UTC
        op.execute(PG_TIME_FUNCTION)
        op.execute(PG_JSON_FUNCTION)
        op.execute(PG_BACKFILL)
        op.execute("DROP FUNCTION pg_temp.hub_record_json(text)")
        op.execute("DROP FUNCTION pg_temp.hub_record_time(text)")
    else:
        _backfill_rows(conn)
    op.execute(COUNTS)
    op.drop_index("ix_hub_records_loans_out", table_name="hub_records")
    op.drop_index("ix_hub_records_cabinet", table_name="hub_records")
    op.create_index("ix_hub_records_cabinet_time", "hub_records",
                    ["cabinet_id", "kind", "occurred_at", "record_id"],
                    postgresql_include=["facet"])
    op.create_index("ix_hub_records_kind_time", "hub_records",
                    ["kind", "occurred_at", "record_id"],
                    postgresql_include=["cabinet_id", "facet"])
    op.create_index("ix_hub_records_loans_out", "hub_records",
                    ["occurred_at", "record_id"],
                    postgresql_include=["cabinet_id", "due_at"],
                    postgresql_where=sa.text(LOANS_OUT), sqlite_where=sa.text(LOANS_OUT))


def downgrade() -> None:
    op.drop_index("ix_hub_records_loans_out", table_name="hub_records")
    op.drop_index("ix_hub_records_kind_time", table_name="hub_records")
    op.drop_index("ix_hub_records_cabinet_time", table_name="hub_records")
    op.drop_table("hub_record_counts")
    with op.batch_alter_table("hub_records") as batch:
        batch.drop_column("facet")
        batch.drop_column("due_at")
        batch.drop_column("occurred_at")
    op.create_index("ix_hub_records_cabinet", "hub_records", ["cabinet_id", "kind"])
    op.create_index("ix_hub_records_loans_out", "hub_records", ["cabinet_id"],
                    postgresql_where=sa.text(OLD_LOANS_OUT_PG),
                    sqlite_where=sa.text(OLD_LOANS_OUT_SQLITE))
