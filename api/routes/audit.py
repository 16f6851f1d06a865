"""Audit checkpoints (signed heads of the log) and verification of the whole chain."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import Field

from api.deps import AuditDep, PrincipalDep, ReadSession, RuntimeDep, needs
from api.schemas import MAX_SEQ, Instant, Limit, Offset, Out, Page, Strict, WholeInt
from kiosk.audit.verify import VerifyResult
from kiosk.services import checkpoints
from kiosk.services.authz import Permission as P
from kiosk.store.models import Checkpoint

router = APIRouter(tags=["audit"])

Hex64 = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")


class CheckpointOut(Out):
    cabinet_id: str
    seq: int
    head_hash: str
    signed_at: dt.datetime
    key_id: str
    signature: str


class ExportedCheckpointOut(Out):
    """The document ``kiosk audit checkpoint`` writes; keep it off the device."""

    format: Literal["kiosk-checkpoint/1"]
    cabinet_id: str
    seq: int
    head_hash: str
    signed_at: dt.datetime
    key_id: str
    public_key: str
    signature: str


class ExportedCheckpoint(Strict):
    """An exported checkpoint handed back for verification."""

    format: Literal["kiosk-checkpoint/1"]
    cabinet_id: str = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    seq: WholeInt = Field(ge=1, le=MAX_SEQ)
    head_hash: str = Hex64
    signed_at: Instant
    key_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")
    public_key: str = Hex64
    signature: str = Field(min_length=128, max_length=128, pattern=r"^[0-9a-f]{128}$")


class VerifyIn(Strict):
    checkpoint: ExportedCheckpoint


class ProblemOut(Out):
    seq: int
    what: str


class VerifyOut(Out):
    ok: bool
    cabinet_id: str
    checked: int
    last_seq: int
    checkpoints: int
    first_bad_seq: int | None
    problems: list[ProblemOut]

    @classmethod
    def of(cls, result: VerifyResult) -> VerifyOut:
        return cls(
            ok=result.ok,
            cabinet_id=result.cabinet_id,
            checked=result.checked,
            last_seq=result.last_seq,
            checkpoints=result.checkpoints,
            first_bad_seq=result.first_bad_seq,
            problems=[ProblemOut(seq=p.seq, what=p.what) for p in result.problems],
        )


def _export(audit: AuditDep, row: Checkpoint) -> dict[str, Any]:
    return audit.export_checkpoint(row)


@router.get(
    "/audit/checkpoints", response_model=Page[CheckpointOut], dependencies=[needs(P.AUDIT_READ)]
)
def list_checkpoints(
    runtime: RuntimeDep, session: ReadSession, limit: Limit = 50, offset: Offset = 0
) -> Page[CheckpointOut]:
    rows, total = checkpoints.list_checkpoints(
        session, cabinet_id=runtime.settings.cabinet_id, limit=limit, offset=offset
    )
    items = [CheckpointOut.model_validate(r) for r in rows]
    return Page[CheckpointOut](items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/audit/checkpoints",
    response_model=ExportedCheckpointOut,
    status_code=201,
    dependencies=[needs(P.AUDIT_CHECKPOINT)],
    summary="Sign the head of the log now; returns the document to keep off the device",
)
def sign_checkpoint(by: PrincipalDep, audit: AuditDep) -> dict[str, Any]:
    return _export(audit, checkpoints.sign_now(audit, by=by))


@router.get(
    "/audit/checkpoints/{seq:int}",
    response_model=ExportedCheckpointOut,
    dependencies=[needs(P.AUDIT_READ)],
    summary="Export a stored checkpoint",
)
def export_checkpoint(
    seq: Annotated[int, Path(ge=1, le=MAX_SEQ)],
    runtime: RuntimeDep,
    audit: AuditDep,
    session: ReadSession,
) -> dict[str, Any]:
    row = checkpoints.get_checkpoint(session, cabinet_id=runtime.settings.cabinet_id, seq=seq)
    return _export(audit, row)


@router.get(
    "/audit/verify",
    response_model=VerifyOut,
    dependencies=[needs(P.AUDIT_READ)],
    summary="Verify the hash chain and every stored checkpoint",
)
def verify(audit: AuditDep) -> VerifyOut:
    return VerifyOut.of(checkpoints.verify(audit, exported=None))


@router.post(
    "/audit/verify",
    response_model=VerifyOut,
    dependencies=[needs(P.AUDIT_READ)],
    summary="Verify, also against a checkpoint exported earlier (catches a cut-off tail)",
)
def verify_against(body: VerifyIn, audit: AuditDep) -> VerifyOut:
    doc = body.checkpoint.model_dump(mode="json")
    return VerifyOut.of(checkpoints.verify(audit, exported=doc))
