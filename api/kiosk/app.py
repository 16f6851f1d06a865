"""Build the kiosk listener's app: the page, its JSON endpoints, and (in simulate mode) the
simulation control surface.

A plain Starlette app, so the daemon does not load FastAPI to serve the screen (issue 15,
item 4; ``api.kiosk.http`` says what it keeps of FastAPI's answers). It has no OpenAPI
document: the FastAPI app served one at ``/kiosk/openapi.json`` that nothing read; the
page's own script is the only client of these endpoints.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from api.kiosk import routes, sim
from api.kiosk.guard import KioskGuard
from api.kiosk.http import Invalid, http_error_answer, invalid_answer, route
from api.limits import KIB, BodyLimits, BodySizeLimit, ConcurrencyLimit
from kiosk.cabinet import Cabinet, CabinetError
from kiosk.messages import text

STATIC = Path(__file__).parent / "static"


KIOSK_BODY_LIMITS = BodyLimits(json_bytes=16 * KIB, import_bytes=16 * KIB,
                               ingest_bytes=16 * KIB)
"""The screen posts a few short fields; nothing on this listener takes a file."""
KIOSK_MAX_REQUESTS = 32


async def _cabinet_error(_: Request, exc: Exception) -> Response:
    """409: what the cabinet refused, in both languages, as the screen shows it."""
    assert isinstance(exc, CabinetError)
    t = text(exc.code)
    return JSONResponse(
        status_code=409, content={"code": exc.code, "zh": t.zh, "en": t.en, "detail": str(exc)}
    )


async def index(_: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


def create_kiosk_app(
    cabinet: Cabinet, hardware: sim.SimControl | None = None, *, port: int | None = None
) -> Starlette:
    """The screen's app; ``port`` is the one it listens on, the only one its Host may name
    (None: any port of a loopback name, for in-process tests)."""
    served: list[BaseRoute] = [
        route("/", index, "GET"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        *routes.ROUTES,
    ]
    if hardware is not None:
        served += sim.ROUTES
    app = Starlette(
        routes=served,
        # Outermost first: the Host check and the limits act before any body is read.
        middleware=[
            Middleware(KioskGuard, port=port),
            Middleware(ConcurrencyLimit, max_requests=KIOSK_MAX_REQUESTS),
            Middleware(BodySizeLimit, limits=KIOSK_BODY_LIMITS),
        ],
        exception_handlers={
            CabinetError: _cabinet_error,
            Invalid: invalid_answer,
            HTTPException: http_error_answer,
        },
    )
    app.state.cabinet = cabinet
    app.state.hardware = hardware
    return app
