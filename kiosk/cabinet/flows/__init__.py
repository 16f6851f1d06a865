"""The cabinet's flows, each a handler registered on the core (``kiosk.cabinet.core``).

``DEFAULT_FLOWS`` is what a cabinet loads; a test or a new product variant may pass its own
list to ``Cabinet(flows=...)``. The sensor supervisor comes first: it is what the others'
openings are watched by."""

from __future__ import annotations

from kiosk.cabinet.flows.draw import DrawFlow
from kiosk.cabinet.flows.enrolment import EnrolmentFlow
from kiosk.cabinet.flows.handover import HandoverFlow
from kiosk.cabinet.flows.intake import IntakeFlow
from kiosk.cabinet.flows.night import NightPairing
from kiosk.cabinet.flows.pin import PinFlow
from kiosk.cabinet.flows.remote import RemoteUnlockFlow
from kiosk.cabinet.flows.returns import ReturnFlow
from kiosk.cabinet.flows.sensors import SensorSupervisor
from kiosk.cabinet.flows.stock import StockFlow

DEFAULT_FLOWS = (
    SensorSupervisor, DrawFlow, ReturnFlow, IntakeFlow, HandoverFlow, NightPairing,
    RemoteUnlockFlow, EnrolmentFlow, PinFlow, StockFlow,
)

__all__ = [
    "DEFAULT_FLOWS", "DrawFlow", "EnrolmentFlow", "HandoverFlow", "IntakeFlow", "NightPairing",
    "PinFlow", "RemoteUnlockFlow", "ReturnFlow", "SensorSupervisor", "StockFlow",
]
