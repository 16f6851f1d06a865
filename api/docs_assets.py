"""``/api/v1/docs`` and ``/api/v1/redoc`` from vendored files: no CDN, so they work offline.

FastAPI's default docs page loads Swagger UI from a CDN, which on a building LAN without
Internet access is a blank page (issue 11). The same HTML helpers are pointed at copies of
``swagger-ui-dist`` and ``redoc`` kept in ``api/docs_static`` (versions and licences in its
README) and served here; Google Fonts, which ReDoc would otherwise load, are switched off.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "docs_static"
OFFLINE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
"""Nothing but this server: ReDoc's bundle would otherwise fetch its vendor's logo from a
CDN on every view. The inline parts are FastAPI's own bootstrap script of the two pages."""


def _offline(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = OFFLINE_CSP
    return page


def install(app: FastAPI, prefix: str) -> None:
    """Serve the two viewers and their assets under ``prefix`` (outside the OpenAPI schema)."""
    assets = f"{prefix}/docs/static"
    app.mount(assets, StaticFiles(directory=STATIC), name="docs-static")
    openapi_url = app.openapi_url or f"{prefix}/openapi.json"

    @app.get(f"{prefix}/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _offline(get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} – Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
        ))

    @app.get(f"{prefix}/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _offline(get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} – ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon-32x32.png", with_google_fonts=False,
        ))
