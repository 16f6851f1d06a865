"""Who may do what through the admin API: one permission table and the caller it applies to.

Each endpoint needs exactly one ``Permission``; each role has a fixed set of them
(``ROLE_PERMISSIONS``). An API token narrows its account's set to its scopes, never widens
it. On top of that, an account scoped to a department sees and changes only that
department's people and what hangs off them (cards, person rights, approvals, loans):
``Principal.sees_department`` is the single object-level check the services call.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from kiosk.errors import NotFound, PermissionDenied
from kiosk.store.models_auth import AccountRole, TokenKind


class Permission(enum.StrEnum):
    ACCOUNTS_READ = "accounts:read"
    ACCOUNTS_WRITE = "accounts:write"
    PEOPLE_READ = "people:read"
    PEOPLE_WRITE = "people:write"
    DEPARTMENTS_READ = "departments:read"
    DEPARTMENTS_WRITE = "departments:write"
    CARDS_READ = "cards:read"
    CARDS_WRITE = "cards:write"
    CARDS_REPORT_LOST = "cards:report_lost"
    OWNERS_READ = "owners:read"
    OWNERS_WRITE = "owners:write"
    OWNERS_PERSONAL_DATA = "owners:personal_data"
    UNITS_READ = "units:read"
    UNITS_WRITE = "units:write"
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    KEYS_INTAKE = "keys:intake"
    CABINETS_READ = "cabinets:read"
    CABINETS_WRITE = "cabinets:write"
    CABINETS_REMOTE_UNLOCK = "cabinets:remote_unlock"
    """K2: request or confirm a remote unlock (two different admins); admins only."""
    RIGHTS_READ = "rights:read"
    RIGHTS_WRITE = "rights:write"
    APPROVALS_READ = "approvals:read"
    APPROVALS_REQUEST = "approvals:request"
    APPROVALS_DECIDE = "approvals:decide"
    APPROVALS_EXPIRE = "approvals:expire"
    AUTHORIZATIONS_READ = "authorizations:read"
    AUTHORIZATIONS_WRITE = "authorizations:write"
    AUTHORIZATIONS_CONFIRM_PHONE = "authorizations:confirm_phone"
    ROSTER_READ = "roster:read"
    ROSTER_WRITE = "roster:write"
    LOANS_READ = "loans:read"
    ALARMS_READ = "alarms:read"
    ALARMS_WRITE = "alarms:write"
    EVENTS_READ = "events:read"
    AUDIT_READ = "audit:read"
    AUDIT_CHECKPOINT = "audit:checkpoint"
    REPORTS_READ = "reports:read"
    REPORTS_ACKNOWLEDGE = "reports:acknowledge"
    REPORTS_GENERATE = "reports:generate"
    IMPORTS_WRITE = "imports:write"
    """Bulk import of people with cards, units with owners, keys with slots (all or nothing)."""
    """K9: issue a report on demand (stored and logged, never deleted); previews are reads."""
    HANDOVERS_READ = "handovers:read"
    HANDOVERS_START = "handovers:start"
    """H1: start a handover as the caller's own linked person (a keeper of the register)."""
    HANDOVERS_CANCEL = "handovers:cancel"
    """Withdraw someone's waiting handover (at the cabinet the outgoing cancels their own)."""
    NOTIFICATIONS_READ = "notifications:read"
    """The delivery log of email and webhook notifications."""
    NOTIFICATIONS_RETRY = "notifications:retry"
    """Send a failed notification again (admins: it talks to the outside world)."""
    PINS_RESET = "pins:reset"
    """Clear a person's cabinet PIN (and duress PIN) so they set a new one at the cabinet."""
    METRICS_READ = "metrics:read"
    """Prometheus counters only: give a scraper's API token this scope and nothing else."""

    @property
    def is_read(self) -> bool:
        return self.value.endswith(":read")


P = Permission

_ALL_READS = frozenset(p for p in P if p.is_read)
"""Reading every record; personal data of owners (A1) is a separate permission on purpose."""

ROLE_PERMISSIONS: dict[AccountRole, frozenset[Permission]] = {
    # Everything except deciding K7 approvals, which docs/rules.md (K7) gives to the
    # department leader alone.
    AccountRole.ADMIN: frozenset(P) - {P.APPROVALS_DECIDE},
    # Reviews counts, overdue keys and discrepancies; owns alarms and the duty roster; as
    # head of customer service, decides who may draw which keys (issue 11: the supervisor
    # enrols badges and grants rights; docs/security.md says why, and why no more).
    AccountRole.SUPERVISOR: (_ALL_READS - {P.ACCOUNTS_READ})
    | {
        P.CARDS_WRITE,  # enrols, issues and revokes badges (K3: who taps is who draws)
        P.CARDS_REPORT_LOST,
        P.RIGHTS_WRITE,  # grants, edits and withdraws access rights (K3)
        P.ALARMS_WRITE,
        P.ROSTER_WRITE,
        P.APPROVALS_EXPIRE,
        P.AUDIT_CHECKPOINT,
        P.REPORTS_ACKNOWLEDGE,  # K9: reports go to the supervisor, who acknowledges them
        P.REPORTS_GENERATE,
        P.IMPORTS_WRITE,  # sets up a building from a spreadsheet (issue 11)
        P.HANDOVERS_START,  # H1: supervisors keep the register across shifts too
        P.HANDOVERS_CANCEL,
    },
    # Approves special-room draws for their own department (K7).
    AccountRole.DEPT_LEADER: frozenset(
        {
            P.PEOPLE_READ,
            P.DEPARTMENTS_READ,
            P.CARDS_READ,
            P.CARDS_REPORT_LOST,
            P.UNITS_READ,
            P.KEYS_READ,
            P.CABINETS_READ,
            P.RIGHTS_READ,
            P.APPROVALS_READ,
            P.APPROVALS_REQUEST,
            P.APPROVALS_DECIDE,
            P.ROSTER_READ,
            P.LOANS_READ,
        }
    ),
    # After hours: sees who holds what, handles alarms first-hand (F1).
    AccountRole.DUTY_MANAGER: frozenset(
        {
            P.PEOPLE_READ,
            P.DEPARTMENTS_READ,
            P.CARDS_READ,
            P.CARDS_REPORT_LOST,
            P.UNITS_READ,
            P.KEYS_READ,
            P.CABINETS_READ,
            P.APPROVALS_READ,
            P.AUTHORIZATIONS_READ,
            P.ROSTER_READ,
            P.LOANS_READ,
            P.ALARMS_READ,
            P.ALARMS_WRITE,
            P.HANDOVERS_READ,  # H1: the duty manager takes over the register after hours
            P.HANDOVERS_START,
        }
    ),
    # Receives keys (K1), registers owners' letters and calls owners (K6): needs their phone.
    AccountRole.CUSTODIAN: frozenset(
        {
            P.PEOPLE_READ,
            P.DEPARTMENTS_READ,
            P.CARDS_READ,
            P.CARDS_WRITE,  # enrols badges at the service desk by tapping them (issue 11)
            P.PINS_RESET,  # ... and resets the PIN that goes with a badge, face to face
            P.CARDS_REPORT_LOST,
            P.OWNERS_READ,
            P.OWNERS_WRITE,
            P.OWNERS_PERSONAL_DATA,
            P.UNITS_READ,
            P.KEYS_READ,
            P.KEYS_WRITE,
            P.KEYS_INTAKE,
            P.CABINETS_READ,
            P.RIGHTS_READ,
            P.APPROVALS_READ,
            P.APPROVALS_REQUEST,
            P.AUTHORIZATIONS_READ,
            P.AUTHORIZATIONS_WRITE,
            P.AUTHORIZATIONS_CONFIRM_PHONE,
            P.ROSTER_READ,
            P.LOANS_READ,
            P.ALARMS_READ,
            P.ALARMS_WRITE,
            P.REPORTS_READ,  # K9: the custodian does the daily count and reads its report
            P.REPORTS_GENERATE,  # ... and prints it for the supervisor to sign
            P.IMPORTS_WRITE,  # enrols people, rooms and keys in bulk at the service desk
            P.HANDOVERS_READ,  # H1: hands the register over at the end of the shift
            P.HANDOVERS_START,
        }
    ),
    # Reads everything, including the log and its verification, but never writes and never
    # sees owners' personal data.
    AccountRole.AUDITOR: _ALL_READS,
}

DEPARTMENT_ROLES = frozenset({AccountRole.DEPT_LEADER})
"""Roles whose accounts must be scoped to a department."""


def parse_scopes(values: Iterable[str]) -> frozenset[Permission]:
    """Permission names to permissions; unknown names are an error, not silently dropped."""
    result: set[Permission] = set()
    for value in values:
        try:
            result.add(Permission(value))
        except ValueError:
            raise PermissionDenied(f"unknown scope {value!r}") from None
    return frozenset(result)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    account_id: uuid.UUID
    username: str
    role: AccountRole
    person_id: uuid.UUID | None
    department_id: uuid.UUID | None
    permissions: frozenset[Permission]
    token_id: uuid.UUID
    token_kind: TokenKind
    expires_at: dt.datetime | None = None
    """When the token stops working (None: an API token without an end date); a long-lived
    response such as the event stream ends then."""

    @property
    def actor(self) -> str:
        """How this caller appears in the audit log's ``actors`` list."""
        return f"account:{self.username}"

    def actors(self) -> list[str]:
        """The account, plus the person behind it when there is one."""
        return [self.actor] + ([str(self.person_id)] if self.person_id else [])

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise PermissionDenied(f"role {self.role.value} lacks permission {permission.value}")

    def sees_department(self, department_id: uuid.UUID | None) -> bool:
        """Department-scoped accounts see only their own department's records."""
        return self.department_id is None or department_id == self.department_id

    def check_department(self, department_id: uuid.UUID | None, what: str) -> None:
        """Hide another department's record as if it did not exist (no existence oracle)."""
        if not self.sees_department(department_id):
            raise NotFound(f"{what} does not exist")
