"""The registry half of the cabinet core: flows register here by name, and say which inputs
they handle. Kept apart from the core's loop so "who handles what" reads in one page.

Like Klipper's printer objects: a flow is built with the core, registers itself
(``register_flow``), is found by other flows with ``lookup``, and claims its inputs with the
``on_*`` methods; the core (``kiosk.cabinet.core``) only routes to what was claimed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kiosk import session as flow
from kiosk.audit import NewEvent
from kiosk.cabinet.contract import Ending, FobHandler, IdleGuard, TapHandler

F = TypeVar("F")


class Registry:
    """The flows of one cabinet and the routes they asked for."""

    def __init__(self) -> None:
        self._flows: dict[str, object] = {}
        self._taps: dict[flow.State, TapHandler] = {}
        self._idle_guards: list[IdleGuard] = []
        self._fob: FobHandler | None = None
        self._commands: dict[type[flow.Command], Callable[[Any], Any]] = {}
        self._timeouts: dict[flow.State, Callable[[dt.datetime], None]] = {}
        self._cancels: dict[flow.State, Callable[[], None]] = {}
        self._intents: dict[str, Callable[[int, list[str]], NewEvent]] = {}
        self._tickers: list[Callable[[dt.datetime], Awaitable[None]]] = []
        self._endings: dict[str, Ending] = {}

    def register_flow(self, name: str, handler: object) -> None:
        """Make a flow findable by name; one flow per name."""
        if name in self._flows:
            raise ValueError(f"a flow named {name!r} is already registered")
        self._flows[name] = handler

    def lookup(self, name: str, kind: type[F]) -> F:
        """The flow registered as ``name`` (raises ``KeyError`` if none, ``TypeError`` if it
        is not a ``kind``)."""
        handler = self._flows[name]
        if not isinstance(handler, kind):
            raise TypeError(f"flow {name!r} is a {type(handler).__name__}, not a {kind.__name__}")
        return handler

    def flow_names(self) -> list[str]:
        return list(self._flows)

    def on_tap(self, state: flow.State, handler: TapHandler) -> None:
        self._taps[state] = handler

    def on_idle_tap(self, guard: IdleGuard) -> None:
        self._idle_guards.append(guard)

    def on_fob(self, handler: FobHandler) -> None:
        self._fob = handler

    def on_command(self, command: type[flow.Command], handler: Callable[[Any], Any]) -> None:
        self._commands[command] = handler

    def on_timeout(self, state: flow.State, handler: Callable[[dt.datetime], None]) -> None:
        self._timeouts[state] = handler

    def on_cancel(self, state: flow.State, handler: Callable[[], None]) -> None:
        self._cancels[state] = handler

    def on_intent(self, kind: str, build: Callable[[int, list[str]], NewEvent]) -> None:
        """``kind`` is draw, return or intake; ``build(slot, actors)`` makes its intent event."""
        self._intents[kind] = build

    def intent_builder(self, kind: str) -> Callable[[int, list[str]], NewEvent]:
        """The intent event maker registered for ``kind`` (``kiosk.cabinet.opening``)."""
        return self._intents[kind]

    def on_tick(self, job: Callable[[dt.datetime], Awaitable[None]]) -> None:
        self._tickers.append(job)

    def on_ended(self, reason: str, tell: Ending) -> None:
        """``tell()`` gives the message code and its detail (zh, en) for a visit that ended
        with ``reason`` (drawn, returned...), read before the visit is cleared."""
        self._endings[reason] = tell
