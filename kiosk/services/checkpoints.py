"""Audit checkpoints and verification for remote auditors.

Signing a checkpoint first logs who asked for it, then signs the head, so the checkpoint
covers its own request. Verification never trusts the caller's copy blindly: an exported
checkpoint handed in is checked against the device's own public key as well.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.device_key import public_from_hex
from kiosk.audit.verify import ExportedCheckpoint, VerifyResult, verify_log
from kiosk.errors import DeviceKeyError, InvalidRequest, NotFound
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import Checkpoint


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
    )
