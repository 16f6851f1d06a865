"""Hub: an index of the fleet's events by time, for a site's merged log

Reviewed by hand. Issue 12: the merged log (``GET /hub/v1/site-events``,
``kiosk.fleet.site_log``) lists the events of every cabinet of a site, or of the whole
fleet, newest first by the time each cabinet wrote, then by cabinet and seq, and pages by
that position. ``(at, cabinet_id, seq)`` is that order: a page walks the index from its end
(created on the partitioned parent, so on every partition; PostgreSQL merges the
partitions' walks), and a site's or a cabinet's page checks the cabinet inside the index
instead of sorting the site's whole log.

On a hub that already holds a large log, this builds under a lock that blocks ingest for
minutes; build it first with ``CREATE INDEX CONCURRENTLY`` on each partition if the hub
must keep ingesting (docs/fleet.md, "Running the hub in production").

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 17:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_hub_events_at", "hub_events", ["at", "cabinet_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_hub_events_at", table_name="hub_events")
