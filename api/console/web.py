"""The console's plumbing: the signed-in caller, CSRF, the language, templates, and the
one way a console page reaches the data: by running the REST operation it mirrors.

One authorization (issue 11, item 2): ``Ctx.rest(endpoint, ...)`` looks the endpoint up in
the app's own route table, requires the permission that route declares with ``needs(...)``
and then calls the very function the REST route runs, with the same principal. So the
permission, the object-level checks inside ``kiosk/services`` (a department leader's own
department only), the validation of the body model and the audit events are the API's own:
a console action cannot do what the same account's API call could not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import inspect
import secrets
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_origin, get_type_hints
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import Depends, Query, Request, Response, params
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from api.console import forms, labels
from api.console.i18n import LANGS, Lang, enum_label, field_value, t
from api.deps import AdminOptions, permission_of
from kiosk.errors import (
    Conflict,
    InvalidRequest,
    KioskError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
    Unavailable,
)
from kiosk.runtime import Runtime
from kiosk.services import tokens, tx, web_sessions
from kiosk.services.authz import Permission, Principal
from kiosk.store.models_auth import TokenKind

BASE = "/console"
SESSION_COOKIE = "kc_session"
PRELOGIN_COOKIE = "kc_prelogin"
LANG_COOKIE = "kc_lang"
FLASH_COOKIE = "kc_flash"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
BACKGROUND = frozenset({"/console/live"})
"""Pages a screen asks for by itself (the dashboard's 5-second refresh): they do not count
as activity, so an unattended dashboard still signs out after the idle timeout."""

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.autoescape = True  # every stored value is text, never markup (issue 11 tests)


class Refused(Exception):
    """A console-level refusal with a status: a CSRF failure or a cross-site post."""

    def __init__(self, status: int, message_id: str) -> None:
        super().__init__(message_id)
        self.status = status
        self.message_id = message_id


class FormInvalid(Exception):
    """A form came back with field errors; the route re-renders it (422)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("form invalid")
        self.errors = errors


# ---------------------------------------------------------------- the caller and CSRF
def csrf_for(secret: str) -> str:
    """The synchronizer token of a session: derived from the HttpOnly session secret, so a
    page of another site can neither read nor compute it."""
    return hmac.new(secret.encode(), b"console-csrf", hashlib.sha256).hexdigest()


def _same_origin(request: Request) -> bool:
    """Whether a post came from one of our own pages. Browsers say so in ``Sec-Fetch-Site``
    (fetch metadata); without it, the ``Origin`` (else ``Referer``) must name our host. A
    post from another site is refused whatever else it carries."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True  # not a browser: the synchronizer token alone decides
    if source == "null":
        return False
    return urlsplit(source).netloc == request.url.netloc


@dataclass
class Ctx:
    """One console request: who, in which language, and the helpers pages use."""

    request: Request
    lang: Lang
    principal: Principal | None
    csrf: str
    set_lang: bool = False
    flash: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.request.app.state.runtime
        return runtime

    @property
    def options(self) -> AdminOptions:
        options: AdminOptions = self.request.app.state.options
        return options

    @property
    def me(self) -> Principal:
        if self.principal is None:
            raise NotAuthenticated("sign in first")
        return self.principal

    def can(self, permission: Permission | str) -> bool:
        return self.principal is not None and self.principal.can(Permission(permission))

    def t(self, message_id: str, **values: Any) -> str:
        return t(self.lang, message_id, **values)

    def label(self, group: str, value: Any) -> str:
        return enum_label(self.lang, group, value)

    def value(self, field: str, value: Any) -> str:
        """A stored report's field value in the reader's language (``i18n.field_value``)."""
        return field_value(self.lang, field, value)

    def when(self, value: dt.datetime | None, seconds: bool = False) -> str:
        return labels.local(value, self.runtime.settings.zone, seconds=seconds)

    def when_input(self, value: dt.datetime | None) -> str:
        return labels.local_input(value, self.runtime.settings.zone)

    # -------------------------------------------------------------- the REST mirror
    def rest(self, endpoint: Callable[..., Any], **kwargs: Any) -> Any:
        """Run the REST operation ``endpoint`` as the signed-in caller (see module doc)."""
        permission = rest_permission(self.request, endpoint)
        if permission is not None:
            self.me.require(permission)
        return _call(self, endpoint, kwargs)

    async def rest_async(
        self, endpoint: Callable[..., Coroutine[Any, Any, Any]], **kwargs: Any
    ) -> Any:
        permission = rest_permission(self.request, endpoint)
        if permission is not None:
            self.me.require(permission)
        return await _call(self, endpoint, kwargs)

    def may(self, endpoint: Callable[..., Any]) -> bool:
        """Whether the caller holds the permission of the REST operation (to show a button;
        the action itself is checked again when it runs)."""
        permission = rest_permission(self.request, endpoint)
        return self.principal is not None and (
            permission is None or self.principal.can(permission)
        )

    # ------------------------------------------------------------------ rendering
    def render(
        self, name: str, status: int = 200, **values: Any
    ) -> HTMLResponse:
        values.setdefault("errors", {})
        values.setdefault("form", {})
        values.setdefault("problem", None)
        response = templates.TemplateResponse(
            self.request,
            name,
            {"ctx": self, "t": self.t, "lang": self.lang, "me": self.principal,
             "base": BASE, **values},
            status_code=status,
        )
        self._finish(response)
        return response

    def redirect(self, path: str, flash: str | None = None) -> RedirectResponse:
        response = RedirectResponse(path, status_code=303)
        self._finish(response, flash=flash)
        return response

    @property
    def https(self) -> bool:
        return self.request.url.scheme == "https"

    def _finish(self, response: Response, flash: str | None = None) -> None:
        """Cookies and headers every console answer carries. The confirmation (``flash``)
        of a redirect is shown once, by the page it leads to, which clears it."""
        # a console page names itself to its own posts (Origin), never to other sites
        response.headers["referrer-policy"] = "same-origin"
        if self.set_lang:
            response.set_cookie(LANG_COOKIE, self.lang, max_age=365 * 86400, samesite="strict",
                                secure=self.https, path=BASE, httponly=True)
        if flash:
            response.set_cookie(FLASH_COOKIE, flash, httponly=True, samesite="strict",
                                secure=self.https, path=BASE)
        elif self.flash is not None:
            response.delete_cookie(FLASH_COOKIE, path=BASE)
        for name, value in self.cookies.items():
            response.set_cookie(name, value, httponly=True, samesite="strict",
                                secure=self.https, path=BASE)

    def url(self, path: str) -> str:
        return BASE + path

    # ------------------------------------------------------------------- forms
    async def form(self) -> dict[str, Any]:
        """The posted form, after the CSRF check (the check cannot be forgotten: a form
        is only readable through here)."""
        data = await self.request.form()
        if not _same_origin(self.request):
            raise Refused(403, "csrf.cross_site")
        sent = self.request.headers.get(CSRF_HEADER) or data.get(CSRF_FIELD)
        if not isinstance(sent, str) or not self.csrf or not hmac.compare_digest(
            sent, self.csrf
        ):
            raise Refused(403, "csrf.bad_token")
        return {k: (data.getlist(k) if len(data.getlist(k)) > 1 else data.get(k))
                for k in data if k != CSRF_FIELD}

    def body(self, model: type[BaseModel], data: dict[str, Any],
             kinds: dict[str, str]) -> Any:
        """A REST body model from form fields, or ``FormInvalid`` with each field's
        message in the page's language."""
        values = forms.convert(data, kinds, zone=self.runtime.settings.zone)
        try:
            return model.model_validate(values)
        except ValidationError as exc:
            raise FormInvalid(forms.field_errors(exc, self.lang, kinds)) from None


# --------------------------------------------------------------- the route table
_PERMISSIONS: dict[Any, Permission | None] = {}


def _permission(dependant: Dependant) -> Permission | None:
    for dep in dependant.dependencies:
        if dep.call is not None and (found := permission_of(dep.call)) is not None:
            return found
        if (nested := _permission(dep)) is not None:
            return nested
    return None


def rest_permission(request: Request, endpoint: Callable[..., Any]) -> Permission | None:
    """The permission the app's REST route for ``endpoint`` declares."""
    if endpoint not in _PERMISSIONS:
        for route in _api_routes(request.app.routes):
            if route.endpoint is endpoint:
                _PERMISSIONS[endpoint] = _permission(route.dependant)
                break
        else:
            raise LookupError(f"{endpoint.__qualname__} is not a route of this app")
    return _PERMISSIONS[endpoint]


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every ``APIRoute`` of the app, also those inside included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)


def _call(ctx: Ctx, endpoint: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Fill the dependencies a REST endpoint takes by name, then call it."""
    with ExitStack() as stack:
        return endpoint(**_arguments(ctx, endpoint, kwargs, stack))


def _arguments(ctx: Ctx, call: Callable[..., Any], kwargs: dict[str, Any],
               stack: ExitStack) -> dict[str, Any]:
    """The arguments of ``call``: the caller's own objects by name, a read session as
    ``session``, and a parameter declared ``Annotated[..., Depends(f)]`` (a dependency made
    of these, such as the hub's ``SiteReadDep``) by running ``f`` the same way, as FastAPI
    would; sessions stay open until the endpoint returns."""
    wanted = inspect.signature(call).parameters
    provided: dict[str, Any] = {
        "by": ctx.principal,
        "principal": ctx.principal,
        "audit": ctx.runtime.audit,
        "runtime": ctx.runtime,
        "policy": ctx.options.auth_policy,
        "options": ctx.options,
        "request": ctx.request,
    }
    args = {name: value for name, value in provided.items() if name in wanted}
    args.update(kwargs)
    if "session" in wanted and "session" not in args:
        args["session"] = stack.enter_context(tx.read(ctx.runtime.audit))
    for name, param in wanted.items():
        if name in args or param.default is not inspect.Parameter.empty:
            continue
        dependency = _dependency_of(call, name)
        if dependency is None:
            continue  # the call itself says what is missing
        given = _arguments(ctx, dependency, {}, stack)
        if inspect.isgeneratorfunction(dependency):
            args[name] = stack.enter_context(contextmanager(dependency)(**given))
        else:
            args[name] = dependency(**given)
    return args


def _dependency_of(call: Callable[..., Any], name: str) -> Callable[..., Any] | None:
    """``f`` of a parameter declared ``Annotated[T, Depends(f)]``, else None."""
    hint: Any = get_type_hints(call, include_extras=True).get(name)
    if hint is None or get_origin(hint) is not Annotated:
        return None
    found = next((m for m in hint.__metadata__ if isinstance(m, params.Depends)), None)
    return found.dependency if found is not None else None


# ------------------------------------------------------------------- the dependency
def _lang_of(request: Request, query: str | None) -> tuple[Lang, bool]:
    if query in LANGS:
        return query, True
    cookie = request.cookies.get(LANG_COOKIE)
    return (cookie if cookie in LANGS else "zh"), False


def _principal_of(request: Request) -> Principal | None:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    runtime: Runtime = request.app.state.runtime
    policy = request.app.state.options.auth_policy
    try:
        with tx.read(runtime.audit) as session:
            principal, _ = tokens.authenticate(session, secret=secret, policy=policy)
            slide = web_sessions.due(session, token_id=principal.token_id, policy=policy)
    except NotAuthenticated:
        return None
    if principal.token_kind != TokenKind.ACCESS:
        return None  # an API token pasted into the cookie is not a console session
    if slide and request.url.path not in BACKGROUND:
        with tx.write(runtime.audit) as session:
            web_sessions.slide(session, token_id=principal.token_id, policy=policy)
    return principal


def console_ctx(
    request: Request,
    lang: Annotated[str | None, Query(max_length=2, description="zh or en")] = None,
) -> Ctx:
    chosen, explicit = _lang_of(request, lang)
    principal = _principal_of(request)
    secret = request.cookies.get(SESSION_COOKIE, "")
    csrf = csrf_for(secret) if principal is not None else request.cookies.get(PRELOGIN_COOKIE, "")
    flash = request.cookies.get(FLASH_COOKIE)
    return Ctx(request, chosen, principal, csrf, set_lang=explicit, flash=flash)


def signed_in(ctx: Annotated[Ctx, Depends(console_ctx)]) -> Ctx:
    if ctx.principal is None:
        raise NotAuthenticated("sign in first")
    return ctx


AnyCtx = Annotated[Ctx, Depends(console_ctx)]
CtxDep = Annotated[Ctx, Depends(signed_in)]


def new_prelogin_token() -> str:
    return secrets.token_urlsafe(32)


# ------------------------------------------------------------------ errors as pages
_STATUS: list[tuple[type[KioskError], int]] = [
    (PermissionDenied, 403),
    (TooManyAttempts, 429),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidRequest, 422),
    (Unavailable, 503),
]


class ConsoleRoute(APIRoute):
    """Console routes answer every failure with a page in the reader's language, never a
    problem document: not signed in → the sign-in page; refused → 403; missing → 404."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            _drop_empty_query(request)
            try:
                return await handler(request)
            except NotAuthenticated:
                if request.headers.get("hx-request"):
                    response = Response(status_code=401)
                    response.headers["HX-Redirect"] = f"{BASE}/login"
                    return response
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                if request.method != "GET" or target == BASE + "/":
                    return RedirectResponse(f"{BASE}/login", status_code=303)
                # the link from a message opens its record once the person has signed in
                return RedirectResponse(f"{BASE}/login?{urlencode({'next': target})}",
                                        status_code=303)
            except Refused as exc:
                return _error_page(request, exc.status, exc.message_id, None)
            except RequestValidationError:
                return _error_page(request, 422, "error.bad_request", None)
            except KioskError as exc:
                for cls, status in _STATUS:
                    if isinstance(exc, cls):
                        return _error_page(request, status, f"error.{status}", str(exc))
                raise

        return handle


def _drop_empty_query(request: Request) -> None:
    """A filter form left at "all" sends ``?state=``: an empty field means no filter, not a
    value to refuse, so it is dropped before the query is read."""
    raw = request.scope.get("query_string", b"")
    if not raw:
        return
    kept = [(k, v) for k, v in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True) if v]
    request.scope["query_string"] = urlencode(kept).encode("ascii")
    request.__dict__.pop("_query_params", None)


def _error_page(request: Request, status: int, message_id: str, detail: str | None) -> Response:
    chosen, _ = _lang_of(request, request.query_params.get("lang"))
    try:
        principal = _principal_of(request)
    except KioskError:
        principal = None
    secret = request.cookies.get(SESSION_COOKIE, "")
    ctx = Ctx(request, chosen, principal, csrf_for(secret) if principal and secret else "")
    return ctx.render("error.html", status=status, message_id=message_id, detail=detail)


PAGE_SIZE = 25


def paging(page: int | None) -> tuple[int, int]:
    """``?page=N`` (from 1) → the REST ``limit`` and ``offset``: long lists come in pages."""
    number = page if page and page > 0 else 1
    return PAGE_SIZE, (number - 1) * PAGE_SIZE


def uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
