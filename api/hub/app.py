"""The hub's web app: the admin API (``/api/v1``, every site's people, cards, rights...)
plus the fleet routes (``/hub/v1``) and the console's fleet page (``/console/fleet``).
Wired by ``kiosk hub`` (the composition root)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware

from api.app import create_admin_app
from api.deps import AdminOptions
from api.hub import console_sites  # noqa: F401  (its pages join the console's router)
from api.hub.console import router as console_router
from api.hub.routes import router
from api.hub.scope_gate import SiteScopeGate
from api.hub.site_routes import router as site_router
from kiosk.runtime import Runtime

HUB_PREFIX = "/hub/v1"


HUB_MAX_REQUESTS = 4096
"""Requests in flight at one hub process. Every online cabinet holds one configuration
long-poll open (an asyncio wait, no thread), so the cabinet listener's 64 would turn a
fleet of a hundred cabinets into 503s."""


def create_hub_app(runtime: Runtime, options: AdminOptions | None = None) -> FastAPI:
    app = create_admin_app(runtime, options or AdminOptions(
        max_concurrent_requests=HUB_MAX_REQUESTS))
    app.include_router(router, prefix=HUB_PREFIX)
    app.include_router(site_router, prefix=HUB_PREFIX)  # loans, alarms, reports by site
    app.include_router(console_router)  # the console's fleet page, on the hub only
    app.state.hub = True
    # Innermost: a site-scoped account reaches only the routes that know sites (404 else).
    app.user_middleware.append(Middleware(SiteScopeGate, runtime=runtime))
    return app
