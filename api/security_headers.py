"""Response headers a security review expects of an API that serves personal data.

Every answer of the admin API may carry an owner's phone number or address (A1: owner files
are confidential) or a bearer token (``/auth/login``), so no browser or proxy may keep a
copy (``Cache-Control: no-store``, unless a route chose its own, as the event stream does);
no browser may sniff a JSON body into something it runs, frame the docs page, or leak the
URL in a Referer. Over HTTPS, HSTS tells browsers never to try the plain port again.

A pure ASGI middleware, not ``BaseHTTPMiddleware``: it touches only the response start and
so leaves streaming responses (the SSE event stream, report downloads) as they are.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALWAYS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
HSTS = "max-age=31536000"


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def start_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                if https:
                    headers.setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, start_with_headers)
