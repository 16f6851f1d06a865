"""Every label of the console in zh-CN (first) and English: one catalog, one lookup.

A message id missing from the catalog shows as the id itself and is logged; the test
``tests/console/test_catalog.py`` reads every template and module for the ids they use and
fails on any that has no entry in both languages.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from api.console.messages import MESSAGES

log = logging.getLogger("api.console")

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")


def t(lang: Lang, message_id: str, **values: Any) -> str:
    pair = MESSAGES.get(message_id)
    if pair is None:
        log.warning("console message %r has no translation", message_id)
        return message_id
    text = pair[0] if lang == "zh" else pair[1]
    return text.format(**values) if values else text


def enum_label(lang: Lang, group: str, value: Any) -> str:
    """An enum value's label (``alarm.kind`` + ``door_forced``), or the value itself for
    one the catalog does not know (a kind added later still shows)."""
    raw = getattr(value, "value", value)
    pair = MESSAGES.get(f"{group}.{raw}")
    if pair is None:
        return str(raw)
    return pair[0] if lang == "zh" else pair[1]


FIELD_VALUES: dict[str, tuple[str, ...]] = {
    "kind": ("alarm.kind", "reports.kind"),
    "state": ("alarm.state",),
    "movement": ("movement",),
    "problem": ("count.problem",),
    "reason": ("reason",),
}
"""The label groups a stored report's field values are looked up in, by field name: a
report's ``kind`` column holds alarm kinds (``door_forced``), its own ``kind`` a report kind;
a ``reason`` is a K3 reason code (``repair``) or the text typed for 其他."""


def field_value(lang: Lang, field: str, value: Any) -> str:
    """A stored report's value as people read it: a yes/no for a boolean, the label of an
    alarm kind, alarm state, movement or count problem, '—' for nothing; anything else as is."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return t(lang, "common.yes" if value else "common.no")
    for group in FIELD_VALUES.get(field, ()):
        pair = MESSAGES.get(f"{group}.{value}")
        if pair is not None:
            return pair[0] if lang == "zh" else pair[1]
    return str(value)
