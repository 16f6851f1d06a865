"""Tables of the admin API's own security: accounts, bearer/API tokens and login attempts.

They live apart from ``models.py`` because they describe who may administer the cabinet
remotely, not what the cabinet holds; they share its ``Base`` so Alembic sees one schema.
Token secrets are never stored: only their SHA-256 (tokens are 256-bit random, so a fast
hash is enough); passwords are stored as argon2id hashes only.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kiosk.store.models import Base, Department, Person, _enum
from kiosk.store.types import utcnow


class AccountRole(enum.StrEnum):
    """Roles of the admin API (see ``kiosk.services.authz`` for what each may do)."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    DEPT_LEADER = "dept_leader"
    DUTY_MANAGER = "duty_manager"
    CUSTODIAN = "custodian"
    AUDITOR = "auditor"


class TokenKind(enum.StrEnum):
    ACCESS = "access"
    """Short-lived, issued by a password login, carries the account's full role."""
    API = "api"
    """Long-lived, made by an administrator for an integration, limited to its scopes."""


class LoginOutcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    REFUSED = "refused"
    """Not even checked: the account was locked or the address over its rate limit."""
    UNLOCK = "unlock"
    """An administrator cleared the failure count (ends a lockout early)."""


class Account(Base):
    """Someone who may use the admin API; optionally a person and scoped to one department."""

    __tablename__ = "accounts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[AccountRole] = mapped_column(_enum(AccountRole, "account_role"))
    person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("people.id"))
    department_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("departments.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id"), doc="The account that made this one; NULL: the device console."
    )
    awaiting_confirmation: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(),
        doc="An administrator made or promoted over the API, not yet confirmed by a second "
            "administrator: it cannot log in or act (issue 16, dual control).",
    )
    confirmed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    person: Mapped[Person | None] = relationship(foreign_keys=[person_id])
    department: Mapped[Department | None] = relationship()


class ApiToken(Base):
    """A bearer credential: short-lived access token or long-lived, scoped API token."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[TokenKind] = mapped_column(_enum(TokenKind, "token_kind"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), doc="First characters, to tell tokens apart.")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(Text, doc="Canonical JSON list of permission names.")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]

    account: Mapped[Account] = relationship()

    __table_args__ = (Index("ix_api_tokens_account_id", "account_id"),)


class LoginAttempt(Base):
    """One password login try; lockout and rate limits are counted from these rows."""

    __tablename__ = "login_attempts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64))
    remote: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    outcome: Mapped[LoginOutcome] = mapped_column(_enum(LoginOutcome, "login_outcome"))

    __table_args__ = (
        Index("ix_login_attempts_username_at", "username", "at"),
        Index("ix_login_attempts_remote_at", "remote", "at"),
    )
