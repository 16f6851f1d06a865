"""``GET /api/v1/metrics``: the cabinet's Prometheus metrics (``kiosk.metrics``).

It needs a bearer token with ``metrics:read``, like every other endpoint, rather than
being open on loopback: the admin listener may face the building's network, and the
counters (denials, alarms, keys out) say when the cabinet is busy or unwatched. Give
Prometheus an API token scoped to ``metrics:read`` alone (see docs/deploy.md).

The collector is attached to the audit log by this router's lifespan, so it counts from
the moment the listener starts; a first scrape attaches it too, should the lifespan not
have run.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry

from api.deps import needs
from kiosk.metrics import TEXT_FORMAT, AuditMetrics, registry_for, render
from kiosk.runtime import Runtime
from kiosk.services.authz import Permission as P

_install_lock = threading.Lock()


def _install(app: FastAPI) -> tuple[AuditMetrics, CollectorRegistry]:
    with _install_lock:
        installed: tuple[AuditMetrics, CollectorRegistry] | None = getattr(
            app.state, "metrics", None)
        if installed is None:
            runtime: Runtime = app.state.runtime
            collector = AuditMetrics(runtime)
            collector.attach()
            installed = (collector, registry_for(collector))
            app.state.metrics = installed
        return installed


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    collector, _ = _install(app)
    try:
        yield
    finally:
        collector.detach()


router = APIRouter(tags=["metrics"], lifespan=lifespan)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[needs(P.METRICS_READ)],
    responses={200: {"content": {TEXT_FORMAT: {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics: draws, denials by rule, alarms, lock faults, keys out",
)
def metrics(request: Request) -> Response:
    _, registry = _install(request.app)
    return Response(render(registry), media_type=TEXT_FORMAT)
