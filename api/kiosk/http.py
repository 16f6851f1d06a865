"""Reading a request and writing an answer on the kiosk listener, on plain Starlette.

Why not FastAPI (issue 15, item 4): the daemon serves the screen from the moment it starts,
and FastAPI with its route models held 6–8 MB of an idle daemon that must stay under 85 MB
(pydantic and Starlette stay: the settings and the middlewares use them). The admin API,
made by its listener's first request, stays on FastAPI. The screen's endpoints are few, so
the little FastAPI did for them is done here, following its rules exactly, so a page, a
test rig or a local script gets the same answers as before (``tests/kiosk/
test_kiosk_answers.py`` was written against the FastAPI app and pins them):

- a body is JSON only when its content type is ``application/json`` or ``application/*+json``
  (parameters and case aside); otherwise, or with no content type, its bytes are validated,
  and refused as not an object;
- a body is validated as Python values (so ``"3"`` is a slot number, ``3.5`` is not), into
  a pydantic model whose every field is checked; a query parameter likewise, the last one
  given counting;
- a refusal is a 422 naming each field by where it is (``body.keys.0``, ``query.since``), a
  body that is not JSON by the position where parsing failed, a missing one as ``body``; a
  body that is not UTF-8 is a 400;
- an answer is the endpoint's dict serialized by pydantic; an ``HTTPException`` (404, 405,
  a simulator's 409) is ``{"detail": ...}`` with its headers.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

Loc = tuple[str | int, ...]
_NO_BODY = object()
_ANSWER = TypeAdapter(dict[str, Any])


class Invalid(Exception):
    """A request the listener cannot take: each refused value by where it is
    (``("body", "keys", 0)``, ``("query", "since")``) and what is wrong with it."""

    def __init__(self, errors: list[tuple[Loc, str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def _refused(exc: ValidationError, *where: str) -> Invalid:
    return Invalid([((*where, *e["loc"]), e["msg"]) for e in exc.errors(include_url=False)])


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json"))


async def body_of(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model``; :class:`Invalid` or a 400 if it is not one."""
    try:
        raw = await request.body()
        value: Any = _NO_BODY
        if raw:
            value = await request.json() if _is_json(request.headers.get("content-type")) \
                else raw
    except json.JSONDecodeError as exc:
        raise Invalid([(("body", exc.pos), "JSON decode error")]) from exc
    except HTTPException:
        raise
    except Exception as exc:  # not UTF-8, or the client went away while sending it
        raise HTTPException(400, "There was an error parsing the body") from exc
    if value is _NO_BODY:
        raise Invalid([(("body",), "Field required")])
    try:
        return model.model_validate(value, from_attributes=True)
    except ValidationError as exc:
        raise _refused(exc, "body") from None


def query_of(request: Request, name: str, kind: TypeAdapter[T], default: T) -> T:
    """The query parameter ``name`` (its last value) as ``kind``, ``default`` when absent."""
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return kind.validate_python(value, from_attributes=True)
    except ValidationError as exc:
        raise _refused(exc, "query", name) from None


def answer(data: dict[str, Any]) -> Response:
    """An endpoint's answer, serialized as FastAPI did for a ``dict[str, Any]`` return."""
    return Response(_ANSWER.dump_json(data), media_type="application/json")


Endpoint = Callable[[Request], Awaitable[Response]]


def route(path: str, endpoint: Endpoint, method: str) -> Route:
    """A route answering ``method`` only. Starlette lets a GET route answer HEAD too; FastAPI
    did not (a 405 saying ``Allow: GET``), and nothing here needs it."""
    made = Route(path, endpoint, methods=[method])
    made.methods = {method}
    return made


async def invalid_answer(_: Request, exc: Exception) -> Response:
    """422 naming each refused field in both languages (as the admin API does)."""
    assert isinstance(exc, Invalid)
    fields = [{"loc": [str(p) for p in loc], "msg": msg} for loc, msg in exc.errors]
    names = ", ".join(".".join(f["loc"][1:]) or "body" for f in fields)
    return JSONResponse(status_code=422, content={
        "code": "invalid_input", "zh": f"输入无效：{names}", "en": f"Invalid input: {names}",
        "detail": "; ".join(f"{'.'.join(f['loc'])}: {f['msg']}" for f in fields),
        "errors": fields,
    })


async def http_error_answer(_: Request, exc: Exception) -> Response:
    """``{"detail": ...}`` with the exception's headers (``Allow`` on a 405)."""
    assert isinstance(exc, HTTPException)
    if exc.status_code < 200 or exc.status_code in {204, 205, 304}:  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                        headers=exc.headers)
