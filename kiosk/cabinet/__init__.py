"""The cabinet: a small core (``core.py``: the loop, the visit, the drivers) with one
handler module per flow registered on it (``flows/``). ``from kiosk.cabinet import Cabinet``
is the way in for the daemon, the API and the tests."""

from kiosk.cabinet.core import Cabinet
from kiosk.cabinet.options import (
    CabinetError,
    CabinetOptions,
    Indicators,
    calendar_from,
    options_from,
)

__all__ = ["Cabinet", "CabinetError", "CabinetOptions", "Indicators", "calendar_from",
           "options_from"]
