"""What every RFID reader hands to the cabinet, and the interface every reader offers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True, kw_only=True)
class CardRead:
    """One tap of one card on one reader.

    One type for every reader so the cabinet never cares which hardware saw the card.
    ``credential`` is the configured credential block (16 bytes) when the reader could read
    it, else ``None`` (not configured, not supported by the reader, or the key was wrong).
    ``magic`` is True when the card answered the Gen1a backdoor: a writable-UID clone that
    the policy may want to refuse or flag.
    """

    uid: bytes
    reader_id: str
    credential: bytes | None = None
    magic: bool = False

    @property
    def uid_hex(self) -> str:
        """The UID as uppercase hex without separators (how cards are enrolled)."""
        return self.uid.hex().upper()


@runtime_checkable
class CardReader(Protocol):
    """A badge reader: blocks for at most ``timeout`` and reports each tap once.

    Readers are synchronous; the cabinet calls ``wait_for_card`` from a worker thread.
    A card held on the antenna yields one read until it has been away for the reader's
    hold-off, so a badge left lying on the reader does not repeat its request.
    """

    @property
    def reader_id(self) -> str:
        """The configured name of this reader (appears in every ``CardRead``)."""
        ...

    @property
    def holding(self) -> bool:
        """Whether a card already reported is, as far as the reader knows, still on the
        antenna: the same card counts as a new tap only once this is False again (it has
        been away for the hold-off). What a person sees as "take the card away first"."""
        ...

    def wait_for_card(self, timeout: float) -> CardRead | None:
        """Return the next new tap, or ``None`` after ``timeout`` seconds (or on close).

        Raises ``ReaderError`` when the hardware has failed (unplugged, not answering).
        """
        ...

    def close(self) -> None:
        """Release the hardware; a concurrent ``wait_for_card`` returns ``None`` promptly."""
        ...
