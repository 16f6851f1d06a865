"""Audit checkpoints and verification for remote auditors; the scheduler's signing and export.

Signing a checkpoint first logs who asked for it, then signs the head, so the checkpoint
covers its own request. Verification never trusts the caller's copy blindly: an exported
checkpoint handed in is checked against the device's own public key as well.

``CheckpointUpkeep`` keeps the head signed (so ``verify`` finds no unsigned tail on a
healthy cabinet) and the off-device copy current (``[audit] export_path``).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.device_key import public_from_hex
from kiosk.audit.export import ExportSummary, export_to
from kiosk.audit.verify import ExportedCheckpoint, VerifyResult, verify_log
from kiosk.config import AuditSettings
from kiosk.errors import AuditError, DeviceKeyError, InvalidRequest, NotFound
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import Checkpoint

log = logging.getLogger("kiosk.audit")


def list_checkpoints(
    session: Session, *, cabinet_id: str, limit: int, offset: int
) -> tuple[list[Checkpoint], int]:
    query = select(Checkpoint).where(Checkpoint.cabinet_id == cabinet_id)
    return tx.page(session, query, order_by=[Checkpoint.seq.desc()], limit=limit, offset=offset)


def get_checkpoint(session: Session, *, cabinet_id: str, seq: int) -> Checkpoint:
    row = session.get(Checkpoint, (cabinet_id, seq))
    if row is None:
        raise NotFound(f"no checkpoint at seq {seq}")
    return row


def sign_now(audit: AuditLog, *, by: Principal) -> Checkpoint:
    """Log the request, then sign the head (which now includes the request)."""
    with tx.write(audit) as session:
        tx.log(
            session,
            audit,
            NewEvent(type="audit.checkpoint_requested", actors=by.actors()),
        )
    return audit.checkpoint()


def verify(audit: AuditLog, *, exported: dict[str, Any] | None) -> VerifyResult:
    """Verify the chain and stored checkpoints (and an exported one, when given)."""
    checkpoint = None
    if exported is not None:
        try:
            checkpoint = ExportedCheckpoint(
                cabinet_id=str(exported["cabinet_id"]),
                seq=int(exported["seq"]),
                head_hash=str(exported["head_hash"]),
                signed_at=dt.datetime.fromisoformat(str(exported["signed_at"])),
                public_key=public_from_hex(str(exported["public_key"])),
                signature=str(exported["signature"]),
            )
        except (KeyError, ValueError, TypeError, DeviceKeyError) as exc:
            raise InvalidRequest(f"exported checkpoint unreadable: {exc}") from None
        if checkpoint.signed_at.tzinfo is None:
            raise InvalidRequest("exported checkpoint unreadable: signed_at has no time zone")
    return verify_log(
        audit.engine,
        cabinet_id=audit.cabinet_id,
        public_key=audit.device_key.public,
        exported=checkpoint,
        checkpoint_every=audit.checkpoint_every,
        workers=1,  # inside the daemon: leave the other cores to the cabinet and the API
    )


class CheckpointUpkeep:
    """What the scheduler does for the log at each tick.

    Signs the head when it moved since the last checkpoint (a crash then leaves at most the
    events of one tick unsigned), and every ``export_every_min`` minutes, when the log has
    moved, writes the off-device copy to ``export_path``. A failing export (stick missing,
    disk full) is logged and retried at the next tick; it never stops the K9 jobs.
    """

    def __init__(self, audit: AuditLog, options: AuditSettings) -> None:
        self.audit = audit
        self.options = options
        self.last_export_at: dt.datetime | None = None
        self.last_export_seq = 0

    def tick(self, now: dt.datetime) -> ExportSummary | None:
        self.audit.sign_head()
        folder = self.options.export_path
        if folder is None:
            return None
        due = self.last_export_at is None or (
            now - self.last_export_at >= dt.timedelta(minutes=self.options.export_every_min)
        )
        if not due or self.audit.head()[0] == self.last_export_seq:
            return None
        try:
            summary = export_to(self.audit, folder, with_log=self.options.export_log)
        except AuditError as exc:
            log.warning("audit export to %s failed, retrying at the next tick: %s", folder, exc)
            return None
        self.last_export_at, self.last_export_seq = now, summary.checkpoint_seq
        log.info("audit log exported to %s up to seq %d", summary.folder, summary.checkpoint_seq)
        return summary
