"""The cabinet's HTTP client to its hub: every request signed by the device key, every
answer checked against the hub key pinned at enrolment."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from kiosk.audit.device_key import DeviceKey, public_from_hex, verify_signature
from kiosk.errors import KioskError
from kiosk.fleet import protocol
from kiosk.fleet.state import Enrolment


class HubError(KioskError):
    """The hub answered, but not with what was asked (refusal, bad signature)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HubClient:
    def __init__(self, enrolment: Enrolment, device_key: DeviceKey, *,
                 timeout_s: float = 10.0, verify: str | bool = True) -> None:
        self.enrolment, self.device_key = enrolment, device_key
        self.hub_key = public_from_hex(enrolment.hub_public_key)
        self._base = enrolment.hub_url.rstrip("/")
        self._prefix = urlsplit(self._base).path
        self._http = httpx.AsyncClient(timeout=timeout_s, verify=verify)

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, body: Any = None, *,
                   timeout_s: float | None = None) -> Any:
        """Signed request, authenticated answer. Network trouble raises ``httpx.HTTPError``;
        a refusal or an answer not signed by the pinned hub key raises ``HubError``."""
        raw = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        signed = protocol.sign_request(self.device_key.sign, method=method,
                                       path=self._prefix + path,
                                       cabinet_id=self.enrolment.cabinet_id, body=raw)
        headers = {**signed.as_dict(), "Content-Type": "application/json"}
        response = await self._http.request(
            method, self._base + path, content=raw, headers=headers,
            timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT)
        signature = response.headers.get(protocol.H_HUB_SIGNATURE, "")
        message = protocol.response_message(nonce=signed.nonce, status=response.status_code,
                                            body=response.content)
        if not verify_signature(self.hub_key, signature, message):
            raise HubError(response.status_code, f"answer to {method} {path} is not signed by "
                           f"the pinned hub key (status {response.status_code})")
        data = response.json() if response.content else None
        if response.status_code >= 400:
            detail = data.get("detail") if isinstance(data, dict) else data
            raise HubError(response.status_code, f"hub refused {method} {path}: {detail}")
        return data


def enrol_request(hub_url: str, code: str, *, cabinet_id: str, public_key_hex: str,
                  verify: str | bool = True) -> Enrolment:
    """Present the one-time code and the device key; pin the hub key from the answer after
    checking its HMAC under the code (synchronous: run once from the CLI)."""
    body = {"code": code, "cabinet_id": cabinet_id, "public_key": public_key_hex}
    response = httpx.post(hub_url.rstrip("/") + "/enrol", json=body, timeout=15, verify=verify)
    data = response.json()
    if response.status_code != 200:
        detail = data.get("detail") if isinstance(data, dict) else data
        raise HubError(response.status_code, f"enrolment refused: {detail}")
    answer = data.get("answer") or {}
    if protocol.enrolment_mac(code, answer) != data.get("mac"):
        raise HubError(200, "the enrolment answer is not authenticated by the code: "
                       "someone between this cabinet and the hub changed it")
    if answer.get("cabinet_id") != cabinet_id:
        raise HubError(200, "the hub enrolled a different cabinet id")
    return Enrolment(hub_url=hub_url.rstrip("/"), hub_public_key=str(answer["hub_public_key"]),
                     site=str(answer["site"]), cabinet_id=cabinet_id)
