"""Hub: the keys out counted per due hour, for the overdue total (K9)

Reviewed by hand. Issue 12, "Not yet": every list total at the hub is a sum of the counts
ingest keeps (0024) but the overdue keys', which depends on the clock and was counted row by
row over the keys out (55 ms at 50.5 M events). ``hub_due_counts`` holds, per cabinet, how
many of its keys out fall due in each hour (whole hours since 1970-01-01 UTC), kept by
ingest in the statement that writes the records; the overdue total is the sum of the hours
that have ended plus a count of the loans due so far in the current hour, which
``ix_hub_records_loans_due`` (the keys out by due time) serves, as it serves the overdue
page when few keys out are due.

Filled here from the loans out already held, with the bucket rule ingest uses
(``kiosk.fleet.record_columns.due_hour``).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 21:00:00
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types
from kiosk.fleet.record_columns import PG_DUE_HOUR, due_hour

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOANS_OUT = "kind = 'loan' AND facet = 'out'"
PG_BACKFILL = f"""
INSERT INTO hub_due_counts (cabinet_id, due_hour, n)
SELECT cabinet_id, {PG_DUE_HOUR.format(column="due_at")}, count(*) FROM hub_records
WHERE {LOANS_OUT} AND due_at IS NOT NULL
GROUP BY 1, 2
"""


def _backfill_rows(conn: sa.Connection) -> None:
    """Elsewhere (SQLite, test data only): by the same function ingest uses."""
    records = sa.table("hub_records", sa.column("kind", sa.String()),
                       sa.column("cabinet_id", sa.String()), sa.column("facet", sa.String()),
                       sa.column("due_at", kiosk.store.types.UTCDateTime()))
    counts = Counter(
        (cabinet_id, due_hour(due)) for cabinet_id, due in conn.execute(
            sa.select(records.c.cabinet_id, records.c.due_at).where(
                records.c.kind == "loan", records.c.facet == "out",
                records.c.due_at.is_not(None))))
    if counts:
        table = sa.table("hub_due_counts", sa.column("cabinet_id", sa.String()),
                         sa.column("due_hour", sa.BigInteger()), sa.column("n", sa.BigInteger()))
        conn.execute(table.insert(), [{"cabinet_id": c, "due_hour": h, "n": n}
                                      for (c, h), n in sorted(counts.items())])


def upgrade() -> None:
    op.create_table(
        "hub_due_counts",
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("due_hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cabinet_id", "due_hour", name=op.f("pk_hub_due_counts")),
    )
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute(PG_BACKFILL)
    else:
        _backfill_rows(conn)
    op.create_index("ix_hub_records_loans_due", "hub_records", ["due_at"],
                    postgresql_include=["occurred_at", "record_id", "cabinet_id"],
                    postgresql_where=sa.text(LOANS_OUT), sqlite_where=sa.text(LOANS_OUT))


def downgrade() -> None:
    op.drop_index("ix_hub_records_loans_due", table_name="hub_records")
    op.drop_table("hub_due_counts")
