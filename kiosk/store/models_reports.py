"""Scheduler bookkeeping, overdue escalations and stored reports (K9, F1).

Kept apart from ``models.py`` like ``models_auth``; same ``Base``, so one metadata and one
migration history. Three guarantees live in the schema rather than in code paths:

- ``job_runs`` has one row per (job, local day): a daily job that already committed its
  result cannot commit it again, even if two processes race or the daemon restarts.
- ``alarm_escalations`` has one row per (alarm, level): an overdue key is escalated to the
  custodian, then the supervisor, then flagged long overdue (长期未归), each exactly once.
  A separate table rather than an ``AlarmNote`` because a note needs a human author and an
  escalation is the system's act.
- ``reports`` rows are never deleted (K9 "cannot be hidden"): there is no delete path in the
  services or the API, and the ORM refuses a delete outright (see ``_refuse_delete``).
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from kiosk.errors import Conflict
from kiosk.store.models import Base
from kiosk.store.types import utcnow

REPORT_KINDS = ("daily", "overdue", "key", "person", "handover")
REPORT_LANGUAGES = ("zh", "en")
ESCALATION_LEVELS = ("custodian", "supervisor", "long_overdue")


class JobRun(Base):
    """A scheduled job done for one local day; written in the job's own transaction."""

    __tablename__ = "job_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job: Mapped[str] = mapped_column(String(64))
    day: Mapped[dt.date] = mapped_column(Date)
    ran_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    catch_up: Mapped[bool] = mapped_column(default=False)
    result: Mapped[str] = mapped_column(Text, doc="Canonical JSON summary of what the job did.")

    __table_args__ = (UniqueConstraint("job", "day"),)


class AlarmEscalation(Base):
    """K9/F1: an overdue-key alarm brought to someone's attention, at one level, once."""

    __tablename__ = "alarm_escalations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    alarm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alarms.id"))
    level: Mapped[str] = mapped_column(String(16))
    to_role: Mapped[str] = mapped_column(String(24))
    to_person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    event_seq: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("alarm_id", "level"),
        CheckConstraint(
            "level IN ('custodian', 'supervisor', 'long_overdue')", name="level_known"
        ),
    )


class Report(Base):
    """A generated report, frozen as canonical JSON with its SHA-256; acknowledged, never deleted."""

    __tablename__ = "reports"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(
        String(64), doc="Key number or staff number for history reports; handover id."
    )
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    language: Mapped[str] = mapped_column(String(5))
    generated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    content: Mapped[str] = mapped_column(Text, doc="Canonical JSON of the report's data.")
    sha256: Mapped[str] = mapped_column(String(64))
    event_seq: Mapped[int | None] = mapped_column(BigInteger)
    acknowledged_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id"))
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), doc="Username, as logged.")
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledgement_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "kind IN ('daily', 'overdue', 'key', 'person', 'handover')", name="kind_known"
        ),
        CheckConstraint("language IN ('zh', 'en')", name="language_known"),
        CheckConstraint("period_end >= period_start", name="period_order"),
        CheckConstraint(
            "(acknowledged_at IS NULL) = (acknowledged_by IS NULL)", name="ack_complete"
        ),
    )


class ReportFile(Base):
    """The exact bytes of one rendering of an issued report (``zh.pdf``, ``en.csv``…).

    Stored when the report is issued and served as they are, never rendered again, so the
    SHA-256 in the report's ``report.generated`` event is the hash of what a person
    downloads and prints (issue 14 item 12): anyone can check a file against the register.
    """

    __tablename__ = "report_files"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    report_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reports.id"))
    name: Mapped[str] = mapped_column(String(16), doc="<language>.<format>: zh.pdf, en.csv")
    media_type: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("report_id", "name"),
        CheckConstraint("name IN ('zh.pdf', 'zh.csv', 'en.pdf', 'en.csv')", name="name_known"),
    )


@event.listens_for(Report, "before_delete")
def _refuse_delete(_mapper: Mapper[Report], _connection: object, target: Report) -> None:
    """K9: reports cannot be hidden. A delete anywhere in the code is a bug, stopped here."""
    raise Conflict(f"K9: report {target.id} cannot be deleted; acknowledge it instead")


@event.listens_for(ReportFile, "before_delete")
def _refuse_file_delete(_mapper: Mapper[ReportFile], _connection: object,
                        target: ReportFile) -> None:
    raise Conflict(f"K9: file {target.name} of report {target.report_id} cannot be deleted")
