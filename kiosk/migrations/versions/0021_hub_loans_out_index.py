"""Fleet: an index of the keys out now, for the hub's lists by site

Reviewed by hand. Issue 12: the hub's most read list, keys out by site or for the whole
fleet (``kiosk.fleet.site_lists``), reads loan records not returned yet, a few rows among
every loan the fleet ever made. A partial index holds only those, on PostgreSQL (the hub's
engine) by the JSON body's ``returned_at``; SQLite gets the same predicate with its JSON
function so models and migrations agree.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOANS_OUT_PG = "kind = 'loan' AND ((body)::jsonb ->> 'returned_at') IS NULL"
LOANS_OUT_SQLITE = "kind = 'loan' AND json_extract(body, '$.returned_at') IS NULL"


def upgrade() -> None:
    op.create_index("ix_hub_records_loans_out", "hub_records", ["cabinet_id"],
                    postgresql_where=sa.text(LOANS_OUT_PG),
                    sqlite_where=sa.text(LOANS_OUT_SQLITE))


def downgrade() -> None:
    op.drop_index("ix_hub_records_loans_out", table_name="hub_records")
