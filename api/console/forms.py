"""HTML form fields to REST body values, and pydantic's refusals to messages per field.

A form posts strings; the REST body models are strict (``StrictInt``, ISO times with an
offset). ``convert`` turns each field into the JSON type its model expects (declared per
form as a *kind*), so the model's own constraints decide what is valid, exactly as for an
API client. ``field_errors`` words each refusal for the person at the form, in their
language, keyed by the field it belongs beside.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from api.console.i18n import Lang, t

# kinds: text, required (empty refused even where the model allows absence), optional (empty → null), int, bool (checkbox), uuid (empty → null),
# local (datetime-local in the cabinet's zone → ISO with offset), time (HH:MM), list


def convert(data: dict[str, Any], kinds: dict[str, str], *, zone: ZoneInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in kinds.items():
        raw = data.get(name)
        if kind == "bool":
            out[name] = raw in ("on", "true", "1", "yes")
            continue
        if kind == "list":
            values = raw if isinstance(raw, list) else ([raw] if raw else [])
            out[name] = [v for v in values if v]
            continue
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        text = raw.strip() if isinstance(raw, str) else raw
        if text in (None, ""):
            if kind == "text":
                continue  # absent: the model says whether it is required
            if kind == "required":
                out[name] = ""  # a PATCH field left empty: refused, not "no change"
                continue
            out[name] = None
            continue
        if kind == "int":
            try:
                out[name] = int(text)
            except ValueError:
                out[name] = text  # the model refuses it with int_parsing
        elif kind == "local":
            out[name] = _local(text, zone)
        elif kind == "time":
            out[name] = text if len(text) != 5 else text + ":00"
        else:
            out[name] = text
    return out


def _local(text: str, zone: ZoneInfo) -> str:
    """``2026-12-05T09:30`` typed in the cabinet's zone → ``2026-12-05T09:30:00+08:00``."""
    try:
        naive = dt.datetime.fromisoformat(text)
    except ValueError:
        return text  # the model refuses it
    if naive.tzinfo is not None:
        return naive.isoformat()
    return naive.replace(tzinfo=zone).isoformat()


_MESSAGES = {
    "missing": "form.required",
    "string_too_short": "form.required",
    "string_too_long": "form.too_long",
    "string_pattern_mismatch": "form.pattern",
    "int_parsing": "form.int",
    "int_type": "form.int",
    "greater_than_equal": "form.min",
    "greater_than": "form.min",
    "less_than_equal": "form.max",
    "less_than": "form.max",
    "uuid_parsing": "form.choose",
    "uuid_type": "form.choose",
    "enum": "form.choose",
    "literal_error": "form.choose",
    "list_too_short": "form.choose_one",
    "too_short": "form.choose_one",
    "datetime_parsing": "form.datetime",
    "datetime_from_date_parsing": "form.datetime",
    "timezone_aware": "form.datetime",
    "time_parsing": "form.time",
    "bool_parsing": "form.choose",
    "extra_forbidden": "form.invalid",
}


def field_errors(exc: ValidationError, lang: Lang, kinds: dict[str, str]) -> dict[str, str]:
    """Each refused field → one message; an error of the whole body goes under ``_``."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = error.get("loc", ())
        name = str(loc[0]) if loc else "_"
        if name not in kinds:
            name = "_"
        ctx = error.get("ctx") or {}
        message_id = _MESSAGES.get(error["type"], "form.invalid")
        empty = error.get("input") in (None, "", [])
        if error["type"] == "value_error":
            message_id = "form.required" if empty else "form.value"
        elif empty and error["type"] not in ("list_too_short", "too_short"):
            message_id = "form.required"
        elif error["type"] == "string_too_short":
            message_id = "form.too_short"
        values = {k: ctx[k] for k in ("min_length", "max_length", "ge", "le", "gt", "lt")
                  if k in ctx}
        limit = values.get("ge", values.get("gt", values.get("le", values.get("lt"))))
        text = t(lang, message_id, max=values.get("max_length", ""),
                 min=values.get("min_length", ""), limit=limit)
        if message_id == "form.value":
            text += f" ({error.get('msg', '').removeprefix('Value error, ')})"
        errors.setdefault(name, text)
    return errors
