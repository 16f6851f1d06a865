"""The hub's ingest, request authentication and configuration cursor, on each backend.

The process tests (test_fleet.py) show these working between real daemons; here each
refusal kind is produced exactly, with the hub's copy checked to be untouched.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.chain import checkpoint_message, event_hash
from kiosk.audit.device_key import DeviceKey, load_or_create
from kiosk.errors import InvalidRequest, NotAuthenticated, PermissionDenied
from kiosk.fleet import hub, protocol
from kiosk.fleet.apply import apply_changes
from kiosk.fleet.changes import changes_since, install_change_tracking, prepare_hub_database
from kiosk.fleet.ingest import EVENT_FIELDS, Batch, ingest
from kiosk.fleet.link import read_batch
from kiosk.fleet.refusal import Refused
from kiosk.runtime import Runtime
from kiosk.services.authz import Principal
from kiosk.services.cards import issue_card, revoke
from kiosk.store.db import write_session
from kiosk.store.models import Card, CardKind, CardStatus, DutyShift, Person
from kiosk.store.models_auth import AccountRole, TokenKind
from kiosk.store.models_fleet import (
    HubAlarm,
    HubCabinet,
    HubCheckpoint,
    HubEvent,
    HubRecord,
    HubRecordCount,
)

CAB = "cab-test"


@pytest.fixture
def hub_log(runtime: Runtime, tmp_path: Any) -> AuditLog:
    """The hub's own log on the same database (another cabinet id, another key)."""
    return AuditLog(runtime.engine, cabinet_id="hub",
                    device_key=load_or_create(tmp_path / "hub.pem"))


@pytest.fixture
def enrolled(runtime: Runtime, hub_log: AuditLog) -> Iterator[Runtime]:
    with write_session(runtime.engine) as s:
        hub.create_site(s, hub_log, code="tower-a", name="Tower A", actors=["test"])
        code, _ = hub.create_enrolment_code(s, hub_log, site_code="tower-a", actors=["test"])
    with write_session(runtime.engine) as s:
        hub.enrol(s, hub_log, code=code, cabinet_id=CAB,
                  public_key_hex=runtime.device_key.public_hex)
    for n in range(6):
        runtime.audit.append(NewEvent(type="test.event", payload={"n": n}))
    yield runtime


def _batch(runtime: Runtime, acked: int = 0) -> dict[str, Any]:
    return read_batch(runtime.engine, CAB, acked, 100)


def _held(runtime: Runtime) -> list[tuple[int, str]]:
    with Session(runtime.engine) as s:
        return [(e.seq, e.hash) for e in s.scalars(
            select(HubEvent).where(HubEvent.cabinet_id == CAB).order_by(HubEvent.seq))]


def _alarm_kinds(runtime: Runtime) -> list[str]:
    with Session(runtime.engine) as s:
        return [a.kind for a in s.scalars(select(HubAlarm).where(HubAlarm.cabinet_id == CAB))]


def test_a_batch_is_held_once_however_often_it_is_sent(enrolled: Runtime,
                                                       hub_log: AuditLog) -> None:
    doc = _batch(enrolled)
    first = ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    again = ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    assert (first.new_events, again.new_events) == (6, 0)
    assert again.acked_seq == 6
    assert _held(enrolled) == [(e["seq"], e["hash"]) for e in doc["events"]]
    assert _alarm_kinds(enrolled) == []


def test_an_edited_row_is_refused_and_alarmed_and_nothing_is_written(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    doc = _batch(enrolled)
    doc["events"][3]["payload"] = '{"n":99}'
    with pytest.raises(Refused) as refused:
        ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    assert (refused.value.kind, refused.value.seq) == ("edited_event", 4)
    assert _held(enrolled) == [], "a refused batch writes nothing, not even its good rows"
    assert _alarm_kinds(enrolled) == ["edited_event"]


def test_a_gap_is_refused(enrolled: Runtime, hub_log: AuditLog) -> None:
    doc = _batch(enrolled)
    del doc["events"][2]
    with pytest.raises(Refused) as refused:
        ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    assert refused.value.kind == "gap"


def test_a_rewritten_chain_is_a_fork_and_the_hub_keeps_its_copy(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    doc = _batch(enrolled)
    ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    held = _held(enrolled)
    forged = copy.deepcopy(doc)
    prev = forged["events"][1]["hash"]
    for event in forged["events"][2:]:  # rewrite from seq 3 on, every hash consistent
        event["payload"] = event["payload"].replace("}", ',"forged":true}')
        event["prev_hash"] = prev
        event["hash"] = prev = event_hash(**{k: v for k, v in _typed(event).items()
                                             if k != "hash"})
    with pytest.raises(Refused) as refused:
        ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(forged))
    assert (refused.value.kind, refused.value.seq) == ("fork", 3)
    assert _held(enrolled) == held


def test_a_log_that_went_backwards_is_refused(enrolled: Runtime, hub_log: AuditLog) -> None:
    ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(_batch(enrolled)))
    old = _batch(enrolled)
    old["head_seq"], old["events"] = 4, old["events"][:4]  # an old backup's head
    with pytest.raises(Refused) as refused:
        ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(old))
    assert refused.value.kind == "log_backwards"
    assert "backup" in str(refused.value)


def test_a_checkpoint_signed_by_another_key_is_refused(enrolled: Runtime,
                                                       hub_log: AuditLog) -> None:
    enrolled.audit.checkpoint()
    doc = _batch(enrolled)
    assert doc["checkpoints"]
    doc["checkpoints"][0]["signature"] = hub_log.device_key.sign(b"something else")
    with pytest.raises(Refused) as refused:
        ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    assert refused.value.kind == "bad_checkpoint"


def _signed_checkpoint(runtime: Runtime, seq: int, head_hash: str) -> dict[str, Any]:
    """A checkpoint properly signed by the cabinet's own key, over whatever hash it names."""
    signed_at = dt.datetime(2026, 12, 5, 9, tzinfo=dt.UTC)
    return {"seq": seq, "head_hash": head_hash, "signed_at": signed_at.isoformat(),
            "key_id": runtime.device_key.key_id,
            "signature": runtime.device_key.sign(checkpoint_message(
                cabinet_id=CAB, seq=seq, head_hash=head_hash, signed_at=signed_at))}


def test_a_signed_checkpoint_that_disagrees_with_the_chain_is_a_fork(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    """Signed by the right key but naming another hash: in the same batch as its event, or
    for an event the hub held from an earlier batch, the hub keeps its copy."""
    doc = _batch(enrolled)
    doc["checkpoints"] = [_signed_checkpoint(enrolled, 4, "ab" * 32)]
    with pytest.raises(Refused) as refused:
        ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    assert (refused.value.kind, refused.value.seq) == ("fork", 4)
    assert _held(enrolled) == []
    ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(_batch(enrolled)))
    held = _held(enrolled)
    later = {**_batch(enrolled, 6), "checkpoints": [_signed_checkpoint(enrolled, 2, "cd" * 32)]}
    with pytest.raises(Refused) as refused:
        ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(later))
    assert (refused.value.kind, refused.value.seq) == ("fork", 2)
    assert _held(enrolled) == held


def test_a_checkpoint_is_held_once_and_moves_the_checkpoint_cursor(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    doc = _batch(enrolled)
    doc["checkpoints"] = [_signed_checkpoint(enrolled, 3, doc["events"][2]["hash"])]
    ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))  # resent: held once
    with Session(enrolled.engine) as s:
        assert s.scalars(select(HubCheckpoint.seq).where(
            HubCheckpoint.cabinet_id == CAB)).all() == [3]
        assert s.scalars(select(HubCabinet.checkpoint_seq).where(
            HubCabinet.cabinet_id == CAB)).one() == 3


def test_a_resent_anchor_with_new_events_appends_only_the_new_ones(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    """The shipper's shape: the event at the cursor again, then what follows it."""
    doc = _batch(enrolled)
    first = {**doc, "events": doc["events"][:3]}
    ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(first))
    rest = {**doc, "events": doc["events"][2:]}
    done = ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(rest))
    assert (done.new_events, done.acked_seq) == (3, 6)
    assert _held(enrolled) == [(e["seq"], e["hash"]) for e in doc["events"]]


def test_one_seq_twice_in_a_batch_with_other_content_is_a_fork(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    doc = _batch(enrolled)
    twin = {**doc["events"][3], "payload": '{"n":99}'}
    twin["hash"] = event_hash(**{k: v for k, v in _typed(twin).items() if k != "hash"})
    doc["events"].insert(4, twin)
    with pytest.raises(Refused) as refused:
        ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    assert (refused.value.kind, refused.value.seq) == ("fork", 4)
    assert _held(enrolled) == []


def test_an_event_time_in_another_iso_spelling_still_verifies(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    """The hash covers ``format_time`` of the time, however the batch spells the instant."""
    doc = _batch(enrolled)
    for event in doc["events"]:
        event["at"] = event["at"].replace("Z", "+00:00")
    assert ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc)).new_events == 6


def test_an_event_field_of_the_wrong_type_is_a_clear_error_and_writes_nothing(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    doc = _batch(enrolled)
    doc["events"][1]["payload"] = {"n": 1}  # JSON object, not the stored JSON text
    with pytest.raises(InvalidRequest, match="payload must be text"):
        ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    assert _held(enrolled) == []


def test_a_field_the_log_does_not_have_is_neither_held_nor_trusted(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    """A sender adding fields to an event (a newer cabinet, or someone hoping the hub keeps
    what the chain does not cover): the hash is over the log's own fields only, so the batch
    verifies, and the hub holds exactly those fields: nothing unsigned rides along."""
    doc = _batch(enrolled)
    for event in doc["events"]:
        event["approved_by"] = "someone who never signed"
        event["received_at"] = "1999-01-01T00:00:00.000000Z"
    assert ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc)).new_events == 6
    assert _held(enrolled) == [(e["seq"], e["hash"]) for e in doc["events"]]
    with Session(enrolled.engine) as s:
        rows = s.execute(select(HubEvent.__table__).where(HubEvent.cabinet_id == CAB)
                         .order_by(HubEvent.seq)).mappings().all()
    signed = [name for name in EVENT_FIELDS if name != "at"]
    # every stored column is a signed field or the hub's own; the signed ones as sent
    assert set(rows[0]) == set(EVENT_FIELDS) | {"received_at"}
    assert [{n: r[n] for n in signed} for r in rows] == [{n: e[n] for n in signed}
                                                         for e in doc["events"]]
    assert all(r["received_at"].year > 2000 for r in rows)  # the hub's own time, not theirs


def test_a_record_held_for_another_cabinet_is_never_overwritten(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    loan_id = uuid.uuid4()
    with write_session(enrolled.engine) as s:
        s.add(HubRecord(kind="loan", record_id=loan_id, cabinet_id="cab-other",
                        body='{"mine":true}'))
    doc = {**_batch(enrolled), "records": [{"kind": "loan", "id": str(loan_id),
                                            "body": {"mine": False}}]}
    with pytest.raises(Refused) as refused:
        ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    assert refused.value.kind == "foreign_record"
    with Session(enrolled.engine) as s:
        held = s.get(HubRecord, ("loan", loan_id))
        assert held is not None and (held.cabinet_id, held.body) == ("cab-other",
                                                                     '{"mine":true}')
    assert _held(enrolled) == []
    assert _counts(enrolled) == {}  # the lists' totals never count a record not kept
    assert "foreign_record" in _alarm_kinds(enrolled)


def _counts(runtime: Runtime) -> dict[tuple[str, str], int]:
    """The sending cabinet's kept counts per (kind, facet), as the lists' totals read them."""
    with Session(runtime.engine) as s:
        return {(c.kind, c.facet): c.n for c in s.scalars(
            select(HubRecordCount).where(HubRecordCount.cabinet_id == CAB)) if c.n}


def test_a_record_another_cabinet_commits_meanwhile_refuses_the_batch_on_postgresql(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    """Two cabinets send one record id at once: the other cabinet's row is being written
    when this batch's upsert reads the held copies, so they do not show it; the upsert
    then waits for it and meets it as a conflict. The batch must be refused (the same
    refusal and alarm as a record held before), with nothing kept and no count moved."""
    if enrolled.engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes one writer at a time: two cabinets cannot write at once")
    loan_id = uuid.uuid4()
    doc = {**_batch(enrolled), "records": [
        {"kind": "loan", "id": str(loan_id), "body": {"drawn_at": "2026-01-01T08:00:00Z"}},
        {"kind": "loan", "id": str(uuid.uuid4()), "body": {"drawn_at": "2026-01-01T09:00:00Z"}}]}
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            outcome["done"] = ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
        except Refused as refused:
            outcome["refused"] = refused

    with enrolled.engine.connect() as other:  # the other cabinet's ingest, not committed
        other.execute(insert(HubRecord).values(kind="loan", record_id=loan_id,
                                               cabinet_id="cab-other", body='{"mine":true}',
                                               received_at=dt.datetime.now(dt.UTC)))
        sender = threading.Thread(target=send)
        sender.start()
        with enrolled.engine.connect() as watch:  # until the upsert waits on that row
            for _ in range(600):
                waiting = watch.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one()
                if waiting or not sender.is_alive():
                    break
                time.sleep(0.05)
        assert sender.is_alive(), outcome  # it waited for the other cabinet's row
        other.commit()
    sender.join()
    assert "refused" in outcome, outcome
    assert outcome["refused"].kind == "foreign_record"
    assert "cab-other" in str(outcome["refused"])
    with Session(enrolled.engine) as s:
        theirs = s.get(HubRecord, ("loan", loan_id))
        assert theirs is not None and theirs.cabinet_id == "cab-other"
        assert s.scalar(select(func.count()).select_from(HubRecord).where(
            HubRecord.cabinet_id == CAB)) == 0  # the batch's other loan went too
    assert _counts(enrolled) == {}
    assert _held(enrolled) == []
    assert "foreign_record" in _alarm_kinds(enrolled)


def test_a_record_body_with_nan_or_infinity_is_refused_as_malformed_and_writes_nothing(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    """``NaN``/``Infinity`` are not JSON (RFC 8259; PostgreSQL's jsonb refuses them), though
    Python's parser takes them: a body holding one was stored as text that broke every
    ``body::jsonb`` read (migration 0024's upgrade stopped on it). Sent over the wire the
    batch is a 422 like other malformed input; built in-process, a clear InvalidRequest."""
    from fastapi.testclient import TestClient

    from api.deps import AdminOptions
    from api.hub.app import create_hub_app

    loan = {"kind": "loan", "id": str(uuid.uuid4()), "body": {"drawn_at": "2026-01-01T08:00:00Z",
                                                              "quantity": float("nan")}}
    doc = {**_batch(enrolled), "records": [loan]}
    with TestClient(create_hub_app(enrolled, AdminOptions())) as client:
        for constant in ("NaN", "Infinity", "-Infinity"):
            body = json.dumps(doc).replace("NaN", constant).encode()
            assert constant.encode() in body
            signed = protocol.sign_request(enrolled.device_key.sign, method="POST",
                                           path="/hub/v1/ingest", cabinet_id=CAB, body=body)
            answer = client.post("/hub/v1/ingest", content=body, headers=signed.as_dict())
            assert answer.status_code == 422, answer.text
            assert constant in answer.json()["detail"]
    with pytest.raises(InvalidRequest, match="malformed record"):
        ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(doc))
    assert _held(enrolled) == [] and _counts(enrolled) == {}
    with Session(enrolled.engine) as s:
        assert s.scalar(select(func.count()).select_from(HubRecord)) == 0


def _typed(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "at": dt.datetime.fromisoformat(event["at"].replace("Z", "+00:00"))}


# ------------------------------------------------------------------- authentication
def _headers(key: DeviceKey, path: str, *, now: float, cabinet_id: str = CAB) -> dict[str, str]:
    signed = protocol.sign_request(key.sign, method="GET", path=path, cabinet_id=cabinet_id,
                                   body=b"", now=now)
    return {k.lower(): v for k, v in signed.as_dict().items()}


def test_signed_requests_replays_stale_times_strangers_and_revoked_cabinets(
        enrolled: Runtime, hub_log: AuditLog, tmp_path: Any) -> None:
    now = time.time()
    headers = _headers(enrolled.device_key, "/hub/v1/cursor", now=now)
    ok = hub.authenticate(hub_log, method="GET", path="/hub/v1/cursor", headers=headers,
                          body=b"", now=now)
    assert ok.cabinet_id == CAB
    with pytest.raises(NotAuthenticated, match="replayed"):
        hub.authenticate(hub_log, method="GET", path="/hub/v1/cursor", headers=headers,
                         body=b"", now=now)
    with pytest.raises(NotAuthenticated, match="signature"):  # same headers, other path
        hub.authenticate(hub_log, method="GET", path="/hub/v1/changes",
                         headers=_headers(enrolled.device_key, "/hub/v1/cursor", now=now),
                         body=b"", now=now)
    stale = _headers(enrolled.device_key, "/hub/v1/cursor", now=now - 900)
    with pytest.raises(NotAuthenticated, match="window"):
        hub.authenticate(hub_log, method="GET", path="/hub/v1/cursor", headers=stale,
                         body=b"", now=now)
    stranger = load_or_create(tmp_path / "stranger.pem")
    with pytest.raises(NotAuthenticated, match="not enrolled"):
        hub.authenticate(hub_log, method="GET", path="/hub/v1/cursor", body=b"", now=now,
                         headers=_headers(stranger, "/hub/v1/cursor", now=now,
                                          cabinet_id="cab-x"))
    with write_session(enrolled.engine) as s:
        hub.revoke_cabinet(s, hub_log, cabinet_id=CAB, actors=["test"])
    with pytest.raises(PermissionDenied):
        hub.authenticate(hub_log, method="GET", path="/hub/v1/cursor", body=b"", now=now,
                         headers=_headers(enrolled.device_key, "/hub/v1/cursor", now=now))
    with Session(enrolled.engine) as s:
        refused = s.scalar(select(func.count()).select_from(HubAlarm)
                           .where(HubAlarm.kind == "refused_request"))
    assert refused == 1 and _alarm_kinds(enrolled) == ["refused_request"]


def test_enrolment_codes_work_once(runtime: Runtime, hub_log: AuditLog) -> None:
    with write_session(runtime.engine) as s:
        hub.create_site(s, hub_log, code="tower-b", name="Tower B", actors=["test"])
        code, _ = hub.create_enrolment_code(s, hub_log, site_code="tower-b", actors=["test"])
    with write_session(runtime.engine) as s:
        done = hub.enrol(s, hub_log, code=code.lower(), cabinet_id="cab-1",
                         public_key_hex=runtime.device_key.public_hex)
    assert done.site == "tower-b" and done.hub_public_key == hub_log.device_key.public_hex
    with pytest.raises(NotAuthenticated), write_session(runtime.engine) as s:
        hub.enrol(s, hub_log, code=code, cabinet_id="cab-2",
                  public_key_hex=runtime.device_key.public_hex)


# --------------------------------------------------------------- configuration cursor
def test_a_revocation_flows_down_by_version_cursor(runtime: Runtime, hub_log: AuditLog,
                                                   tmp_path: Any) -> None:
    """The hub tracks the card change; a cabinet on its own database applies it."""
    from kiosk.config import Settings

    install_change_tracking(runtime.engine)
    prepare_hub_database(runtime.engine)
    admin = Principal(account_id=uuid.uuid4(), username="root", role=AccountRole.ADMIN,
                      person_id=None, department_id=None, permissions=frozenset(),
                      token_id=uuid.uuid4(), token_kind=TokenKind.ACCESS)
    with write_session(runtime.engine) as s:
        person = Person(staff_no="E1001", name="张工")
        s.add(person)
        s.flush()
        card = issue_card(s, hub_log, by=admin, uid="a1b2c3d4", person_id=person.id,
                          kind=CardKind.STAFF, valid_from=None, valid_to=None)
        card_id = card.id
    with Session(runtime.engine) as s:
        version, snapshot = changes_since(s, 0)
    cabinet = Runtime.open(Settings(data_dir=tmp_path / "cab", cabinet_id="cab-9"))
    try:
        apply_changes(cabinet.audit, version=version, changes=snapshot)
        with write_session(runtime.engine) as s:
            revoke(s, hub_log, by=admin, card_id=card_id, note="lost")
        with Session(runtime.engine) as s:
            newer, delta = changes_since(s, version)
        assert newer > version and [c["entity"] for c in delta] == ["card"]
        assert apply_changes(cabinet.audit, version=newer, changes=delta) == ["A1B2C3D4"]
        assert apply_changes(cabinet.audit, version=newer, changes=delta) == []  # idempotent
        with Session(cabinet.engine) as s:
            held = s.scalars(select(Card).where(Card.uid == "A1B2C3D4")).one()
            assert held.status == CardStatus.REVOKED
        with Session(runtime.engine) as s:
            assert changes_since(s, newer) == (newer, [])

        # K8: a duty shift added at the hub arrives; deleted at the hub, it goes.
        start = dt.datetime(2026, 12, 7, 10, tzinfo=dt.UTC)
        with write_session(runtime.engine) as s:
            shift = DutyShift(person_id=person.id, starts_at=start,
                              ends_at=start + dt.timedelta(hours=12))
            s.add(shift)
        with Session(runtime.engine) as s:
            v3, delta = changes_since(s, newer)
        apply_changes(cabinet.audit, version=v3, changes=delta)
        with Session(cabinet.engine) as s:
            held_shift = s.get(DutyShift, shift.id)
            assert held_shift is not None and held_shift.starts_at == start
            assert held_shift.person.staff_no == "E1001"
        with write_session(runtime.engine) as s:
            s.delete(s.get(DutyShift, shift.id))
        with Session(runtime.engine) as s:
            v4, delta = changes_since(s, v3)
        assert [(c["entity"], c["deleted"]) for c in delta] == [("duty_shift", True)]
        apply_changes(cabinet.audit, version=v4, changes=delta)
        with Session(cabinet.engine) as s:
            assert s.get(DutyShift, shift.id) is None
    finally:
        cabinet.close()


def test_an_alarm_and_its_later_note_reach_the_hub_as_its_latest_copy_F1(
        enrolled: Runtime, hub_log: AuditLog) -> None:
    """Records a cabinet owns go up with the event that made or changed them."""
    import json

    from kiosk.services.alarms import add_note, raise_alarm
    from kiosk.store.models_fleet import HubRecord

    with write_session(enrolled.engine) as s:
        person = Person(staff_no="C2001", name="李客服")
        s.add(person)
        s.flush()
        alarm = raise_alarm(s, enrolled.audit, kind="door_forced", message="door forced",
                            actors=[])
        alarm_id, person_id = alarm.id, person.id
    done = ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(_batch(enrolled)))
    by = Principal(account_id=uuid.uuid4(), username="cs", role=AccountRole.CUSTODIAN,
                   person_id=person_id, department_id=None, permissions=frozenset(),
                   token_id=uuid.uuid4(), token_kind=TokenKind.ACCESS)
    with write_session(enrolled.engine) as s:
        add_note(s, enrolled.audit, by=by, alarm_id=alarm_id, note="checked, door shut")
    ingest(hub_log, cabinet_id=CAB, batch=Batch.parse(_batch(enrolled, done.acked_seq)))
    with Session(enrolled.engine) as s:
        held = s.get(HubRecord, ("alarm", alarm_id))
        assert held is not None and held.cabinet_id == CAB
        assert [n["text"] for n in json.loads(held.body)["notes"]] == ["checked, door shut"]


def test_a_change_made_outside_the_hub_process_is_seen_on_postgresql(runtime: Runtime) -> None:
    """On the hub's PostgreSQL, triggers record a change made by any writer (here plain SQL,
    as a CLI or a DBA would); elsewhere the hub's own ORM writes are recorded."""
    from sqlalchemy import text

    install_change_tracking(runtime.engine)
    prepare_hub_database(runtime.engine)
    with write_session(runtime.engine) as s:
        person = Person(staff_no="E2002", name="王工")
        s.add(person)
        s.flush()
        s.add(Card(uid="0A0B0C0D", person_id=person.id))
    with Session(runtime.engine) as s:
        version, _ = changes_since(s, 0)
    if runtime.engine.dialect.name == "postgresql":
        with runtime.engine.begin() as conn:
            conn.execute(text("UPDATE cards SET status = 'lost' WHERE uid = '0A0B0C0D'"))
    else:
        with write_session(runtime.engine) as s:
            s.scalars(select(Card).where(Card.uid == "0A0B0C0D")).one().status = CardStatus.LOST
    with Session(runtime.engine) as s:
        newer, delta = changes_since(s, version)
    assert newer > version
    assert [(c["entity"], c["row"]["status"]) for c in delta] == [("card", "lost")]
