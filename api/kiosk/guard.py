"""The kiosk listener's front door: loopback Host names only, and a page nothing can frame.

Why (issue 16, item 9): the listener is bound to 127.0.0.1, but a browser on the cabinet
(the kiosk screen itself) will send requests there for any page it loads. A web page whose
DNS name is re-pointed at 127.0.0.1 (DNS rebinding) would then be same-origin with the
screen's endpoints and could open slots. Such a request still carries the attacker's name in
``Host``; answering only the loopback names the screen itself uses refuses it.

The page's Content-Security-Policy allows only the screen's own files (no inline script, no
other origin) and ``frame-ancestors 'none'`` stops another page from framing the screen to
trick a touch.
"""

from __future__ import annotations

import json

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def host_allowed(host: str, port: int | None) -> bool:
    """``host`` (a Host header) names this machine's loopback, on ``port`` when given."""
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 literal: "[::1]:8081"
        end = host.find("]")
        name, rest = (host[: end + 1], host[end + 1 :]) if end > 0 else ("", "")
    else:
        name, colon, given = host.partition(":")
        rest = colon + given
    if rest and not rest.startswith(":"):
        return False
    if name not in LOOPBACK_NAMES:
        return False
    return port is None or rest[1:] == str(port)


class KioskGuard:
    """421 for a Host that is not this listener's loopback name; security headers on all."""

    def __init__(self, app: ASGIApp, port: int | None = None) -> None:
        self.app = app
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next(
            (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), ""
        )
        if not host_allowed(host, self.port):
            body = json.dumps({
                "code": "wrong_host",
                "detail": f"this listener answers only its loopback address, not {host!r}",
            }).encode()
            await send({"type": "http.response.start", "status": 421, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.encode(), v.encode()) for k, v in HEADERS.items()),
            ]})
            await send({"type": "http.response.body", "body": body})
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)
