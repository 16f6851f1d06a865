"""``GET /api/v1/health``: is the daemon up, which database, which schema, how far the log."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import RuntimeDep
from api.version import package_version
from kiosk.store import migrate
from kiosk.store.db import describe_database

router = APIRouter(tags=["health"])


class DatabaseHealth(BaseModel):
    backend: str
    location: str
    schema_version: str | None
    schema_head: str | None
    up_to_date: bool


class AuditHealth(BaseModel):
    head_seq: int
    head_hash: str
    device_key_id: str


class Health(BaseModel):
    status: str
    version: str
    cabinet_id: str
    time: dt.datetime
    database: DatabaseHealth
    audit: AuditHealth


@router.get("/health", response_model=Health)
def health(runtime: RuntimeDep) -> Health:
    engine = runtime.engine
    current = migrate.current_revision(engine)
    head = migrate.HEAD_REVISION
    seq, digest = runtime.audit.head()
    return Health(
        status="ok" if current == head else "degraded",
        version=package_version(),
        cabinet_id=runtime.settings.cabinet_id,
        time=dt.datetime.now(dt.UTC),
        database=DatabaseHealth(
            backend=engine.dialect.name,
            location=describe_database(engine),
            schema_version=current,
            schema_head=head,
            up_to_date=current == head,
        ),
        audit=AuditHealth(head_seq=seq, head_hash=digest, device_key_id=runtime.device_key.key_id),
    )
