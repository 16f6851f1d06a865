"""The hub's web app: the admin API (``/api/v1``, every site's people, cards, rights...)
plus the fleet routes (``/hub/v1``) and the console's fleet page (``/console/fleet``).
Wired by ``kiosk hub`` (the composition root)."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_admin_app
from api.hub.console import router as console_router
from api.hub.routes import router
from kiosk.runtime import Runtime

HUB_PREFIX = "/hub/v1"


def create_hub_app(runtime: Runtime) -> FastAPI:
    app = create_admin_app(runtime)
    app.include_router(router, prefix=HUB_PREFIX)
    app.include_router(console_router)  # the console's fleet page, on the hub only
    app.state.hub = True
    return app
