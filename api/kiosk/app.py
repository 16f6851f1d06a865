"""Build the kiosk listener's app: the page, its JSON endpoints, and (in simulate mode) the
simulation control surface."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api.kiosk import routes, sim
from kiosk.cabinet import Cabinet, CabinetError
from kiosk.messages import text

STATIC = Path(__file__).parent / "static"


def create_kiosk_app(cabinet: Cabinet, hardware: sim.SimControl | None = None) -> FastAPI:
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

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(routes.router)
    if hardware is not None:
        app.include_router(sim.router)
    return app
