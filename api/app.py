"""The admin listener's FastAPI application (remote administration over REST).

Everything lives under ``/api/v1``. ``health`` and ``auth/login`` are public; every other
endpoint needs a bearer token and one permission, published in its OpenAPI operation as
``x-permission``. Every failure, from a 404 route to an unhandled exception, is an RFC 9457
problem document; the OpenAPI document says so for every operation ("4XX"/"5XX").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api import console, docs_assets, errors
from api.deps import AdminOptions, forbid_unknown_query, permission_of
from api.hub_owned import HubOwnedGuard
from api.limits import BodySizeLimit, ConcurrencyLimit
from api.routes import (
    access_rights,
    accounts,
    alarms,
    approvals,
    audit,
    auth,
    authorizations,
    cabinets,
    cards,
    events,
    handovers,
    health,
    imports,
    keys,
    live,
    loans,
    metrics,
    notifications,
    owners,
    people,
    reports,
    roster,
)
from api.security_headers import SecurityHeaders
from api.stream import EventFeed
from api.version import package_version
from kiosk.runtime import Runtime

if TYPE_CHECKING:
    from kiosk.cabinet import Cabinet

PREFIX = "/api/v1"
ROUTERS = [
    health.router,
    auth.router,
    accounts.router,
    people.router,
    cards.router,
    owners.router,
    keys.router,
    cabinets.router,
    live.router,
    access_rights.router,
    approvals.router,
    authorizations.router,
    roster.router,
    loans.router,
    alarms.router,
    events.router,
    audit.router,
    metrics.router,
    reports.router,
    imports.router,
    handovers.router,
    notifications.router,
]


def create_admin_app(
    runtime: Runtime, options: AdminOptions | None = None, cabinet: Cabinet | None = None,
    *, lazy_console: bool = False,
) -> FastAPI:
    """The admin app on ``runtime``; ``cabinet`` is the running cabinet, when there is one
    (the live-status and remote-unlock endpoints answer 503 without it). ``lazy_console``:
    the console is loaded by its first request (the daemon: ``api.console``)."""
    feed = EventFeed()
    runtime.audit.listeners.append(feed.notify)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if feed.notify in runtime.audit.listeners:
                runtime.audit.listeners.remove(feed.notify)

    app = FastAPI(
        title="Key cabinet admin API",
        version=package_version(),
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,  # served from vendored files by docs_assets (no CDN)
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(forbid_unknown_query)],
    )
    app.state.runtime = runtime
    app.state.options = options or AdminOptions()
    app.state.feed = feed
    app.state.cabinet = cabinet
    app.state.remote_unlocks = live.RemoteUnlocks()
    errors.install(app)
    docs_assets.install(app, PREFIX)
    # Outermost last: the concurrency gate and the body limit act before any body or token is
    # read (issue 16, item 1); security headers go on their refusals too.
    # Innermost: on a cabinet enrolled at a hub, writes to hub-authored rows are refused
    # (issue 12; api/hub_owned.py). A hub or a cabinet on its own is unaffected.
    app.add_middleware(HubOwnedGuard, engine=runtime.engine)
    app.add_middleware(BodySizeLimit, limits=app.state.options.body_limits)
    app.add_middleware(ConcurrencyLimit, max_requests=app.state.options.max_concurrent_requests)
    app.add_middleware(SecurityHeaders)
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX)
    console.mount(app, lazily=lazy_console)  # the web console under /console/ (issue 11)

    app.state.allow = errors.allow_index(
        [
            (PREFIX + route.path, set(route.methods or ()))
            for router in ROUTERS
            for route in router.routes
            if isinstance(route, APIRoute)
        ]
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _permission(dependant: Dependant) -> str | None:
    for dep in dependant.dependencies:
        if dep.call is not None and (found := permission_of(dep.call)) is not None:
            return found.value
        if (nested := _permission(dep)) is not None:
            return nested
    return None


def _not_null(parameter: dict[str, Any]) -> None:
    """A query or header parameter cannot be sent as JSON ``null``: leaving it out is how a
    client says "none". FastAPI documents ``X | None`` parameters as ``anyOf [X, null]``,
    which tells clients (and schemathesis) to send the text ``null``; keep ``X`` only."""
    schema = parameter.get("schema", {})
    options = schema.get("anyOf")
    if not options:
        return
    kept = [o for o in options if o.get("type") != "null"]
    if len(kept) == len(options):
        return
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    parameter["schema"] = {**kept[0], **rest} if len(kept) == 1 else {"anyOf": kept, **rest}
    if parameter["schema"].get("default", 0) is None:
        del parameter["schema"]["default"]


def _document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus the problem-details responses and each endpoint's permission."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=(
            "Remote administration of the key cabinet. Log in with POST /api/v1/auth/login "
            "and send `Authorization: Bearer <token>`. Each operation's `x-permission` names "
            "the permission it needs; errors are RFC 9457 problem details."
        ),
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = errors.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    problem_response = {
        "content": {errors.PROBLEM_JSON: {"schema": errors.problem_schema_ref()}},
    }
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    for route in routes:
        permission = _permission(route.dependant)
        for method in route.methods or ():
            operation = schema["paths"][PREFIX + route.path_format][method.lower()]
            responses = operation["responses"]
            responses.pop("422", None)
            responses["4XX"] = {"description": "Client error (problem details)", **problem_response}
            responses["5XX"] = {"description": "Server error (problem details)", **problem_response}
            if permission is not None:
                operation["x-permission"] = permission
            for parameter in operation.get("parameters", ()):
                _not_null(parameter)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
