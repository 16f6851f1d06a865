"""The one fleet table a cabinet writes: its link to the hub (enrolment, configuration
cursor, online/offline).

Kept apart from ``models_fleet`` (the hub's sites, cabinets, ingested logs and alarms) so a
cabinet does not map the hub's sixteen tables it never reads: mapping them cost the daemon
about 1.4 MB of memory for nothing (issue 15, idle RSS). The hub's tables are still in every
database's schema (one migration history); ``kiosk/migrations/env.py`` and the hub's own
modules import ``models_fleet``.
"""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kiosk.store.models import Base


class FleetState(Base):
    """A cabinet's link to its hub: enrolment, configuration cursor, online/offline."""

    __tablename__ = "fleet_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
