"""Fleet: settings per site, authored at the hub

Reviewed by hand. Issue 12: business hours and calendar, PIN requirements, alarm owners and
the report letterhead are authored per site at the hub and flow down to that site's
cabinets by the configuration cursor. One row per site (``hub_site_settings``), replaced
whole; only the hub writes it.

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kiosk.store.types

revision: str = "0020"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hub_site_settings",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", kiosk.store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["hub_sites.id"],
                                name=op.f("fk_hub_site_settings_site_id_hub_sites")),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_hub_site_settings")),
    )


def downgrade() -> None:
    op.drop_table("hub_site_settings")
