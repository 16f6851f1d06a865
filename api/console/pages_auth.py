"""Sign-in and sign-out: the API's own login (lockout, rate limit, audit) behind a cookie."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.console import forms
from api.console.routes import router
from api.console.web import (
    BASE,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    AnyCtx,
    CtxDep,
    Refused,
    _same_origin,
    new_prelogin_token,
)
from api.routes import auth
from kiosk.errors import NotAuthenticated, TooManyAttempts

LOGIN_KINDS = {"username": "text", "password": "text"}


def _safe_next(target: str | None) -> str:
    """Only a console path: ``next`` must not send the signed-in person to another site."""
    if target and target.startswith(BASE + "/") and not target.startswith("//") and (
        "\\" not in target
    ):
        return target
    return BASE + "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(ctx: AnyCtx, next: str | None = None) -> Response:
    if ctx.principal is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    if not ctx.csrf:
        ctx.csrf = new_prelogin_token()
        ctx.cookies[PRELOGIN_COOKIE] = ctx.csrf
    return ctx.render("login.html", title_id="auth.title", next=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(ctx: AnyCtx, request: Request) -> Response:
    data = await request.form()
    if not _same_origin(request):
        raise Refused(403, "csrf.cross_site")
    sent = data.get("csrf")
    cookie = request.cookies.get(PRELOGIN_COOKIE, "")
    if not isinstance(sent, str) or not cookie or not hmac.compare_digest(sent, cookie):
        raise Refused(403, "csrf.bad_token")
    values = {"username": data.get("username") or "", "password": data.get("password") or ""}
    target = _safe_next(str(data.get("next") or ""))
    form = {"username": values["username"]}
    try:
        body = auth.LoginIn.model_validate(values)
    except ValidationError as exc:
        return ctx.render("login.html", status=422, title_id="auth.title", next=target,
                          form=form, errors=forms.field_errors(exc, ctx.lang, LOGIN_KINDS))
    try:
        token = ctx.rest(auth.login, body=body)
    except TooManyAttempts as exc:
        return ctx.render("login.html", status=429, title_id="auth.title", next=target, form=form,
                          problem=ctx.t("auth.too_many", seconds=exc.retry_after))
    except NotAuthenticated:
        return ctx.render("login.html", status=401, title_id="auth.title", next=target, form=form,
                          errors={"password": ctx.t("auth.wrong")})
    response = ctx.redirect(target)
    response.set_cookie(SESSION_COOKIE, token.access_token, httponly=True, samesite="strict",
                        secure=ctx.https, path=BASE)
    response.delete_cookie(PRELOGIN_COOKIE, path=BASE)
    return response


@router.post("/logout")
async def logout(ctx: CtxDep) -> Response:
    await ctx.form()
    ctx.rest(auth.logout)
    response = ctx.redirect(BASE + "/login", flash="signed_out")
    response.delete_cookie(SESSION_COOKIE, path=BASE)
    return response
