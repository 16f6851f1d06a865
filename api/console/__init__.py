"""The web console (issue 11): server-rendered pages under ``/console/`` on the admin app.

Jinja2 templates and htmx (vendored in ``static/`` with its licence; no CDN, no Node at run
time). Every page runs the REST operation it mirrors through ``web.Ctx.rest`` — one
authorization for the API and the console.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.console.routes import router
from api.console.web import BASE, HERE


def mount(app: FastAPI) -> None:
    """Serve the console on ``app`` (the admin listener, behind its HTTPS)."""
    app.include_router(router)
    app.mount(f"{BASE}/static", StaticFiles(directory=HERE / "static"), name="console-static")
