"""A batch the hub refuses: it breaks the chain the hub holds for its cabinet, or would
overwrite what another cabinet owns. Raised anywhere in the batch's transaction (events,
checkpoints, records, report files), it rolls all of it back; the refusal is then logged in
the hub's own chain and raised as a hub alarm of its ``kind`` (``kiosk.fleet.ingest``)."""

from __future__ import annotations

from kiosk.errors import Conflict


class Refused(Conflict):
    """The batch breaks the chain the hub holds; ``kind`` names how (an alarm kind)."""

    def __init__(self, kind: str, seq: int | None, message: str) -> None:
        super().__init__(message)
        self.kind, self.seq = kind, seq
