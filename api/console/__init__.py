"""The web console (issue 11): server-rendered pages under ``/console/`` on the admin app.

Jinja2 templates and htmx (vendored in ``static/`` with its licence; no CDN, no Node at run
time). Every page runs the REST operation it mirrors through ``web.Ctx.rest`` — one
authorization for the API and the console.

The console's pages, Jinja2 and their templates cost the daemon about 9 MB of memory and
nobody may open the console for days, so the daemon mounts it lazily
(``mount(app, lazily=True)``): a placeholder route answers the first request under
``/console``, imports the console in a worker thread (off the event loop the cabinet runs
on), puts the console's routes in its own place and passes the request on to them
(issue 15, item 4). Importing this package alone loads none of it.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

PREFIX = "/console"
"""``api.console.web.BASE``, known here without importing the pages."""


def mount(app: FastAPI, *, lazily: bool = False) -> None:
    """Serve the console on ``app`` (the admin listener, behind its HTTPS); ``lazily``: from
    its first request on (the daemon), not from now (tests, the hub)."""
    if lazily:
        app.router.routes.append(_MountOnFirstRequest(app))
    else:
        _mount_now(app)


def _mount_now(app: FastAPI) -> None:
    from fastapi.staticfiles import StaticFiles

    from api.console.routes import router
    from api.console.web import BASE, HERE

    assert BASE == PREFIX
    app.include_router(router)
    app.mount(f"{BASE}/static", StaticFiles(directory=HERE / "static"), name="console-static")


class _MountOnFirstRequest(BaseRoute):
    """Stands where the console's routes go until a request under ``/console`` comes."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._lock = asyncio.Lock()

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self._lock:  # two first requests at once mount it once
            if self in self.app.router.routes:
                await asyncio.to_thread(importlib.import_module, "api.console.routes")
                position = self.app.router.routes.index(self)
                before = len(self.app.router.routes)
                _mount_now(self.app)
                added = self.app.router.routes[before:]
                del self.app.router.routes[before:]
                self.app.router.routes[position:position + 1] = added
        await self.app.router(scope, receive, send)
