"""Hub: returned loans, a department's loans and the merged log by type, each from an index or a sum

Reviewed by hand. Issue 12, "Not yet" (docs/fleet.md), three lists:

- The whole fleet's returned loans walked ``ix_hub_records_kind_time`` newest first and
  passed every key still out on the way (the keys out are the newest draws): 62 ms p95 at
  50.5 M events. ``ix_hub_records_loans_returned`` holds the returned loans alone, in the
  order the page reads them, as ``ix_hub_records_loans_out`` holds the keys out.
- A department leader's loans were counted row by row (the borrower was only inside the
  JSON body). ``hub_records.borrower_id`` is the loan's borrower, written at ingest
  (``kiosk.fleet.record_columns.borrower_of``), and ``hub_borrower_counts`` holds each
  borrower's loans per cabinet and facet, kept by ingest beside ``hub_record_counts``; the
  total is a sum over the department's people. Filled here from the records held.
- The merged log had no filter by type; a rare type would walk most of the log on
  ``ix_hub_events_at``. ``ix_hub_events_rare_type`` (``type, at, cabinet_id, seq``) holds
  only the events that are not of the common types a cabinet writes with every tap, draw
  and return (``kiosk.store.models_fleet.COMMON_EVENT_TYPES``, spelled again below: a
  migration does not follow later edits of the code), so ingest writes most events to
  three indexes as before.

On a hub that already holds a large log, the indexes build under a lock that blocks ingest
for minutes; build them first with ``CREATE INDEX CONCURRENTLY`` (on each partition of
``hub_events``) if the hub must keep ingesting (docs/fleet.md, "Running the hub in
production").

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kiosk.fleet.record_columns import UUID_TEXT, borrower_of

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOANS_RETURNED = "kind = 'loan' AND facet = 'returned'"
COMMON_EVENT_TYPES = ("access.denied", "draw.intent", "draw.resolved", "key.drawn",
                      "key.returned", "return.intent", "return.resolved")
RARE_EVENTS = "type NOT IN ({})".format(", ".join(f"'{t}'" for t in COMMON_EVENT_TYPES))

# A body jsonb cannot read (NaN, from before ingest refused it) keeps a null borrower.
PG_JSON_FUNCTION = """
CREATE FUNCTION pg_temp.hub_record_json(t text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  RETURN t::jsonb;
EXCEPTION WHEN others THEN RETURN NULL;
END $$
"""
PG_BACKFILL = f"""
UPDATE hub_records r SET borrower_id = (src.b ->> 'borrower_id')::uuid
FROM (SELECT record_id, pg_temp.hub_record_json(body) AS b FROM hub_records
      WHERE kind = 'loan') AS src
WHERE r.kind = 'loan' AND r.record_id = src.record_id
  AND jsonb_typeof(src.b) = 'object' AND jsonb_typeof(src.b -> 'borrower_id') = 'string'
  AND (src.b ->> 'borrower_id') ~ '^{UUID_TEXT.pattern}$'
"""
COUNTS = """
INSERT INTO hub_borrower_counts (borrower_id, facet, cabinet_id, n)
SELECT borrower_id, coalesce(facet, ''), cabinet_id, count(*) FROM hub_records
WHERE kind = 'loan' AND borrower_id IS NOT NULL
GROUP BY borrower_id, coalesce(facet, ''), cabinet_id
"""


def _backfill_rows(conn: sa.Connection) -> None:
    """Elsewhere (SQLite, test data only): by the function ingest uses."""
    records = sa.table("hub_records", sa.column("kind", sa.String()),
                       sa.column("record_id", sa.Uuid()), sa.column("body", sa.Text()),
                       sa.column("borrower_id", sa.Uuid()))
    for record_id, body in conn.execute(sa.select(records.c.record_id, records.c.body)
                                        .where(records.c.kind == "loan")).all():
        try:
            parsed = json.loads(body)
        except ValueError:
            continue
        borrower = borrower_of("loan", parsed)
        if borrower is not None:
            conn.execute(records.update().where(records.c.kind == "loan",
                                                records.c.record_id == record_id)
                         .values(borrower_id=borrower))


def _counts_portably(conn: sa.Connection) -> None:
    records = sa.table("hub_records", sa.column("kind", sa.String()),
                       sa.column("cabinet_id", sa.String()), sa.column("facet", sa.String()),
                       sa.column("borrower_id", sa.Uuid()))
    counts = Counter(
        (borrower, facet or "", cabinet) for borrower, facet, cabinet in conn.execute(
            sa.select(records.c.borrower_id, records.c.facet, records.c.cabinet_id).where(
                records.c.kind == "loan", records.c.borrower_id.is_not(None))))
    if counts:
        table = sa.table("hub_borrower_counts", sa.column("borrower_id", sa.Uuid()),
                         sa.column("facet", sa.String()), sa.column("cabinet_id", sa.String()),
                         sa.column("n", sa.BigInteger()))
        conn.execute(table.insert(), [
            {"borrower_id": b, "facet": f, "cabinet_id": c, "n": n}
            for (b, f, c), n in counts.items()])


def upgrade() -> None:
    with op.batch_alter_table("hub_records") as batch:
        batch.add_column(sa.Column("borrower_id", sa.Uuid(), nullable=True))
    op.create_table(
        "hub_borrower_counts",
        sa.Column("borrower_id", sa.Uuid(), nullable=False),
        sa.Column("facet", sa.String(length=64), nullable=False),
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("borrower_id", "facet", "cabinet_id",
                                name=op.f("pk_hub_borrower_counts")),
    )
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute(PG_JSON_FUNCTION)
        op.execute(PG_BACKFILL)
        op.execute("DROP FUNCTION pg_temp.hub_record_json(text)")
        op.execute(COUNTS)
    else:
        _backfill_rows(conn)
        _counts_portably(conn)
    op.create_index("ix_hub_records_loans_returned", "hub_records",
                    ["occurred_at", "record_id"], postgresql_include=["cabinet_id"],
                    postgresql_where=sa.text(LOANS_RETURNED),
                    sqlite_where=sa.text(LOANS_RETURNED))
    op.create_index("ix_hub_events_rare_type", "hub_events", ["type", "at", "cabinet_id", "seq"],
                    postgresql_where=sa.text(RARE_EVENTS), sqlite_where=sa.text(RARE_EVENTS))


def downgrade() -> None:
    op.drop_index("ix_hub_events_rare_type", table_name="hub_events")
    op.drop_index("ix_hub_records_loans_returned", table_name="hub_records")
    op.drop_table("hub_borrower_counts")
    with op.batch_alter_table("hub_records") as batch:
        batch.drop_column("borrower_id")
