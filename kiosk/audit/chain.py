"""Canonical encoding and hashing of one event. Pure functions, shared by writer and verifier."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of sequence number 1."""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace, UTF-8 kept: one byte string per meaning."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def format_time(at: dt.datetime) -> str:
    """UTC, microsecond precision, ``Z`` suffix: what SQLite and PostgreSQL both round-trip."""
    if at.tzinfo is None:
        raise ValueError("event time must be timezone-aware")
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    cabinet_id: str,
    seq: int,
    at: dt.datetime,
    type: str,
    actors: str,
    slot: int | None,
    key_number: str | None,
    decision: str | None,
    rules: str,
    payload: str,
    prev_hash: str,
) -> str:
    """SHA-256 over the canonical encoding of every stored column plus the previous hash.

    ``actors``, ``rules`` and ``payload`` are hashed as the exact stored JSON text, so any
    byte changed in them is detected, not only a change of meaning.
    """
    record = {
        "actors": actors,
        "at": format_time(at),
        "cabinet_id": cabinet_id,
        "decision": decision,
        "key_number": key_number,
        "payload": payload,
        "prev_hash": prev_hash,
        "rules": rules,
        "seq": seq,
        "slot": slot,
        "type": type,
    }
    return hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()


RECORD_TEMPLATE = (
    '{"actors":%s,"at":"%s","cabinet_id":%s,"decision":%s,"key_number":%s,"payload":%s,'
    '"prev_hash":%s,"rules":%s,"seq":%d,"slot":%s,"type":%s}'
)
"""``canonical_json`` of ``event_hash``'s record, spelled out key by key in sorted order.

The verifier (``kiosk.audit.scan``) hashes a million rows; filling this template with the
C string encoder ``json.dumps`` itself uses is several times faster than ``json.dumps`` of
a dict and gives byte-for-byte the same text for rows of the types the log writes
(tests/audit/test_vectors.py proves it on generated rows). The ``at`` slot takes the
output of ``format_time``, which needs no escaping."""


def checkpoint_message(
    *, cabinet_id: str, seq: int, head_hash: str, signed_at: dt.datetime
) -> bytes:
    """The exact bytes an Ed25519 checkpoint signature covers."""
    return checkpoint_message_text(
        cabinet_id=cabinet_id, seq=seq, head_hash=head_hash, signed_at_text=format_time(signed_at)
    )


def checkpoint_message_text(
    *, cabinet_id: str, seq: int, head_hash: str, signed_at_text: str
) -> bytes:
    """``checkpoint_message`` with the time already in ``format_time``'s form."""
    return canonical_json(
        {
            "cabinet_id": cabinet_id,
            "head_hash": head_hash,
            "seq": seq,
            "signed_at": signed_at_text,
            "type": "kiosk-checkpoint/1",
        }
    ).encode("utf-8")
