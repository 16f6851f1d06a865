"""What a flow may ask of the cabinet core, and no more.

The flows (``kiosk.cabinet.flows``) are handed the core when they are built and talk to it
only through this protocol, so a flow never imports ``core.py`` (the core imports the flows
to register the default ones) and what the core offers its handlers is written down in one
place."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session as DbSession

from drivers.locks.base import LockBank
from kiosk import policy
from kiosk import session as flow
from kiosk.audit import AuditLog, NewEvent
from kiosk.cabinet.arming import Arming
from kiosk.cabinet.facts import CabinetFacts
from kiosk.cabinet.options import CabinetError, CabinetOptions
from kiosk.cabinet.writer import Writer
from kiosk.runtime import Runtime
from kiosk.visit import Message, Visit

F = TypeVar("F")

TapHandler = Callable[
    [str, policy.CardFacts | None, policy.PersonFacts | None, dt.datetime], Awaitable[None]
]
"""A tap in a state a flow owns: (uid, card, card holder, now)."""

IdleGuard = Callable[
    [str, policy.CardFacts | None, policy.PersonFacts | None, dt.datetime], bool
]
"""Looks at a badge tap at the idle screen before it starts a visit; True: it was handled."""

FobHandler = Callable[[policy.KeyFacts, flow.State], Awaitable[None]]
"""A key's fob tapped (or a key named at the screen) while idle or choosing."""


Ending = Callable[[], tuple[str, tuple[str, str] | None]]
"""How a visit that ended well is told: (message code, (detail zh, detail en) or None)."""


class Core(Protocol):
    """The cabinet core as its flows see it."""

    # what it owns
    runtime: Runtime
    engine: Engine
    audit: AuditLog
    locks: LockBank
    cabinet_id: uuid.UUID
    code: str
    calendar: policy.Calendar
    options: CabinetOptions
    clock: Callable[[], dt.datetime]
    door_is_open: Callable[[], bool] | None
    session: flow.Session
    visit: Visit
    message: Message | None
    alarm_owners: Mapping[str, str]

    # registering a flow and the inputs it handles
    def register_flow(self, name: str, handler: object) -> None: ...
    def lookup(self, name: str, kind: type[F]) -> F: ...
    def on_tap(self, state: flow.State, handler: TapHandler) -> None: ...
    def on_idle_tap(self, guard: IdleGuard) -> None: ...
    def on_fob(self, handler: FobHandler) -> None: ...
    def on_command(self, command: type[flow.Command], handler: Callable[[Any], Any]) -> None: ...
    def on_timeout(self, state: flow.State, handler: Callable[[dt.datetime], None]) -> None: ...
    def on_cancel(self, state: flow.State, handler: Callable[[], None]) -> None: ...
    def on_intent(self, kind: str, build: Callable[[int, list[str]], NewEvent]) -> None: ...
    def on_tick(self, job: Callable[[dt.datetime], Awaitable[None]]) -> None: ...
    def on_ended(self, reason: str, tell: Ending) -> None: ...

    # what every flow uses
    async def apply(self, commands: list[flow.Command]) -> None: ...
    async def driver(self, fn: Callable[..., Any], *args: Any) -> Any: ...
    def deny(self, decision: policy.Decision, *, uid: str | None = None,
             person: policy.PersonFacts | None = None, key: policy.KeyFacts | None = None,
             employee: policy.PersonFacts | None = None, state: str | None = None,
             **extra: Any) -> None: ...
    def alarm(self, kind: str, message: str, *, rule: str | None = None, slot: int | None = None,
              key: policy.KeyFacts | None = None, payload: dict[str, object] | None = None,
              beep: bool = True) -> None: ...
    def log(self, event: NewEvent) -> None: ...
    def write(self, work: Callable[[DbSession], Any], what: str) -> None: ...
    writer: Writer
    facts: CabinetFacts
    arming: Arming
    def outcome(self, type_: str, slot: int, *, rules: list[str], **payload: Any) -> NewEvent: ...
    def say(self, code: str, level: str, *, for_s: float | None = None,
            detail: tuple[str, str] | None = None) -> None: ...
    def beep(self, pattern: str) -> None: ...
    def changed(self) -> None: ...
    def busy(self, what: str) -> CabinetError: ...
    def load_choices(self, now: dt.datetime) -> None: ...
    def last_scan(self) -> dict[int, bool]: ...
    def last_fobs(self) -> dict[int, str | None] | None: ...
