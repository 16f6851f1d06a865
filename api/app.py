"""The admin listener's FastAPI application (remote administration over REST)."""

from __future__ import annotations

from fastapi import FastAPI

from api.routes import health
from api.version import package_version
from kiosk.runtime import Runtime


def create_admin_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="Key cabinet admin API",
        version=package_version(),
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.include_router(health.router, prefix="/api/v1")
    return app
