"""Fixed vectors pin the canonical encoding and the hash of a known event (issue 15 item 7).

Every exported checkpoint and every verifier off the device depends on these exact bytes:
a change to the encoding (key order, separators, escaping, the time format) must fail
here, not silently start a second, incompatible chain. The expected values are written out
by hand from the encoding's definition, not computed by the code under test.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.audit.chain import (
    GENESIS_HASH,
    canonical_json,
    checkpoint_message,
    event_hash,
    record_text,
)

SHANGHAI = dt.timezone(dt.timedelta(hours=8))

KNOWN_EVENT = dict(
    cabinet_id="cab-01",
    seq=42,
    at=dt.datetime(2026, 11, 27, 10, 15, 30, 123456, tzinfo=SHANGHAI),
    type="key.drawn",
    actors='["person-7","duty-3"]',
    slot=12,
    key_number="U1203",
    decision="allow",
    rules='["K3","K8"]',
    payload='{"note":"line\\nbreak","reason":"维修 \\"水管\\""}',
    prev_hash="ab" * 32,
)

# Keys sorted, no spaces, UTF-8 kept, JSON text columns hashed as strings (so escaped once
# more), the time in UTC with microseconds and a Z.
KNOWN_TEXT = (
    '{"actors":"[\\"person-7\\",\\"duty-3\\"]",'
    '"at":"2026-11-27T02:15:30.123456Z",'
    '"cabinet_id":"cab-01",'
    '"decision":"allow",'
    '"key_number":"U1203",'
    '"payload":"{\\"note\\":\\"line\\\\nbreak\\",\\"reason\\":\\"维修 \\\\\\"水管\\\\\\"\\"}",'
    '"prev_hash":"' + "ab" * 32 + '",'
    '"rules":"[\\"K3\\",\\"K8\\"]",'
    '"seq":42,'
    '"slot":12,'
    '"type":"key.drawn"}'
)
KNOWN_HASH = "b09a3a2fa1d42ce87eafbc6c8b9f0291ea59d9c93e5accb3b4c1b166aa6800e0"


def test_known_event_hashes_to_the_pinned_value() -> None:
    assert hashlib.sha256(KNOWN_TEXT.encode("utf-8")).hexdigest() == KNOWN_HASH
    assert event_hash(**KNOWN_EVENT) == KNOWN_HASH  # type: ignore[arg-type]


def test_known_event_has_the_pinned_canonical_text() -> None:
    fields = {k: v for k, v in KNOWN_EVENT.items() if k != "at"}
    text = record_text(at_text="2026-11-27T02:15:30.123456Z", **fields)  # type: ignore[arg-type]
    assert text == KNOWN_TEXT


def test_null_columns_and_the_genesis_link_are_pinned() -> None:
    event = dict(cabinet_id="c", seq=1, at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), type="t",
                 actors="[]", slot=None, key_number=None, decision=None, rules="[]",
                 payload="{}", prev_hash=GENESIS_HASH)
    text = ('{"actors":"[]","at":"2026-01-01T00:00:00.000000Z","cabinet_id":"c",'
            '"decision":null,"key_number":null,"payload":"{}","prev_hash":"' + "0" * 64
            + '","rules":"[]","seq":1,"slot":null,"type":"t"}')
    assert event_hash(**event) == hashlib.sha256(text.encode()).hexdigest()  # type: ignore[arg-type]


def test_checkpoint_message_is_pinned() -> None:
    message = checkpoint_message(cabinet_id="cab-01", seq=42, head_hash="cd" * 32,
                                 signed_at=dt.datetime(2026, 11, 27, 10, 15, 31, tzinfo=SHANGHAI))
    assert message == (
        '{"cabinet_id":"cab-01","head_hash":"' + "cd" * 32 + '","seq":42,'
        '"signed_at":"2026-11-27T02:15:31.000000Z","type":"kiosk-checkpoint/1"}'
    ).encode()


texts = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    cabinet_id=texts, seq=st.integers(1, 2**62), type_=texts, actors=texts,
    slot=st.none() | st.integers(-(2**40), 2**40), key_number=st.none() | texts,
    decision=st.none() | texts, rules=texts, payload=texts, prev_hash=texts,
)
def test_the_fast_record_text_is_byte_for_byte_canonical_json(
    cabinet_id: str, seq: int, type_: str, actors: str, slot: int | None,
    key_number: str | None, decision: str | None, rules: str, payload: str, prev_hash: str,
) -> None:
    """The verifier's hand-built text equals the reference ``canonical_json`` of the record."""
    at_text = "2026-11-27T02:15:30.123456Z"
    record = {"actors": actors, "at": at_text, "cabinet_id": cabinet_id, "decision": decision,
              "key_number": key_number, "payload": payload, "prev_hash": prev_hash,
              "rules": rules, "seq": seq, "slot": slot, "type": type_}
    assert record_text(cabinet_id=cabinet_id, seq=seq, at_text=at_text, type=type_,
                       actors=actors, slot=slot, key_number=key_number, decision=decision,
                       rules=rules, payload=payload, prev_hash=prev_hash) == canonical_json(record)
