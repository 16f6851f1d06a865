"""On a cabinet enrolled at a hub, refuse local edits of the rows the hub authors (issue 12).

Each record type has one author (docs/fleet.md, "Who authors what"). People, cards, rights,
the roster, key groups, keys and their home slots, owners, units, letters of authorization
and approvals are authored at the hub and applied here by the configuration puller; an edit
made here would be silently overwritten by the hub's next change, or worse, would let
someone with a local account change what the hub decided. So every write to them through
this cabinet's REST API or console is answered ``409`` (``hub-owned``) naming the hub, before
any token or body is read: the refusal is the same for everyone, whatever their role.

The cabinet's own facts stay writable here: draws, returns, intake (K1), phone
confirmations (K6), alarms and notes (F1), handovers (H1), reports, slots and accounts.
A pure ASGI middleware, so it sees every route of both the API and the console.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from api.limits import _send_problem
from kiosk.fleet import state

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ID = r"[0-9a-fA-F-]{32,36}"
HUB_OWNED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(pattern), what) for pattern, what in (
        (rf"/api/v1/departments(/{_ID})?", "departments"),
        (rf"/api/v1/people(/{_ID}(/cards/enrol)?)?", "people and their cards"),
        (rf"/api/v1/cards(/{_ID}/(lost|revoke))?", "cards"),
        (rf"/api/v1/owners(/{_ID})?", "owners"),
        (rf"/api/v1/units(/{_ID})?", "units"),
        (rf"/api/v1/key-groups(/{_ID})?", "key groups"),
        (rf"/api/v1/keys(/{_ID}(/(move|retire))?)?", "keys and their home slots"),
        (rf"/api/v1/access-rights(/{_ID})?", "access rights"),
        (rf"/api/v1/approvals(/expire-due|/{_ID}/(approve|reject|expire))?", "approvals (K7)"),
        (rf"/api/v1/owner-authorizations(/{_ID}/revoke)?", "letters of authorization (K6)"),
        (rf"/api/v1/duty-roster(/{_ID})?", "the duty roster (K8)"),
        (r"/api/v1/imports/[a-z_-]+", "imports of people, cards, keys and units"),
        (rf"/console/people(/{_ID}/(edit|cards|cards/enrol))?", "people and their cards"),
        (rf"/console/cards/{_ID}/[a-z]+", "cards"),
        (rf"/console/rights(/{_ID}/(edit|withdraw))?", "access rights"),
        (rf"/console/roster(/{_ID}/remove)?", "the duty roster (K8)"),
        (rf"/console/owners(/{_ID}/edit)?", "owners"),
        (rf"/console/authorizations(/{_ID}/(end|extend))?", "letters of authorization (K6)"),
        (rf"/console/keys/{_ID}/(edit|move|retire)", "keys and their home slots"),
        (rf"/console/approvals(/{_ID}/decide)?", "approvals (K7)"),
        (r"/console/imports/[a-z_-]+", "imports of people, cards, keys and units"),
    )
]


def hub_owned(method: str, path: str) -> str | None:
    """What the hub owns that this write would change, or None if it is the cabinet's."""
    if method.upper() in SAFE_METHODS:
        return None
    normal = re.sub(r"/{2,}", "/", path).rstrip("/")
    for pattern, what in HUB_OWNED:
        if pattern.fullmatch(normal):
            return what
    return None


class HubOwnedGuard:
    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        self.app, self.engine = app, engine
        self._enrolment: state.Enrolment | None = None

    def enrolment(self) -> state.Enrolment | None:
        """Read until found (``kiosk fleet enrol`` may run while the daemon does); an
        enrolment is never undone, so it is kept once seen."""
        if self._enrolment is None:
            self._enrolment = state.enrolment(self.engine)
        return self._enrolment

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            what = hub_owned(scope["method"], scope["path"])
            enrolled = self.enrolment() if what else None
            if what and enrolled is not None:
                await _send_problem(
                    send, 409, "hub-owned", "Owned by the hub",
                    f"{what} are authored at the hub {enrolled.hub_url} (site "
                    f"{enrolled.site}); this cabinet ({enrolled.cabinet_id}) applies the "
                    "hub's changes and does not edit them: make the change at the hub",
                    scope["path"])
                return
        await self.app(scope, receive, send)
