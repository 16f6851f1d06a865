"""The signed-request protocol between a cabinet and its hub. Pure functions, no I/O.

Every request from a cabinet carries four headers: the cabinet id, a Unix timestamp, a
random nonce and an Ed25519 signature by the cabinet's device key over
``request_message``: method, path with query, cabinet id, timestamp, nonce and the
SHA-256 of the body. The hub answers with a signature by its own key over
``response_message``: the request's nonce, the status and the SHA-256 of the answer, so a
cabinet knows the answer came from the hub it enrolled with and belongs to its request.

Why signed requests and not mutual TLS is in docs/fleet.md ("Authentication").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from kiosk.audit.chain import canonical_json

H_CABINET = "X-Kiosk-Cabinet"
H_TIME = "X-Kiosk-Time"
H_NONCE = "X-Kiosk-Nonce"
H_SIGNATURE = "X-Kiosk-Signature"
H_HUB_SIGNATURE = "X-Kiosk-Hub-Signature"
CLOCK_WINDOW_S = 300
"""A request older or newer than this (by the hub's clock) is refused; nonces are kept
this long, so a replay inside the window is refused by its nonce, outside by its time."""
PROTOCOL = "kiosk-fleet/1"


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def request_message(*, method: str, path: str, cabinet_id: str, timestamp: int, nonce: str,
                    body: bytes) -> bytes:
    """The exact bytes a cabinet's request signature covers."""
    return canonical_json({
        "type": f"{PROTOCOL}/request", "method": method.upper(), "path": path,
        "cabinet_id": cabinet_id, "time": timestamp, "nonce": nonce,
        "body_sha256": body_digest(body),
    }).encode("utf-8")


def response_message(*, nonce: str, status: int, body: bytes) -> bytes:
    """The exact bytes the hub's answer signature covers."""
    return canonical_json({
        "type": f"{PROTOCOL}/response", "nonce": nonce, "status": status,
        "body_sha256": body_digest(body),
    }).encode("utf-8")


def new_nonce() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class SignedHeaders:
    cabinet_id: str
    timestamp: int
    nonce: str
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {H_CABINET: self.cabinet_id, H_TIME: str(self.timestamp), H_NONCE: self.nonce,
                H_SIGNATURE: self.signature}


def sign_request(sign: Any, *, method: str, path: str, cabinet_id: str, body: bytes,
                 now: float | None = None) -> SignedHeaders:
    """``sign`` is ``DeviceKey.sign`` (bytes -> hex signature)."""
    timestamp = int(now if now is not None else time.time())
    nonce = new_nonce()
    message = request_message(method=method, path=path, cabinet_id=cabinet_id,
                              timestamp=timestamp, nonce=nonce, body=body)
    return SignedHeaders(cabinet_id, timestamp, nonce, sign(message))


def within_window(timestamp: int, now: float, window_s: int = CLOCK_WINDOW_S) -> bool:
    return abs(now - timestamp) <= window_s


# ------------------------------------------------------------------------ enrolment
def code_hash(code: str) -> str:
    """Only the hash of a one-time code is stored at the hub."""
    return hashlib.sha256(normalise_code(code).encode("utf-8")).hexdigest()


def normalise_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()


def enrolment_mac(code: str, answer: dict[str, Any]) -> str:
    """HMAC of the enrolment answer under the one-time code: the code is a secret only the
    admin and the cabinet hold, so a man in the middle cannot substitute its own hub key
    into the answer (the cabinet pins the hub key it receives here)."""
    return hmac.new(normalise_code(code).encode("utf-8"),
                    canonical_json(answer).encode("utf-8"), hashlib.sha256).hexdigest()


def new_code() -> str:
    """12 characters from an alphabet without look-alikes, shown as XXXX-XXXX-XXXX."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"
