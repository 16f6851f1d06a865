"""Which targets an event goes to: a pure function of its type and the configured routes.

Patterns are ``fnmatch`` patterns matched case-sensitively (``alarm.*``, ``report.generated``,
``*``). An event matched by several routes is delivered once per distinct target. Events of
the dispatcher's own (``notification.*``) are never routed, whatever the patterns say, so a
failing webhook cannot produce an event that is delivered to the failing webhook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from kiosk.notify.settings import RESERVED_PREFIX, RouteSettings

Channel = Literal["email", "webhook", "wecom", "dingtalk"]
CHANNELS: tuple[Channel, ...] = ("email", "webhook", "wecom", "dingtalk")


@dataclass(frozen=True, order=True)
class Target:
    """One destination: an email address, or the name of a configured webhook or robot."""

    channel: Channel
    target: str


def routable(event_type: str) -> bool:
    """False for the dispatcher's own events (no loops)."""
    return not event_type.startswith(RESERVED_PREFIX)


def matches(event_type: str, route: RouteSettings) -> bool:
    return any(fnmatchcase(event_type, pattern) for pattern in route.events)


def targets_for(event_type: str, routes: Sequence[RouteSettings]) -> list[Target]:
    """The distinct targets of ``event_type``, in route order (stable, for predictable logs)."""
    if not routable(event_type):
        return []
    found: dict[Target, None] = {}
    for route in routes:
        if not matches(event_type, route):
            continue
        for address in route.email:
            found.setdefault(Target("email", address), None)
        for name in route.webhooks:
            found.setdefault(Target("webhook", name), None)
        for name in route.wecom:
            found.setdefault(Target("wecom", name), None)
        for name in route.dingtalk:
            found.setdefault(Target("dingtalk", name), None)
    return list(found)
