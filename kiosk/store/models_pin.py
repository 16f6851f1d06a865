"""PINs, the second factor at the cabinet, and the lock wrong PINs put on a card.

Apart from ``models.py`` like the admin API's own security tables: a PIN is a credential,
not a fact of the key register. Only argon2id hashes are stored; the lock is a row so it
survives a restart of the daemon (README "PIN and duress")."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kiosk.store.models import Base
from kiosk.store.types import utcnow


class PinCredential(Base):
    """A person's PIN and duress PIN (argon2id hashes). ``pin_hash`` is NULL after a reset:
    the person then sets a new one at the cabinet with their badge until ``may_set_until``."""

    __tablename__ = "pin_credentials"

    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    pin_hash: Mapped[str | None] = mapped_column(Text)
    duress_hash: Mapped[str | None] = mapped_column(Text)
    set_at: Mapped[dt.datetime | None]
    may_set_until: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PinLockout(Base):
    """Wrong PINs in a row at the cabinet, per card; ``locked_until`` once they reach the limit."""

    __tablename__ = "pin_lockouts"

    card_uid: Mapped[str] = mapped_column(String(20), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
