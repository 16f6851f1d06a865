"""Signed webhooks: POST canonical JSON, signed with HMAC-SHA256 over timestamp and body.

Headers of every request:

- ``X-Kiosk-Event``: the event type (``alarm.key_overdue``);
- ``X-Kiosk-Delivery``: the delivery id, the same on every retry: receivers de-duplicate on
  it (delivery is at least once: a crash between the receiver's 200 and our commit sends
  the delivery again after the restart);
- ``X-Kiosk-Timestamp``: Unix seconds when this attempt was signed;
- ``X-Kiosk-Signature``: ``sha256=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>``.

Signing the timestamp with the body lets a receiver refuse replays older than a few
minutes (``verify_signature``'s ``tolerance_s``). A 2xx answer is delivered; a 4xx other than
408 and 429 is permanent (the receiver says the request itself is wrong, a retry would be
refused the same way); everything else (5xx, 408, 429, 3xx, timeouts, refused connections)
is retried with backoff. Redirects are not followed: a signed POST goes only where it was
configured to go.

``send_webhook`` blocks; the dispatcher calls it in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from typing import Any

from kiosk.notify.message import EventView, Message
from kiosk.notify.outcome import Outcome, short
from kiosk.notify.settings import WebhookSettings

SIGNATURE_PREFIX = "sha256="
RETRIED_4XX = frozenset({408, 429})
USER_AGENT = "keycabinet-notify/1"


def canonical_body(document: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the exact bytes that are signed and sent."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def body_of(*, delivery_id: str, event: EventView, message: Message, cabinet_name: str) -> bytes:
    """The webhook document: the delivery id, the event as logged, and its human text."""
    return canonical_body({
        "delivery": delivery_id,
        "cabinet_name": cabinet_name,
        "event": event.as_json(),
        "message": {"subject": message.subject, "text": message.text},
    })


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Kiosk-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body,
                   hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes,
    header: str | None,
    *,
    now: float | dt.datetime,
    tolerance_s: float = 300,
) -> bool:
    """For receivers: True when ``header`` signs ``body`` at ``timestamp`` with ``secret``
    and ``timestamp`` lies within ``tolerance_s`` of ``now`` (Unix seconds or an aware
    datetime). Constant-time; a malformed header or timestamp is simply False."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    try:
        stamp = int(str(timestamp).strip())
    except ValueError:
        return False
    current = now.timestamp() if isinstance(now, dt.datetime) else float(now)
    if abs(current - stamp) > tolerance_s:
        return False
    expected = sign(secret, stamp, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("ascii", "replace"))


def headers_for(
    hook: WebhookSettings, *, body: bytes, event_type: str, delivery_id: str, timestamp: int
) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Kiosk-Event": event_type,
        "X-Kiosk-Delivery": delivery_id,
        "X-Kiosk-Timestamp": str(timestamp),
        "X-Kiosk-Signature": sign(hook.secret.get_secret_value(), timestamp, body),
    }


def classify(status: int) -> tuple[bool, bool]:
    """(delivered, permanent) for an HTTP status."""
    if 200 <= status < 300:
        return True, False
    return False, 400 <= status < 500 and status not in RETRIED_4XX


def send_webhook(
    hook: WebhookSettings, *, body: bytes, event_type: str, delivery_id: str, timestamp: int
) -> Outcome:
    """POST ``body`` once; the outcome says whether it arrived and whether to retry."""
    import httpx  # here, not at the top: 5 MB the daemon carries only if it sends webhooks

    headers = headers_for(hook, body=body, event_type=event_type, delivery_id=delivery_id,
                          timestamp=timestamp)
    started = time.monotonic()
    try:
        response = httpx.post(str(hook.url), content=body, headers=headers,
                              timeout=hook.timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        return Outcome(False, False, None, short(exc),
                       int((time.monotonic() - started) * 1000))
    took = int((time.monotonic() - started) * 1000)
    ok, permanent = classify(response.status_code)
    error = None if ok else short(f"HTTP {response.status_code}: {response.text[:200]}")
    return Outcome(ok, permanent, response.status_code, error, took)
