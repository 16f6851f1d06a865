"""Names for the ids a REST answer carries (a loan's borrower, an alarm's owner), for display.

Only names of records the caller was already shown by a checked REST read are looked up
here: this module adds no data the answer did not point at.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import select

from kiosk.audit import AuditLog
from kiosk.services import tx
from kiosk.store.models import Department, Key, KeyGroup, Person, Slot


def _names(audit: AuditLog, model: type, column: str, ids: Iterable[uuid.UUID | None]
           ) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    with tx.read(audit) as session:
        rows = session.execute(
            select(model.id, getattr(model, column)).where(model.id.in_(wanted))  # type: ignore[attr-defined]
        ).all()
    return {row[0]: str(row[1]) for row in rows}


def people(audit: AuditLog, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    return _names(audit, Person, "name", ids)


def departments(audit: AuditLog, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    return _names(audit, Department, "name", ids)


def keys(audit: AuditLog, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    return _names(audit, Key, "key_number", ids)


def groups(audit: AuditLog, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    return _names(audit, KeyGroup, "name", ids)


def slots(audit: AuditLog, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    return _names(audit, Slot, "number", ids)


def local(value: dt.datetime | None, zone: ZoneInfo, *, seconds: bool = False) -> str:
    """A stored UTC time as the cabinet's wall clock (what people at the desk read)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def local_input(value: dt.datetime | None, zone: ZoneInfo) -> str:
    """The value of a ``datetime-local`` input."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def day_start(zone: ZoneInfo, now: dt.datetime | None = None) -> dt.datetime:
    now = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)
