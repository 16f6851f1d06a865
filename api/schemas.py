"""Shared request/response building blocks: strict inputs, bounded text, pages, times.

Every input model forbids unknown fields, so a client cannot set what the endpoint does not
offer (no mass assignment: ``status``, ``id`` or ``approver_id`` in a body is a 422, not a
silent write). Text is bounded and free of control characters, because a NUL byte or an
unbounded string is a database error waiting to become a 500.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    WithJsonSchema,
)

# The text patterns live apart so the kiosk screen's listener has them without FastAPI;
# the admin API's models and routes keep finding them here.
from api.text_rules import MULTI_LINE, SINGLE_LINE

EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
MAX_SEQ = 2**53 - 1
"""Largest sequence number the API takes: the largest integer a JSON number (an IEEE double)
holds exactly, so the documented bound and the enforced bound are the same number."""


def _in_range(value: dt.datetime) -> dt.datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("time must lie between 2000-01-01 and 2100-01-01 (UTC)")
    return value


def _text_only(value: object) -> object:
    if not isinstance(value, str | dt.datetime | dt.time):
        raise ValueError("expected an ISO 8601 string")
    return value


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_text_only),
    AfterValidator(_in_range),
    # The year range, as the OpenAPI document can say it (issue 16, item 12).
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": "^20[0-9]{2}-"}),
]
"""A time with its UTC offset (naive times are refused: the cabinet stores UTC)."""


def _wall_clock(value: dt.time) -> dt.time:
    if value.tzinfo is not None:
        raise ValueError("a time of day is the cabinet's local wall-clock time: no UTC offset")
    return value


LocalTime = Annotated[
    dt.time,
    BeforeValidator(_text_only),
    AfterValidator(_wall_clock),
    # JSON Schema's "time" format requires an offset; a wall-clock time has none.
    WithJsonSchema({
        "type": "string",
        "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$",
    }),
]
"""A time of day in the cabinet's own time zone (as business hours are)."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SINGLE_LINE)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=SINGLE_LINE)]
Note = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=MULTI_LINE)]
Search = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SINGLE_LINE)]
Code = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
KeyNumber = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[^\x00-\x20\x7f]+$")
]
RoomNumber = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Phone = Annotated[str, StringConstraints(min_length=3, max_length=32, pattern=r"^\+?[0-9 ()-]+$")]
Password = Annotated[str, StringConstraints(min_length=10, max_length=256, pattern=SINGLE_LINE)]
Username = Annotated[
    str, StringConstraints(min_length=3, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
]
CardUid = Annotated[
    str,
    StringConstraints(min_length=8, max_length=20, pattern=r"^(?:[0-9A-Fa-f]{2}){4,10}$"),
]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_.]+$")]
RuleId = Annotated[str, StringConstraints(min_length=2, max_length=8, pattern=r"^[A-Z][0-9]+$")]

T = TypeVar("T")


def _whole_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected a whole number")
        return int(value)
    return value


WHOLE = BeforeValidator(_whole_number)
WholeInt = Annotated[int, WHOLE]
"""A JSON integer: ``88`` or ``88.0`` (JSON Schema's integer includes it), never ``"88"`` or
``true``. ``StrictInt`` refused ``88.0``, which the OpenAPI document allows. An optional one
is ``Annotated[int, Field(ge=.., le=..), WHOLE] | None``: bounds given outside the union are
documented under names JSON Schema does not know."""


class Strict(BaseModel):
    """Base of every request body: unknown fields are an error. Booleans and integers are
    declared ``StrictBool``/``WholeInt`` and times must be strings, so ``0`` is not
    ``false`` and ``1700000000`` is not a date: what the schema says is what is accepted."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Base of every response body: built from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a listing; ``total`` counts every match, not just this page."""

    items: list[T]
    total: int
    limit: int
    offset: int


PAGE_MAX = 200
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description=f"Page size, at most {PAGE_MAX}.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


class Message(Out):
    """A plain confirmation for actions that have nothing else to return."""

    detail: str


M = TypeVar("M", bound=BaseModel)


def page_of(model: type[M], rows: Sequence[Any], total: int, limit: int, offset: int) -> Page[M]:
    return Page[model](  # type: ignore[valid-type]
        items=[model.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


def patch_values(body: BaseModel, *, nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields a PATCH body set. ``null`` clears a nullable field and means "no change"
    for the others (documented in each schema), so null never reaches a NOT NULL column."""
    return {
        name: value
        for name, value in body.model_dump(exclude_unset=True).items()
        if value is not None or name in nullable
    }
