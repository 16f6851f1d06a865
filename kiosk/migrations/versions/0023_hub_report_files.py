"""Hub: the rendered files of the reports the cabinets issued

Reviewed by hand. Issue 12 item 4: the hub is the off-device copy of every log, issued
reports included. ``hub_report_files`` holds the exact bytes of each rendering (zh/en ×
PDF/CSV) a cabinet ships, taken only when their SHA-256 is the one named in the report's
chained ``report.generated`` event (issue 14 item 12), and served from
``GET /hub/v1/reports/{id}/file``. PostgreSQL stores the bytes as ``bytea``.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hub_report_files",
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", kiosk.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("report_id", "name", name=op.f("pk_hub_report_files")),
    )


def downgrade() -> None:
    op.drop_table("hub_report_files")
