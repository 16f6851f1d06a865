"""The text every input field follows: no NUL or other control characters, no line breaks in
a one-line field, no invisible bidirectional controls (issue 16, item 9).

Apart from ``api.schemas`` (which re-exports them) because the kiosk screen's listener uses
them too and must not import FastAPI, which ``api.schemas`` does for its query parameters:
the daemon serves the screen without loading FastAPI (issue 15, item 4).
"""

from __future__ import annotations

_BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
"""Bidirectional controls (RLO and friends): invisible, they make a stored name or reason read
differently on screen, in a report or a CSV than the bytes say (issue 16, item 9)."""
SINGLE_LINE = r"^[^\x00-\x1f\x7f" + _BIDI + r"]*$"
MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f" + _BIDI + r"]*$"
