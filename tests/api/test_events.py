"""The event log over HTTP: filters, cursor pages, CSV, checkpoints, verification and the
live Server-Sent Events feed (over a real socket, since a test client buffers streams)."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from sqlalchemy import text

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.audit import NewEvent
from kiosk.runtime import Runtime
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World
from tests.ports import free_port

V1 = "/api/v1"


def append(world: World, n: int, type_: str = "test.tick", **kw: object) -> None:
    for i in range(n):
        world.audit.append(NewEvent(type=type_, payload={"i": i}, **kw))  # type: ignore[arg-type]


def test_cursor_pages_cover_the_log_once_in_order(world: World) -> None:
    auditor = world.token(AccountRole.AUDITOR)
    append(world, 7)
    append(world, 2, type_="key.special", key_number="E-PWR", rules=["K7"])
    seen: list[int] = []
    after = 0
    while True:
        page = world.client.get(
            f"{V1}/events", headers=auditor, params={"after": after, "limit": 3}
        ).json()
        seen += [e["seq"] for e in page["items"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == list(range(1, len(seen) + 1)) and len(seen) >= 10

    def types(**params: object) -> list[str]:
        got = world.client.get(f"{V1}/events", headers=auditor, params=params)
        assert got.status_code == 200, got.text
        return [e["type"] for e in got.json()["items"]]

    assert types(type="key.special") == ["key.special", "key.special"]
    assert types(rule="K7") == ["key.special", "key.special"]
    assert types(key_number="E-PWR", after=seen[-1] - 1) == ["key.special"]
    assert set(types(type_prefix="account.")) == {"account.created"}
    assert types(actor="console", type_prefix="account.") == ["account.created"]
    assert types(type="test_tick") == []  # "_" is literal, not a wildcard
    one = world.client.get(f"{V1}/events/3", headers=auditor).json()
    assert one["seq"] == 3 and isinstance(one["payload"], dict)
    assert world.client.get(f"{V1}/events/9999", headers=auditor).status_code == 404


def test_csv_export_has_every_matching_row_with_hashes(world: World) -> None:
    auditor = world.token(AccountRole.AUDITOR)
    append(world, 5)
    got = world.client.get(f"{V1}/events/export.csv", headers=auditor, params={"type": "test.tick"})
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/csv")
    assert "attachment" in got.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert [json.loads(r["payload"])["i"] for r in rows] == [0, 1, 2, 3, 4]
    assert all(len(r["hash"]) == 64 and len(r["prev_hash"]) == 64 for r in rows)


def test_checkpoint_export_and_verification_catch_tampering(world: World) -> None:
    admin = world.token(AccountRole.ADMIN)
    auditor = world.token(AccountRole.AUDITOR)
    append(world, 3)
    doc = world.client.post(f"{V1}/audit/checkpoints", headers=admin)
    assert doc.status_code == 201, doc.text
    exported = doc.json()
    assert exported["format"] == "kiosk-checkpoint/1"
    assert world.client.post(f"{V1}/audit/checkpoints", headers=auditor).status_code == 403
    listed = world.client.get(f"{V1}/audit/checkpoints", headers=auditor).json()
    assert listed["items"][0]["seq"] == exported["seq"]
    again = world.client.get(f"{V1}/audit/checkpoints/{exported['seq']}", headers=auditor).json()
    assert again == exported
    ok = world.client.post(f"{V1}/audit/verify", headers=auditor, json={"checkpoint": exported})
    assert ok.json()["ok"] is True

    with world.runtime.engine.begin() as conn:
        conn.execute(text("UPDATE events SET type = 'x' WHERE seq = 2"))
    bad = world.client.get(f"{V1}/audit/verify", headers=auditor).json()
    assert bad["ok"] is False and bad["first_bad_seq"] == 2
    forged = {**exported, "signature": "0" * 128}
    result = world.client.post(f"{V1}/audit/verify", headers=auditor, json={"checkpoint": forged})
    assert any("signature invalid" in p["what"] for p in result.json()["problems"])


# ------------------------------------------------------------------------ live feed
@pytest.fixture
def served(world: World, policy: AuthPolicy) -> Iterator[str]:
    """The same database served by uvicorn on a loopback port, in a thread."""
    app = create_admin_app(
        world.runtime, AdminOptions(auth_policy=policy, stream_heartbeat_seconds=0.2)
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    yield base
    server.should_exit = True
    thread.join(timeout=10)


def _read_events(lines: Iterator[str], count: int) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    current: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in current:
                found.append({"id": int(current["id"]), **json.loads(current["data"])})
                if len(found) == count:
                    return found
            current = {}
        elif not line.startswith(":") and ":" in line:
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")
    return found


def test_live_feed_pushes_new_events_and_resumes_from_last_event_id(
    world: World, served: str, runtime: Runtime
) -> None:
    auditor = world.token(AccountRole.AUDITOR)
    head, _ = runtime.audit.head()
    with httpx.Client(base_url=served, headers=auditor, timeout=10) as client:
        with client.stream("GET", f"{V1}/events/stream") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            # Appended from another thread after the stream opened: pushed, in order.
            writer = threading.Thread(target=append, args=(world, 3))
            writer.start()
            got = _read_events(lines, 3)
            writer.join()
        assert [e["id"] for e in got] == [head + 1, head + 2, head + 3]
        assert [e["type"] for e in got] == ["test.tick"] * 3
        assert [e["payload"] for e in got] == [{"i": 0}, {"i": 1}, {"i": 2}]

        # A client that saw head+1 reconnects with Last-Event-ID and gets the rest first.
        resume = {"Last-Event-ID": str(head + 1)}
        with client.stream("GET", f"{V1}/events/stream", headers=resume) as stream:
            again = _read_events(stream.iter_lines(), 2)
        assert [e["id"] for e in again] == [head + 2, head + 3]
        with client.stream("GET", f"{V1}/events/stream", params={"after": head}) as stream:
            assert [e["id"] for e in _read_events(stream.iter_lines(), 1)] == [head + 1]

        refused = client.get(f"{V1}/events/stream", headers={"Authorization": "Bearer kca_x"})
        assert refused.status_code == 401
