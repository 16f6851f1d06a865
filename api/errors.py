"""The one place errors become HTTP: RFC 9457 problem details for every failure.

Domain errors (``kiosk.errors``), FastAPI's validation errors, Starlette's 404/405 and any
unexpected exception all leave as ``application/problem+json`` with the same shape, so a
client needs one error parser. Unexpected exceptions are logged with their traceback and
answered without internals.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.status import HTTP_500_INTERNAL_SERVER_ERROR

from kiosk.errors import (
    AuditError,
    Conflict,
    InvalidRequest,
    KioskError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
    Unavailable,
)
from kiosk.store.faults import storage_fault

log = logging.getLogger("api.errors")

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:keycabinet:problem:"


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details (``type``, ``title``, ``status``, ``detail``, ``instance``)."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[FieldError] | None = Field(
        default=None, description="For 422: each rejected field with the reason."
    )


# Most specific first: the first matching class wins.
_MAPPING: list[tuple[type[KioskError], int, str, str]] = [
    (NotAuthenticated, 401, "not-authenticated", "Not authenticated"),
    (PermissionDenied, 403, "forbidden", "Forbidden"),
    (TooManyAttempts, 429, "too-many-attempts", "Too many attempts"),
    (NotFound, 404, "not-found", "Not found"),
    (Conflict, 409, "conflict", "Conflict"),
    (InvalidRequest, 422, "invalid-request", "Invalid request"),
    (AuditError, 503, "audit-unavailable", "Audit log unavailable"),
    (Unavailable, 503, "unavailable", "Service unavailable"),
    (KioskError, 500, "internal", "Internal error"),
]

_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("not-authenticated", "Not authenticated"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("too-large", "Content too large"),
    421: ("misdirected", "Misdirected request"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-request", "Invalid request"),
    429: ("too-many-attempts", "Too many attempts"),
}


def problem_response(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str | None,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=TYPE_PREFIX + slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _kiosk_error(request: Request, exc: Exception) -> JSONResponse:
    for cls, status, slug, title in _MAPPING:
        if isinstance(exc, cls):
            headers: dict[str, str] = {}
            if isinstance(exc, NotAuthenticated):
                headers["WWW-Authenticate"] = "Bearer"
            if isinstance(exc, TooManyAttempts):
                headers["Retry-After"] = str(exc.retry_after)
            if status >= 500:
                log.error("request %s failed: %s", request.url.path, exc, exc_info=exc)
            return problem_response(request, status, slug, title, str(exc), headers=headers)
    raise exc  # pragma: no cover - KioskError is the last entry


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the first route that matched the path; RFC 9110 wants every
        # method the resource supports.
        # A literal path (``/approvals/expire-due``) wins over a template that also matches it.
        index: list[tuple[re.Pattern[str], bool, set[str]]] = getattr(
            request.app.state, "allow", []
        )
        matching = [
            (literal, ms) for pattern, literal, ms in index if pattern.match(request.url.path)
        ]
        chosen = [ms for literal, ms in matching if literal] or [ms for _, ms in matching]
        methods = {m for ms in chosen for m in ms}
        if methods:
            headers["Allow"] = ", ".join(sorted(methods))
    return problem_response(request, exc.status_code, slug, title, detail, headers=headers)


def allow_index(
    routes: list[tuple[str, set[str]]],
) -> list[tuple[re.Pattern[str], bool, set[str]]]:
    """Path patterns, whether literal, and their methods, for the ``Allow`` header of a 405."""
    merged: dict[str, set[str]] = {}
    for path, methods in routes:
        merged.setdefault(path, set()).update(methods)
    return [(compile_path(p)[0], "{" not in p, ms) for p, ms in merged.items()]


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(
            loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            msg=str(e.get("msg", "")),
            type=str(e.get("type", "")),
        )
        for e in exc.errors()
    ]
    return problem_response(
        request,
        422,
        "invalid-request",
        "Invalid request",
        "the request does not match the schema; see errors",
        errors=errors,
    )


def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # A race the service's own checks could not see (two writers at once): say "conflict",
    # never the SQL.
    log.warning("integrity error on %s: %s", request.url.path, exc)
    return problem_response(
        request, 409, "conflict", "Conflict", "the change conflicts with stored data"
    )


def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    """A full or failing disk, a locked database: 503 naming what failed (nothing was
    changed: the transaction rolled back), not a 500. Answered here rather than by the
    catch-all, so the connection stays usable for the client's next request."""
    what = storage_fault(exc)
    if what is None:
        return _unexpected(request, exc)
    # The driver's own words only: the SQL and its parameters may carry personal data (A1).
    log.error("storage fault on %s: %s (%s)", request.url.path, what, getattr(exc, "orig", exc))
    return problem_response(
        request, 503, "storage-unavailable", "Storage unavailable",
        f"{what}; nothing was changed", headers={"Retry-After": "60"},
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s", request.url.path, exc_info=exc)
    return problem_response(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "internal", "Internal error", None
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(KioskError, _kiosk_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(OperationalError, _storage_error)
    app.add_exception_handler(OSError, _storage_error)
    app.add_exception_handler(Exception, _unexpected)


def problem_schema_ref() -> dict[str, Any]:
    return {"$ref": "#/components/schemas/Problem"}
