"""Site scope everywhere on the hub (issue 12): an account scoped to one site reaches only
the routes that know about sites, and everything else answers 404 as if it did not exist.

The hub's ``/api/v1`` and console were written for one cabinet: their lists (loans, alarms,
the audit log, reports, people, keys ...) read the hub's own tables, which are the whole
fleet's configuration and the hub's own log, not one site's. Teaching each of them about
sites one by one would leave every route added later open to a scoped account until
someone remembered. So the rule is deny by default: for a scoped account only the routes
in ``SCOPED_MAY`` are served (each of them filters by the account's site, or shows nothing
of any site), and any other path answers ``404`` (not 403: the answer must not confirm
that something exists). The fleet's data for one site is read through ``/hub/v1`` (sites,
cabinets, keys, alarms, a cabinet's events and records, and the lists by site: keys out,
the cabinets' alarms, issued reports, intake, handovers, the merged log,
``api.hub.site_routes``) and the console's fleet
pages (``api.hub.console``, ``api.hub.console_sites``), all of which are scoped
(``kiosk.fleet.scope``, ``kiosk.fleet.site_lists``). An account without a scope is
unaffected. People stay closed: a person is the whole fleet's row, not a site's.

A pure ASGI middleware, innermost, so it sees every route of the API and the console; it
resolves the caller the way the routes do (the bearer token, or the console's session
cookie) and lets unauthenticated requests through for the routes to refuse.
"""

from __future__ import annotations

import asyncio
import re
from http.cookies import CookieError, SimpleCookie

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.console.web import SESSION_COOKIE, _error_page
from api.limits import _send_problem
from kiosk.errors import KioskError
from kiosk.fleet import scope as scopes
from kiosk.runtime import Runtime
from kiosk.services import credentials, tokens, tx

SCOPE_KEY = "kiosk.site_scope"
"""Where the gate leaves the caller's :class:`kiosk.fleet.scope.Scope` in the ASGI scope
(the console's navigation reads it to offer only what a scoped account may open)."""

SCOPED_MAY = tuple(re.compile(p) for p in (
    r"/api/v1/auth/(login|logout|me|password)",   # one's own sign-in and password
    r"/api/v1/health",                            # the hub process's health, no site data
    r"/console/(login|logout)",
    r"/console/static/.*",
    r"/console/fleet",                            # sites, cabinets, keys, alarms, events
    # the tabs by site; each reads /hub/v1 through Ctx.rest, so the scope applies there
    r"/console/fleet/(loans|alarms|keys|events|reports|log|intake|handovers)",  # by site
    r"/console/fleet/reports/[0-9a-fA-F-]{32,36}/file",  # a report's file, via /hub/v1
    r"/console/fleet/settings(/[\w.-]+)?",         # the site's settings, and its form's post
))
"""Routes a site-scoped account may reach besides ``/hub/v1`` (scoped there)."""

CONSOLE_HOME = "/console"


def _secret(scope: Scope, path: str) -> str | None:
    """The token the route itself will authenticate with: the bearer header for the API,
    the session cookie for the console (never the other one, so a scoped account's cookie
    cannot ride along with someone else's bearer header)."""
    wanted = b"cookie" if path.startswith("/console") else b"authorization"
    value = next((v.decode("latin-1") for n, v in scope.get("headers", ()) if n == wanted), "")
    if wanted == b"authorization":
        kind, _, token = value.partition(" ")
        return token.strip() or None if kind.lower() == "bearer" else None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(value)
    except CookieError:  # a malformed cookie header is the routes' business
        return None
    return jar[SESSION_COOKIE].value or None if SESSION_COOKIE in jar else None


def gated(path: str) -> bool:
    """Whether ``path`` is one the gate decides (the API and the console, not ``/hub/v1``)."""
    return path.startswith(("/api/", "/console"))


def scoped_may(path: str) -> bool:
    return any(p.fullmatch(path) for p in SCOPED_MAY)


class SiteScopeGate:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app, self.runtime = app, runtime

    def _scope_of(self, secret: str, policy: credentials.AuthPolicy) -> scopes.Scope | None:
        try:
            with tx.read(self.runtime.audit) as session:
                principal, _ = tokens.authenticate(session, secret=secret, policy=policy)
                return scopes.scope_of(session, principal.account_id)
        except KioskError:
            return None  # not signed in: the route itself refuses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = re.sub(r"/{2,}", "/", scope["path"]) if scope["type"] == "http" else ""
        if not gated(path):
            await self.app(scope, receive, send)
            return
        secret = _secret(scope, path)
        policy = scope["app"].state.options.auth_policy
        seen = await asyncio.to_thread(self._scope_of, secret, policy) if secret else None
        if seen is None or seen.whole_fleet:
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = seen
        if path.rstrip("/") == CONSOLE_HOME and scope["method"] in ("GET", "HEAD"):
            # a scoped account's console opens on its site's fleet page
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", b"/console/fleet"),
                                    (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if scoped_may(path):
            await self.app(scope, receive, send)
            return
        detail = (f"nothing at {path} for an account scoped to site {seen.site_code}")
        if path.startswith("/console"):
            response = _error_page(Request(scope, receive), 404, "error.404", None)
            await response(scope, receive, send)
            return
        await _send_problem(send, 404, "not-found", "Not found", detail, path)
