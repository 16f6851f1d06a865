"""Request-size and concurrency limits, applied before anything reads a body or a token.

Why it is built this way (issue 16, item 1): four 400 MiB bodies to ``/auth/login`` once took
the daemon to 4.6 GB, because the body was read into memory before the password was even
looked at. A limit has to act *before* the application reads the body and *before*
authentication, so it is a pure ASGI middleware on the outside of both listeners:

- ``Content-Length`` above the route's limit: 413 at once; the body is never received.
- No ``Content-Length`` (chunked): bytes are counted as they arrive, and the request is
  answered 413 the moment the count passes the limit; the application sees a disconnect and
  whatever it had started to answer is dropped.
- More requests in flight on one listener than it is meant to serve: 503 with
  ``Retry-After``, so a flood of slow requests cannot starve the kiosk screen's long-poll.

Every refusal is an RFC 9457 problem document, like every other error of the API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:keycabinet:problem:"

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class BodyLimits:
    """The largest request body each kind of route takes."""

    json_bytes: int = 64 * KIB
    """Every JSON body: the largest legitimate one (a 2000-character note, a role list) is a
    few kilobytes, so 64 KiB leaves room without letting anyone park megabytes in memory."""
    import_bytes: int = 8 * MIB
    """Bulk uploads: any route with an ``import`` or ``imports`` path segment
    (``/api/v1/imports/people/preview``, the console's import form). The import service
    refuses a file over 2 MiB itself; the multipart envelope needs a little more."""

    ingest_bytes: int = 8 * MIB
    """A cabinet's log shipped to the hub (``/hub/v1/ingest``): up to 2000 events with the
    checkpoints and records they made; a day's backlog of 500 events is a few hundred KiB."""

    def for_path(self, path: str) -> int:
        segments = set(path.strip("/").split("/"))
        if {"import", "imports"} & segments:
            return self.import_bytes
        if "ingest" in segments:
            return self.ingest_bytes
        return self.json_bytes


def _problem(status: int, slug: str, title: str, detail: str, path: str) -> bytes:
    body = {"type": TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail,
            "instance": path}
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


async def _send_problem(
    send: Send, status: int, slug: str, title: str, detail: str, path: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    payload = _problem(status, slug, title, detail, path)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        # The unread rest of the body makes the connection unusable for another request.
        (b"connection", b"close"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | str | None:
    """The declared length, None when absent, or "bad" when it is not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else "bad"
    return None


class BodySizeLimit:
    """413 for a body over the route's limit, before the application reads any of it."""

    def __init__(self, app: ASGIApp, limits: BodyLimits | None = None) -> None:
        self.app = app
        self.limits = limits or BodyLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.limits.for_path(path)
        declared = _content_length(scope)
        if declared == "bad":
            await _send_problem(send, 400, "bad-request", "Bad request",
                                "Content-Length is not a number", path)
            return
        if isinstance(declared, int) and declared > limit:
            await _send_problem(send, 413, "too-large", "Content too large",
                                f"the body of {declared} bytes exceeds this route's limit of "
                                f"{limit} bytes", path)
            return

        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the application's answer to a "disconnect" it saw; ours goes instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _send_problem(send, 413, "too-large", "Content too large",
                                f"the body exceeds this route's limit of {limit} bytes", path)


class ConcurrencyLimit:
    """503 when more than ``max_requests`` HTTP requests are in flight on this listener."""

    def __init__(self, app: ASGIApp, max_requests: int = 64) -> None:
        self.app = app
        self.max_requests = max_requests
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_requests:
            await _send_problem(send, 503, "busy", "Service busy",
                                f"more than {self.max_requests} requests are in progress; "
                                "try again shortly", scope.get("path", ""),
                                extra=[(b"retry-after", b"1")])
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
