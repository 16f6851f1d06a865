"""``GET /api/v1/health``: liveness for anyone; ``/health/details`` for those who may read
the audit log.

The public answer says only that the daemon is up and which version runs (what a load
balancer or monitor needs). Which database file, the schema revision and the log's head hash
help someone planning an attack on the device more than anyone else, so they need a token
with ``audit:read`` (issue 16, item 12).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import RuntimeDep, needs
from api.liveness import liveness, schema_status
from api.version import package_version
from kiosk.fleet import state as fleet_state
from kiosk.runtime import Runtime
from kiosk.services.authz import Permission as P
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


class FleetLink(BaseModel):
    """Whether an enrolled cabinet reaches its hub (issue 12): liveness a monitor needs, so it
    is in the public answer; absent on a cabinet that never enrolled."""

    online: bool
    offline_since: dt.datetime | None
    offline_since_local: str | None = Field(
        description="HH:MM in the cabinet's time zone, as the kiosk screen shows it.")
    config_version: int = Field(description="The hub's configuration applied here, so a "
                                "monitor can tell a cabinet that is behind.")


class FleetHealth(FleetLink):
    """The link in full: which hub, when last heard, how far the log has shipped
    (``audit:read``)."""

    hub_url: str | None
    last_contact: dt.datetime | None
    shipped_seq: int


class Health(BaseModel):
    status: str
    """``ok``, or ``degraded`` when the database schema is not the one this version needs."""
    version: str
    fleet: FleetLink | None = None


class HealthDetails(Health):
    cabinet_id: str
    time: dt.datetime
    database: DatabaseHealth
    audit: AuditHealth
    fleet: FleetHealth | None = None


def _fleet(runtime: Runtime) -> FleetHealth | None:
    link = fleet_state.link_status(runtime.engine)
    if link is None:
        return None
    local = fleet_state.offline_since_local(link, ZoneInfo(runtime.settings.timezone))
    return FleetHealth(hub_url=link.hub_url, online=link.online,
                       offline_since=link.offline_since, offline_since_local=local,
                       last_contact=link.last_contact, config_version=link.config_version,
                       shipped_seq=link.shipped_seq)


@router.get("/health", response_model=Health, response_model_exclude_unset=True,
            summary="Liveness: up, which version, and (enrolled cabinets) the hub link")
def health(runtime: RuntimeDep) -> Health:
    """The same answer the daemon gives before its admin API is made (``api.liveness``)."""
    return Health.model_validate(liveness(runtime))


@router.get(
    "/health/details",
    response_model=HealthDetails,
    dependencies=[needs(P.AUDIT_READ)],
    summary="Which database and schema, and how far the audit log has grown",
)
def health_details(runtime: RuntimeDep) -> HealthDetails:
    engine = runtime.engine
    status, current, head = schema_status(runtime)
    seq, digest = runtime.audit.head()
    return HealthDetails(
        status=status,
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
        fleet=_fleet(runtime),
    )
