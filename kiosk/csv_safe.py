"""Every CSV the product writes goes through here: no cell can become a spreadsheet formula.

A person's name, a kiosk reason or a key number typed as ``=HYPERLINK("http://evil","x")``
would run as a formula when a supervisor opens an export in Excel or WPS (CSV injection).
OWASP's advice is followed: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return is prefixed with a single quote, which spreadsheet programs show as
text. Plain numbers (``-3``, ``+1.5``) are left as they are, since they cannot be formulas and
a quote would make them text. The change is visible to a reader on purpose: the cell says
exactly what was stored, with one quote in front.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def cell(value: Any) -> Any:
    """``value`` safe to put in a CSV cell: text starting with a trigger gets a leading ``'``."""
    if not isinstance(value, str) or not value.startswith(TRIGGERS) or _NUMBER.match(value):
        return value
    return "'" + value


def row(values: Iterable[Any]) -> list[Any]:
    return [cell(v) for v in values]


class SafeWriter:
    """``csv.writer`` with every cell passed through ``cell`` (CRLF rows, as Excel writes)."""

    def __init__(self, out: io.StringIO | Any) -> None:
        self._writer = csv.writer(out, lineterminator="\r\n")

    def writerow(self, values: Iterable[Any]) -> None:
        self._writer.writerow(row(values))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for values in rows:
            self.writerow(values)


def writer(out: io.StringIO | Any) -> SafeWriter:
    return SafeWriter(out)
