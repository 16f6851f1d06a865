"""The public liveness answer of ``GET /api/v1/health``, made without the admin API.

Why a module of its own: a monitor or load balancer polls health every few seconds, and the
daemon makes its admin API (its routes, models and prometheus-client, about 12 MB) only
when first needed (``kiosk.daemon.AdminOnFirstRequest``, issue 15 item 4). Had the health
check gone through the admin API, the first poll would have made it and the saving would be
gone on every monitored cabinet. So the check is answered here, from the same function the
route uses, with the same bytes and the same security headers, until something else makes
the admin API; from then on the route answers it.

What it says is only what a monitor needs: up (``ok``, or ``degraded`` when the schema is
not the one this version needs), the version, and for an enrolled cabinet whether it
reaches its hub (issue 12). Anything more needs a token (``/health/details``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from zoneinfo import ZoneInfo

from pydantic_core import to_jsonable_python
from starlette.types import Receive, Scope, Send

from api.security_headers import SecurityHeaders
from api.version import package_version
from kiosk.fleet import state as fleet_state
from kiosk.runtime import Runtime
from kiosk.store import migrate

PATH = "/api/v1/health"


def schema_status(runtime: Runtime) -> tuple[str, str | None, str]:
    """``ok`` when the stored schema is the head this version needs, else ``degraded``;
    with the stored and the needed revision."""
    current = migrate.current_revision(runtime.engine)
    head = migrate.HEAD_REVISION
    return ("ok" if current == head else "degraded"), current, head


def liveness(runtime: Runtime) -> dict[str, Any]:
    """The public answer: status, version and (an enrolled cabinet only) the hub link. A
    cabinet without a hub has no ``fleet`` key at all."""
    status, _, _ = schema_status(runtime)
    answer: dict[str, Any] = {"status": status, "version": package_version()}
    link = fleet_state.link_status(runtime.engine)
    if link is not None:
        local = fleet_state.offline_since_local(link, ZoneInfo(runtime.settings.timezone))
        answer["fleet"] = {"online": link.online, "offline_since": link.offline_since,
                           "offline_since_local": local,
                           "config_version": link.config_version}
    return answer


def liveness_json(runtime: Runtime) -> bytes:
    """The answer's body as the admin API's route sends it (pydantic's JSON forms for
    times, the compact separators of FastAPI's JSON response)."""
    return json.dumps(to_jsonable_python(liveness(runtime)), ensure_ascii=False,
                      allow_nan=False, separators=(",", ":")).encode()


class LivenessAnswer:
    """A bare ASGI app answering ``GET /api/v1/health`` only, behind the admin API's
    security headers; the database read runs in a thread, off the cabinet's event loop."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._app = SecurityHeaders(self._answer)

    @staticmethod
    def answers(scope: Scope) -> bool:
        return (scope["type"] == "http" and scope.get("method") == "GET"
                and scope.get("path") == PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await asyncio.to_thread(liveness_json, self.runtime)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()),
                                (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
