"""What one attempt to send came to, in the terms the outbox needs to decide what is next."""

from __future__ import annotations

from dataclasses import dataclass

ERROR_MAX = 500


@dataclass(frozen=True)
class Outcome:
    """``ok``: delivered. ``permanent``: failed in a way a retry will not fix (a 400, a
    mailbox the server refuses), so the delivery fails at once instead of after
    ``max_attempts``. ``status_code`` is the HTTP status or the SMTP reply code."""

    ok: bool
    permanent: bool = False
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0

    def describe(self) -> str:
        if self.ok:
            return f"delivered ({self.status_code or 'ok'}, {self.duration_ms} ms)"
        kind = "permanent failure" if self.permanent else "failed, will be retried"
        code = f" {self.status_code}" if self.status_code is not None else ""
        return f"{kind}{code}: {self.error} ({self.duration_ms} ms)"


def short(error: object) -> str:
    """An error as one bounded line for the delivery log."""
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, str):
        text = f"{type(error).__name__}: {text}"
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"
