"""The append-only, hash-chained, signed event log.

Every row carries its sequence number and a SHA-256 hash over a canonical encoding that
includes the previous row's hash; Ed25519-signed checkpoints pin the head so that even a
rewrite of the whole chain, or a cut-off tail, is detected by anyone holding an exported
checkpoint.
"""

from kiosk.audit.chain import GENESIS_HASH, canonical_json, event_hash
from kiosk.audit.log import AppendedEvent, AuditLog, HeadMoved, NewEvent

__all__ = [
    "GENESIS_HASH",
    "AppendedEvent",
    "AuditLog",
    "HeadMoved",
    "NewEvent",
    "canonical_json",
    "event_hash",
]
