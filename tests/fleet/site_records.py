"""A cabinet's day, shipped to the hub the way the shipper does: a key out (overdue), a
key back, a forced door with a follow-up note and an issued daily report (and, on request,
a key received and a shift handover), written as the
cabinet's own records in its SQLite with the events that explain them, then read by
``read_batch`` and ingested by the hub (``kiosk.fleet.link`` → ``kiosk.fleet.ingest``)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.fleet.ingest import Batch, ingest
from kiosk.fleet.link import read_batch
from kiosk.runtime import Runtime
from kiosk.store.db import write_session
from kiosk.store.models import (
    Alarm,
    AlarmNote,
    AlarmState,
    Cabinet,
    Handover,
    HandoverState,
    IntakeRecord,
    Key,
    KeyCategory,
    KeyGroup,
    Loan,
    Person,
)
from kiosk.store.models_fleet import HubCabinet
from kiosk.store.models_reports import Report

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Shipped:
    out_loan: uuid.UUID
    returned_loan: uuid.UUID
    alarm: uuid.UUID
    report: uuid.UUID


def ship_a_day(hub_log: AuditLog, cab: Runtime, *, key_id: uuid.UUID, key_number: str,
               person_id: uuid.UUID, staff_no: str, name: str) -> Shipped:
    """The cabinet holds the hub's key and person rows under the hub's ids (as a pull
    leaves them); its records are shipped and ingested at the hub."""
    code = cab.settings.cabinet_id
    with write_session(cab.engine) as s:
        cabinet = s.scalars(select(Cabinet).where(Cabinet.code == code)).one()
        group = s.scalars(select(KeyGroup).where(KeyGroup.code == "OFFICE")).first()
        if group is None:
            group = KeyGroup(code="OFFICE", name="办公室")
            s.add(group)
            s.flush()
        if s.get(Key, key_id) is None:
            s.add(Key(id=key_id, key_number=key_number, label=f"{key_number} office",
                      group_id=group.id, category=KeyCategory.OTHER))
        if s.get(Person, person_id) is None:
            s.add(Person(id=person_id, staff_no=staff_no, name=name))
        s.flush()
        drawn = cab.audit.append_in(s, NewEvent(type="key.drawn", key_number=key_number,
                                                rules=["K3"]))
        out = Loan(key_id=key_id, cabinet_id=cabinet.id, borrower_id=person_id,
                   reason_code="repair", drawn_at=NOW - dt.timedelta(hours=3),
                   due_at=NOW - dt.timedelta(hours=1), draw_event_seq=drawn.seq)
        back = Loan(key_id=key_id, cabinet_id=cabinet.id, borrower_id=person_id,
                    reason_code="inspection", drawn_at=NOW - dt.timedelta(days=1),
                    due_at=NOW - dt.timedelta(days=1) + dt.timedelta(hours=2),
                    returned_at=NOW - dt.timedelta(days=1) + dt.timedelta(hours=1),
                    draw_event_seq=drawn.seq, return_event_seq=drawn.seq)
        s.add_all([out, back])
        raised = cab.audit.append_in(s, NewEvent(type="alarm.raised", rules=["F1"]))
        alarm = Alarm(kind="door_forced", cabinet_id=cabinet.id, rule="F1",
                      message=f"door forced at {code}", state=AlarmState.OPEN,
                      raised_at=NOW - dt.timedelta(minutes=30), event_seq=raised.seq)
        s.add(alarm)
        s.flush()
        s.add(AlarmNote(alarm_id=alarm.id, author_id=person_id, text=f"checked at {code}"))
        issued = cab.audit.append_in(s, NewEvent(type="report.generated"))
        report = Report(kind="daily", period_start=NOW.date(), period_end=NOW.date(),
                        language="zh", content="{}", sha256="ab" * 32, event_seq=issued.seq)
        s.add(report)
        s.flush()
        shipped = Shipped(out.id, back.id, alarm.id, report.id)
    ship_pending(hub_log, cab)
    return shipped


def ship_pending(hub_log: AuditLog, cab: Runtime) -> None:
    """What the cabinet logged since the hub's cursor, read and ingested as the shipper
    does (``kiosk.fleet.link.read_batch`` → ``kiosk.fleet.ingest``)."""
    code = cab.settings.cabinet_id
    with Session(hub_log.engine) as s:
        acked = s.scalars(select(HubCabinet.acked_seq).where(
            HubCabinet.cabinet_id == code)).one()
    ingest(hub_log, cabinet_id=code, batch=Batch.parse(read_batch(cab.engine, code, acked,
                                                                  500)))


@dataclass(frozen=True)
class Received:
    intake: uuid.UUID
    handover: uuid.UUID


def ship_intake_and_handover(hub_log: AuditLog, cab: Runtime, *, key_id: uuid.UUID,
                             custodian_id: uuid.UUID, incoming_id: uuid.UUID,
                             accepted: bool) -> Received:
    """A key received at the cabinet (K1: who delivered it, how many, the custodian) and a
    shift handover from the custodian to ``incoming_id`` (H1), accepted or still waiting,
    written with the events that explain them and shipped up. The key and both people
    must be on the cabinet already (``ship_a_day`` puts them there)."""
    code = cab.settings.cabinet_id
    with write_session(cab.engine) as s:
        if s.get(Person, incoming_id) is None:
            s.add(Person(id=incoming_id, staff_no=f"IN-{code}", name=f"接班 {code}"))
            s.flush()
        received = cab.audit.append_in(s, NewEvent(type="key.intake", rules=["K1"]))
        intake = IntakeRecord(key_id=key_id, delivered_by_name=f"送钥人 {code}",
                              delivered_by_department="装修公司", room_number="1208",
                              key_count=2, deliverer_confirmed=True, custodian_id=custodian_id,
                              received_at=NOW - dt.timedelta(hours=2), event_seq=received.seq)
        started = cab.audit.append_in(s, NewEvent(type="handover.started", rules=["H1"]))
        handover = Handover(
            outgoing_id=custodian_id, incoming_id=incoming_id if accepted else None,
            cabinet_id=s.scalars(select(Cabinet.id).where(Cabinet.code == code)).one(),
            state=HandoverState.ACCEPTED if accepted else HandoverState.STARTED,
            started_at=NOW - dt.timedelta(minutes=20), outgoing_card=f"OUT-{code}",
            report='{"keys_out": 1, "open_alarms": 1}', started_seq=started.seq)
        if accepted:  # the incoming keeper tapped a badge at the cabinet
            handover.accepted_at = NOW - dt.timedelta(minutes=10)
            handover.incoming_card = f"IN-{code}"
            handover.accepted_seq = cab.audit.append_in(
                s, NewEvent(type="handover.accepted", rules=["H1"])).seq
        s.add_all([intake, handover])
        s.flush()
        done = Received(intake.id, handover.id)
    ship_pending(hub_log, cab)
    return done
