"""Tables of the fleet (issue 12): the hub's sites, enrolled cabinets, ingested logs and
alarms. The little state a cabinet's link to the hub keeps is in ``models_link``; a cabinet
never imports this module.

The hub tables exist on every database (one schema, one migration history), but only a
``kiosk hub`` process on PostgreSQL writes them. ``hub_events`` is hash-partitioned by
cabinet on PostgreSQL (migration 0012) so each partition stays a manageable size and one
cabinet's history is read from one partition; on SQLite it is a plain table.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from kiosk.store.models import Base, _uuid_pk
from kiosk.store.types import utcnow


class HubSite(Base):
    """A building (tower) with one or more cabinets."""

    __tablename__ = "hub_sites"

    id: Mapped[uuid.UUID] = _uuid_pk()
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HubCabinet(Base):
    """An enrolled cabinet: its pinned Ed25519 device key and how far its log was ingested.

    ``acked_seq``/``head_hash`` are the ingest cursor: the hub holds this cabinet's chain up
    to ``acked_seq`` and nothing after it; the row is locked while a batch is ingested, so
    two hub processes never ingest the same cabinet at once.
    """

    __tablename__ = "hub_cabinets"

    id: Mapped[uuid.UUID] = _uuid_pk()
    cabinet_id: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hub_sites.id"))
    public_key: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    enrolled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
    acked_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    head_hash: Mapped[str] = mapped_column(String(64))
    checkpoint_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seen_at: Mapped[dt.datetime | None]


class HubEnrolmentCode(Base):
    """A one-time enrolment code; only its SHA-256 is stored."""

    __tablename__ = "hub_enrolment_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hub_sites.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    used_by: Mapped[str | None] = mapped_column(String(64))


COMMON_EVENT_TYPES = ("access.denied", "draw.intent", "draw.resolved", "key.drawn",
                      "key.returned", "return.intent", "return.resolved")
"""The event types a cabinet writes with every refused tap, draw and return: most of a
busy log. The merged log filtered by one of them walks ``ix_hub_events_at`` and meets a
match every few rows; any other type is rare (an alarm, a report, a login) and is read from
``ix_hub_events_rare_type``, which holds only the events not of these types, so ingest
writes the common ones to three indexes, not four. Which types are here decides only what
ingest and a filter cost, never what a filter returns. Migration 0027 spells the same
list."""
RARE_EVENTS = "type NOT IN ({})".format(", ".join(f"'{t}'" for t in COMMON_EVENT_TYPES))
"""The predicate of ``ix_hub_events_rare_type``."""


class HubEvent(Base):
    """A cabinet's event as it came, byte for byte, so the hub can re-verify the chain."""

    __tablename__ = "hub_events"

    cabinet_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime]
    type: Mapped[str] = mapped_column(String(64))
    actors: Mapped[str] = mapped_column(Text)
    slot: Mapped[int | None] = mapped_column(Integer)
    key_number: Mapped[str | None] = mapped_column(String(32))
    decision: Mapped[str | None] = mapped_column(String(16))
    rules: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    # A cabinet's events of one type, in order, without walking its whole log (0022); a
    # site's merged log, newest first by time, then cabinet and seq (0025); the merged log
    # of one type that is not among the common ones (0027): partial, so the events every
    # tap and door writes are not written to it at ingest.
    __table_args__ = (Index("ix_hub_events_cabinet_type", "cabinet_id", "type", "seq"),
                      Index("ix_hub_events_at", "at", "cabinet_id", "seq"),
                      Index("ix_hub_events_rare_type", "type", "at", "cabinet_id", "seq",
                            postgresql_where=text(RARE_EVENTS),
                            sqlite_where=text(RARE_EVENTS)))


class HubCheckpoint(Base):
    """A cabinet's signed checkpoint, checked against the pinned key and the held chain."""

    __tablename__ = "hub_checkpoints"

    cabinet_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    head_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[dt.datetime]
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


LOANS_OUT = "kind = 'loan' AND facet = 'out'"
"""A loan record not returned yet (the predicate of ``ix_hub_records_loans_out``)."""
LOANS_RETURNED = "kind = 'loan' AND facet = 'returned'"
"""A loan record whose key came back (the predicate of ``ix_hub_records_loans_returned``)."""


class HubRecord(Base):
    """The latest copy of a record a cabinet owns (loan, alarm, intake, handover, report).

    ``body`` is the record as the cabinet shipped it; the typed columns beside it are
    written from the body at ingest (``kiosk.fleet.record_columns``, migration 0024) so the
    hub's lists by site filter and order on indexes instead of reading every body:
    ``occurred_at`` is the record's own time (a loan's draw, an alarm's raising, a report's
    generation), ``due_at`` a loan's due time, ``facet`` what its list narrows by (a loan's
    ``out``/``returned``, an alarm's state, a report's kind, a handover's state),
    ``borrower_id`` a loan's borrower (migration 0027: a department leader's loans)."""

    __tablename__ = "hub_records"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    cabinet_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, doc="Canonical JSON of the record's columns.")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    occurred_at: Mapped[dt.datetime | None]
    due_at: Mapped[dt.datetime | None]
    facet: Mapped[str | None] = mapped_column(String(64))
    borrower_id: Mapped[uuid.UUID | None]

    __table_args__ = (
        # One cabinet's records of a kind, newest first (the facet checked in the index).
        Index("ix_hub_records_cabinet_time", "cabinet_id", "kind", "occurred_at",
              "record_id", postgresql_include=["facet"]),
        # The whole fleet's or a site's records of a kind, newest first: the cabinet and
        # the facet are checked inside the index (an index-only scan of the keys).
        Index("ix_hub_records_kind_time", "kind", "occurred_at", "record_id",
              postgresql_include=["cabinet_id", "facet"]),
        # The keys out now (the hub's most read list): a few rows among every loan ever
        # made, so the index holds only those, with the due time for the overdue ones.
        Index("ix_hub_records_loans_out", "occurred_at", "record_id",
              postgresql_include=["cabinet_id", "due_at"],
              postgresql_where=text(LOANS_OUT), sqlite_where=text(LOANS_OUT)),
        # The keys out by due time (0026): the loans due so far in the current hour (the
        # overdue total's one counted part), and the overdue page when few keys out are due.
        Index("ix_hub_records_loans_due", "due_at", postgresql_include=[
            "occurred_at", "record_id", "cabinet_id"],
              postgresql_where=text(LOANS_OUT), sqlite_where=text(LOANS_OUT)),
        # The keys that came back (0027), newest draw first: the whole fleet's returned
        # loans without passing the keys out, which are the newest draws.
        Index("ix_hub_records_loans_returned", "occurred_at", "record_id",
              postgresql_include=["cabinet_id"],
              postgresql_where=text(LOANS_RETURNED), sqlite_where=text(LOANS_RETURNED)),
        # A site's records of one kind in time of arrival (0022, /hub/v1/records).
        Index("ix_hub_records_kind_received", "kind", "received_at", "cabinet_id"),
    )


class HubRecordCount(Base):
    """How many records of a kind and facet each cabinet has at the hub, kept by ingest in
    the transaction that writes the records (the cabinet's row is locked, so counts of one
    cabinet are never written twice at once). The lists' totals add these up over the
    cabinets in view: exact, and a few hundred rows read instead of millions counted."""

    __tablename__ = "hub_record_counts"

    cabinet_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    facet: Mapped[str] = mapped_column(String(64), primary_key=True,
                                       doc="The records' facet, '' for none.")
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class HubBorrowerCount(Base):
    """How many loan records of each facet (``out``/``returned``) each borrower has at each
    cabinet, kept by ingest in the statement that writes the records (migration 0027). A
    department leader's total is the sum over the department's people as they are now (a
    person who moves department takes their loans along, as the page's filter does) and
    the cabinets in view."""

    __tablename__ = "hub_borrower_counts"

    borrower_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    facet: Mapped[str] = mapped_column(String(64), primary_key=True)
    cabinet_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class HubDueCount(Base):
    """How many of a cabinet's keys out (loan records with facet ``out``) fall due in each
    hour, kept by ingest in the statement that writes the records (migration 0026); an hour
    whose count falls to zero loses its row, so the table holds at most one row per key out.
    K9's overdue total is then a sum of the hours that have ended plus a count of the loans
    due so far in the current hour (``kiosk.fleet.site_lists``)."""

    __tablename__ = "hub_due_counts"

    cabinet_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_hour: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False,
                                          doc="Whole hours since 1970-01-01 UTC.")
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class HubReportFile(Base):
    """The exact bytes of one rendering of a report a cabinet issued (``zh.pdf``, ``en.csv``).

    Taken only when its SHA-256 is the one the cabinet's chained ``report.generated`` event
    names (the hub holds that event, verified), and never replaced: the hub is the
    off-device copy of what a person downloads and prints (issue 12 item 4, issue 14 item
    12). Keyed by the report's id (unique across the fleet) and the file's name; the owning
    cabinet is the report record's."""

    __tablename__ = "hub_report_files"

    report_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    cabinet_id: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HubAlarm(Base):
    """Something the hub refused: a broken chain, a revoked cabinet knocking, a replay.

    One open alarm per (cabinet, kind); a repeat bumps ``count`` and ``last_at``.
    """

    __tablename__ = "hub_alarms"

    id: Mapped[uuid.UUID] = _uuid_pk()
    cabinet_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="open")
    count: Mapped[int] = mapped_column(Integer, default=1)
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_hub_alarms_cabinet_kind", "cabinet_id", "kind", "state"),)


class HubNonce(Base):
    """Nonces of signed requests seen inside the time window: a replay is refused."""

    __tablename__ = "hub_nonces"

    cabinet_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class HubConfigHead(Base):
    """The configuration version counter. Writers lock this one row to take a version, so
    versions become visible in order: a cabinet that read up to N never misses N-1."""

    __tablename__ = "hub_config_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class HubConfigChange(Base):
    """Row ``row_id`` of ``entity`` changed (or was deleted) at configuration ``version``."""

    __tablename__ = "hub_config_changes"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    row_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class HubApprovalUse(Base):
    """K7 across the fleet: the first draw that used an approval, as a cabinet reported it
    (its loan record). The hub never edits the approval itself (the loan lives at the
    cabinet); it tells every other cabinet the approval is spent."""

    __tablename__ = "hub_approval_uses"

    approval_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    cabinet_id: Mapped[str] = mapped_column(String(64))
    loan_id: Mapped[uuid.UUID]
    used_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HubAccountSite(Base):
    """A hub account scoped to one site: it sees that site's cabinets, logs and alarms only.
    An account without a row sees the whole fleet."""

    __tablename__ = "hub_account_sites"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hub_sites.id"))


class HubSiteSettings(Base):
    """The settings a site's cabinets take from the hub (issue 12): business hours and
    calendar, PIN requirements, alarm owners, the report letterhead
    (``kiosk.fleet.site_settings``). One row per site, replaced whole."""

    __tablename__ = "hub_site_settings"

    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("hub_sites.id"), primary_key=True)
    body: Mapped[str] = mapped_column(Text, doc="JSON: section name → its settings.")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
