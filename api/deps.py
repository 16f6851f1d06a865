"""Dependency aliases shared by the routers: runtime, audit log, sessions, the caller.

Authorization is declared per endpoint with ``needs(Permission.X)`` in the route's
``dependencies``; the permission is also published in the OpenAPI operation as
``x-permission`` so the table the code enforces is the table the docs show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.limits import BodyLimits
from kiosk.audit import AuditLog
from kiosk.errors import NotAuthenticated
from kiosk.runtime import Runtime
from kiosk.services import tokens, tx
from kiosk.services.authz import Permission, Principal
from kiosk.services.credentials import AuthPolicy


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_audit(runtime: RuntimeDep) -> AuditLog:
    return runtime.audit


AuditDep = Annotated[AuditLog, Depends(get_audit)]


@dataclass(frozen=True)
class AdminOptions:
    """Knobs of the admin listener that are not part of the cabinet's configuration."""

    auth_policy: AuthPolicy = field(default_factory=AuthPolicy)
    stream_heartbeat_seconds: float = 15.0
    """A comment line this often keeps proxies from closing an idle event stream."""
    stream_max_seconds: float = 300.0
    """A stream ends after this long; SSE clients reconnect with Last-Event-ID and resume.
    Bounded so no connection (or test) can hold a worker forever."""
    body_limits: BodyLimits = field(default_factory=BodyLimits)
    """Largest request body per kind of route, refused with 413 before it is read."""
    max_concurrent_requests: int = 64
    """Requests in flight on the admin listener beyond this are answered 503 at once."""


def get_options(request: Request) -> AdminOptions:
    options: AdminOptions = request.app.state.options
    return options


OptionsDep = Annotated[AdminOptions, Depends(get_options)]


def get_policy(options: OptionsDep) -> AuthPolicy:
    return options.auth_policy


PolicyDep = Annotated[AuthPolicy, Depends(get_policy)]


def get_read_session(audit: AuditDep) -> Iterator[Session]:
    with tx.read(audit) as session:
        yield session


ReadSession = Annotated[Session, Depends(get_read_session)]

bearer = HTTPBearer(
    auto_error=False,
    description="An access token from POST /api/v1/auth/login, or an API token.",
)


def get_principal(
    audit: AuditDep,
    policy: PolicyDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise NotAuthenticated("a bearer token is required")
    with tx.read(audit) as session:
        principal, stale = tokens.authenticate(
            session, secret=credentials.credentials, policy=policy
        )
    if stale:
        with tx.write(audit) as session:
            tokens.touch(session, token_id=principal.token_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def recheck(audit: AuditLog, policy: AuthPolicy, secret: str) -> Principal | None:
    """The caller again, or None once its token was revoked, expired or its account ended.

    A long-lived response (the event stream) calls this before every delivery, so revoking
    a token or changing the password ends it at once (issue 16, item 7).
    """
    try:
        with tx.read(audit) as session:
            principal, _ = tokens.authenticate(session, secret=secret, policy=policy)
    except NotAuthenticated:
        return None
    return principal


def client_address(request: Request) -> str:
    """The peer address the audit log records and the login budget counts.

    ``X-Forwarded-For`` is not read here: the server applies it only for the proxies named
    in ``admin_trusted_proxies`` (uvicorn's proxy headers, off by default), so a local
    process cannot pick the address it is recorded and limited under.
    """
    return request.client.host if request.client else "unknown"


def _query_names(dependant: Dependant) -> Iterator[str]:
    for param in dependant.query_params:
        yield param.alias
    for sub in dependant.dependencies:
        yield from _query_names(sub)


def forbid_unknown_query(request: Request) -> None:
    """Unknown query parameters are an error, like unknown body fields: a typo such as
    ``?overdeu=true`` must not silently return everything."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = set(_query_names(dependant))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "unknown query parameter",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )


def needs(permission: Permission) -> Any:
    """``dependencies=[needs(P.KEYS_READ)]``: refuse callers without ``permission`` (403)."""

    def check(principal: PrincipalDep) -> None:
        principal.require(permission)

    check.permission = permission  # type: ignore[attr-defined]
    return Depends(check)


def permission_of(call: Callable[..., Any]) -> Permission | None:
    found: Permission | None = getattr(call, "permission", None)
    return found
