"""Hub: the indexes the fleet's list queries need at 50 million events

Reviewed by hand. Issue 12, "Scale": measured on 50 M events across 1,000 cabinets
(bench/bench_fleet_scale.py). A cabinet's events of one type (``GET /hub/v1/events
?cabinet_id=&type=&after_seq=``) walked the cabinet's whole history through the primary key
when the type is rare; ``(cabinet_id, type, seq)`` serves the page in order (created on the
partitioned parent, so on every partition). A site's records of one kind, oldest or newest
first (``GET /hub/v1/records?site=&kind=``), sorted every record of the site's cabinets;
``(kind, received_at, cabinet_id)`` walks them in order and checks the cabinet inside the
index. A cabinet's open alarm of one kind is looked up at every refusal, and the nonce
pruner deletes by time: both were scans.

On a hub that already holds a large log, this migration builds the indexes under a lock that
blocks ingest for minutes; build them first with ``CREATE INDEX CONCURRENTLY`` on each
partition if the hub must keep ingesting (docs/fleet.md, "Running the hub in production").

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 14:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_hub_events_cabinet_type", "hub_events", ["cabinet_id", "type", "seq"])
    op.create_index("ix_hub_records_kind_received", "hub_records",
                    ["kind", "received_at", "cabinet_id"])
    op.create_index("ix_hub_alarms_cabinet_kind", "hub_alarms", ["cabinet_id", "kind", "state"])
    op.create_index("ix_hub_nonces_at", "hub_nonces", ["at"])


def downgrade() -> None:
    op.drop_index("ix_hub_nonces_at", table_name="hub_nonces")
    op.drop_index("ix_hub_alarms_cabinet_kind", table_name="hub_alarms")
    op.drop_index("ix_hub_records_kind_received", table_name="hub_records")
    op.drop_index("ix_hub_events_cabinet_type", table_name="hub_events")
