"""``POST /hub/v1/ingest`` checks the signed request and ingests the batch in one transaction
(issue 12, the ingest rate): every refusal of the separate check must still happen, in the
same order, and a request's nonce must stay taken whatever became of its batch. On each
backend, through the hub's real app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import AdminOptions
from api.hub.app import create_hub_app
from kiosk.audit import AuditLog
from kiosk.fleet import ingest as ingest_module
from kiosk.fleet import protocol
from kiosk.fleet.link import read_batch
from kiosk.runtime import Runtime
from kiosk.store.models import Event
from kiosk.store.models_fleet import HubAlarm, HubEvent, HubNonce
from tests.fleet.test_ingest import CAB, enrolled, hub_log  # noqa: F401  (fixtures)

PATH = "/hub/v1/ingest"


@pytest.fixture
def client(enrolled: Runtime) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(create_hub_app(enrolled, AdminOptions())) as c:
        yield c


def _signed(runtime: Runtime, body: bytes) -> dict[str, str]:
    return protocol.sign_request(runtime.device_key.sign, method="POST", path=PATH,
                                 cabinet_id=CAB, body=body).as_dict()


def _held(runtime: Runtime) -> list[int]:
    with Session(runtime.engine) as s:
        return list(s.scalars(select(HubEvent.seq).where(HubEvent.cabinet_id == CAB)
                              .order_by(HubEvent.seq)))


def _refusals(runtime: Runtime) -> list[str]:
    """The ``why`` of each request the hub's chain logged as refused, oldest first."""
    with Session(runtime.engine) as s:
        return [json.loads(e.payload)["why"] for e in s.scalars(
            select(Event).where(Event.type == "fleet.request_refused")
            .order_by(Event.at, Event.seq))]


def _batch(runtime: Runtime) -> dict[str, Any]:
    return read_batch(runtime.engine, CAB, 0, 100)


def test_a_signed_batch_is_held_and_the_same_request_again_is_a_logged_replay(
        enrolled: Runtime, hub_log: AuditLog, client: TestClient) -> None:  # noqa: F811
    body = json.dumps(_batch(enrolled)).encode()
    headers = _signed(enrolled, body)
    first = client.post(PATH, content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["acked_seq"] == 6 and _held(enrolled) == [1, 2, 3, 4, 5, 6]
    again = client.post(PATH, content=body, headers=headers)
    assert again.status_code == 401 and "replayed" in again.json()["detail"]
    assert _refusals(enrolled) == ["replayed request (nonce seen before)"]
    assert _held(enrolled) == [1, 2, 3, 4, 5, 6]


def test_the_signature_is_checked_before_the_body_is_read(
        enrolled: Runtime, client: TestClient) -> None:  # noqa: F811
    """Not JSON and unsigned: 401 (who is asking comes first), not 422; a good batch signed
    over other bytes: 401 and nothing held."""
    answer = client.post(PATH, content=b"{not json", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 401 and "unsigned" in answer.json()["detail"]
    body = json.dumps(_batch(enrolled)).encode()
    forged = client.post(PATH, content=body, headers=_signed(enrolled, body + b" "))
    assert forged.status_code == 401 and "signature" in forged.json()["detail"]
    assert _held(enrolled) == []
    assert _refusals(enrolled) == ["unsigned request",
                                   "signature does not verify with the pinned device key"]


def test_an_unsigned_or_forged_batch_is_never_parsed(
        enrolled: Runtime, client: TestClient,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Who is asking comes before what they sent: an anonymous sender's body (up to the
    body limit, half a megabyte of JSON for a busy batch) costs the hub a hash for the
    signature, never a parse (a security review's "untrusted input parsed before
    authentication")."""
    parsed: list[int] = []
    real = ingest_module.parse_json

    def counting(body: bytes | str) -> Any:
        parsed.append(len(body))
        return real(body)

    monkeypatch.setattr(ingest_module, "parse_json", counting)
    body = json.dumps(_batch(enrolled)).encode()
    assert client.post(PATH, content=body).status_code == 401
    assert client.post(PATH, content=body,
                       headers=_signed(enrolled, body + b" ")).status_code == 401
    assert parsed == []
    assert client.post(PATH, content=body, headers=_signed(enrolled, body)).status_code == 200
    assert parsed == [len(body)]


def test_a_malformed_or_refused_batch_keeps_its_nonce_taken(
        enrolled: Runtime, client: TestClient) -> None:  # noqa: F811
    """The batch's transaction is rolled back when its body is malformed (422) or it breaks
    the chain (409, alarmed): the nonce must stay taken all the same, so the very request
    sent again is a replay, not a second try."""
    broken = _batch(enrolled)
    broken["events"][2]["seq"] = "three"
    edited = _batch(enrolled)
    edited["events"][3]["payload"] = '{"n":99}'
    for doc, status in ((broken, 422), (edited, 409)):
        body = json.dumps(doc).encode()
        headers = _signed(enrolled, body)
        assert client.post(PATH, content=body, headers=headers).status_code == status
        again = client.post(PATH, content=body, headers=headers)
        assert again.status_code == 401 and "replayed" in again.json()["detail"]
    not_json = b'{"head_seq": 6, "events": [NaN]}'
    headers = _signed(enrolled, not_json)
    assert client.post(PATH, content=not_json, headers=headers).status_code == 422
    assert client.post(PATH, content=not_json, headers=headers).status_code == 401
    assert _held(enrolled) == []
    with Session(enrolled.engine) as s:
        assert s.scalar(select(func.count()).select_from(HubNonce)) == 3
        assert [a.kind for a in s.scalars(select(HubAlarm).order_by(HubAlarm.kind))] == [
            "edited_event", "refused_request"]
    assert _refusals(enrolled) == ["replayed request (nonce seen before)"] * 3
