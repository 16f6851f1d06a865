"""All console screens on one router (each module adds its own routes)."""

from __future__ import annotations

from fastapi import APIRouter

from api.console.web import BASE, ConsoleRoute

router = APIRouter(prefix=BASE, route_class=ConsoleRoute, include_in_schema=False)

# the screens register themselves on ``router`` when imported
from api.console import (  # noqa: E402,F401
    pages_accounts,
    pages_alarms,
    pages_approvals,
    pages_audit,
    pages_auth,
    pages_dashboard,
    pages_handovers,
    pages_imports,
    pages_keys,
    pages_loans,
    pages_owners,
    pages_people,
    pages_reports,
    pages_rights,
    pages_roster,
)
