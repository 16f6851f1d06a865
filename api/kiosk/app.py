"""Build the kiosk listener's app: the page, its JSON endpoints, and (in simulate mode) the
simulation control surface."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api.kiosk import routes, sim
from api.kiosk.guard import KioskGuard
from api.limits import KIB, BodyLimits, BodySizeLimit, ConcurrencyLimit
from kiosk.cabinet import Cabinet, CabinetError
from kiosk.messages import text

STATIC = Path(__file__).parent / "static"


KIOSK_BODY_LIMITS = BodyLimits(json_bytes=16 * KIB, import_bytes=16 * KIB,
                               ingest_bytes=16 * KIB)
"""The screen posts a few short fields; nothing on this listener takes a file."""
KIOSK_MAX_REQUESTS = 32


def create_kiosk_app(
    cabinet: Cabinet, hardware: sim.SimControl | None = None, *, port: int | None = None
) -> FastAPI:
    """The screen's app; ``port`` is the one it listens on, the only one its Host may name
    (None: any port of a loopback name, for in-process tests)."""
    app = FastAPI(
        title="Key cabinet kiosk screen",
        docs_url=None,
        redoc_url=None,
        openapi_url="/kiosk/openapi.json",
    )
    app.state.cabinet = cabinet
    app.state.hardware = hardware

    @app.exception_handler(CabinetError)
    async def _cabinet_error(_: Request, exc: CabinetError) -> JSONResponse:
        t = text(exc.code)
        return JSONResponse(
            status_code=409, content={"code": exc.code, "zh": t.zh, "en": t.en, "detail": str(exc)}
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Like the admin API: a clear 422 naming each refused field, in both languages.
        fields = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        names = ", ".join(".".join(f["loc"][1:]) or "body" for f in fields)
        return JSONResponse(status_code=422, content={
            "code": "invalid_input", "zh": f"输入无效：{names}", "en": f"Invalid input: {names}",
            "detail": "; ".join(f"{'.'.join(f['loc'])}: {f['msg']}" for f in fields),
            "errors": fields,
        })

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(routes.router)
    if hardware is not None:
        app.include_router(sim.router)
    # Outermost last: the Host check and the limits act before any body is read.
    app.add_middleware(BodySizeLimit, limits=KIOSK_BODY_LIMITS)
    app.add_middleware(ConcurrencyLimit, max_requests=KIOSK_MAX_REQUESTS)
    app.add_middleware(KioskGuard, port=port)
    return app
