"""Fixed vectors pin the canonical encoding and the hash of a known event (issue 15 item 7).

Every exported checkpoint and every verifier off the device depends on these exact bytes:
a change to the encoding (key order, separators, escaping, the time format) must fail
here, not silently start a second, incompatible chain. The expected values are written out
by hand from the encoding's definition, not computed by the code under test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.audit.chain import (
    GENESIS_HASH,
    canonical_json,
    checkpoint_message,
    event_hash,
    format_time,
)
from kiosk.audit.scan import check_rows

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
    record = {k: v for k, v in KNOWN_EVENT.items() if k != "at"}
    assert canonical_json({**record, "at": "2026-11-27T02:15:30.123456Z"}) == KNOWN_TEXT


def _verifier_row(event: dict[str, object], stored_hash: str) -> tuple[object, ...]:
    """The event as the verifier reads it from SQLite: time as naive UTC text."""
    at = event["at"]
    assert isinstance(at, dt.datetime)
    text = at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return (event["seq"], text, event["type"], event["actors"], event["slot"],
            event["key_number"], event["decision"], event["rules"], event["payload"],
            event["prev_hash"], stored_hash)


def _verifier_problems(event: dict[str, object], stored_hash: str) -> list[tuple[int, str]]:
    result = check_rows([_verifier_row(event, stored_hash)], cabinet_id=str(event["cabinet_id"]),
                        first=False, wanted=frozenset(), head_seq=None, time_is_text=False)
    assert result.checked == 1
    return result.problems


def test_the_verifier_accepts_the_known_event_and_only_with_its_pinned_hash() -> None:
    assert _verifier_problems(KNOWN_EVENT, KNOWN_HASH) == []
    assert _verifier_problems(KNOWN_EVENT, "0" + KNOWN_HASH[1:]) == [
        (42, "content does not match its hash: row edited (type 'key.drawn')")
    ]


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
times = st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31),
                     timezones=st.just(dt.UTC))


@settings(max_examples=300, deadline=None)
@given(
    cabinet_id=texts, seq=st.integers(1, 2**62), at=times, type_=texts, actors=texts,
    slot=st.none() | st.integers(-(2**40), 2**40), key_number=st.none() | texts,
    decision=st.none() | texts, rules=texts, payload=texts, prev_hash=texts,
)
def test_the_verifiers_fast_hash_is_event_hash(
    cabinet_id: str, seq: int, at: dt.datetime, type_: str, actors: str, slot: int | None,
    key_number: str | None, decision: str | None, rules: str, payload: str, prev_hash: str,
) -> None:
    """The verifier's hand-built record text hashes exactly as the writer's ``event_hash``
    (``canonical_json`` of a dict), for any text, any time and any whole number."""
    event: dict[str, object] = dict(
        cabinet_id=cabinet_id, seq=seq, at=at, type=type_, actors=actors, slot=slot,
        key_number=key_number, decision=decision, rules=rules, payload=payload,
        prev_hash=prev_hash)
    assert _verifier_problems(event, event_hash(**event)) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("column,value", [("slot", 12.0), ("slot", "12"),
                                          ("actors", 7), ("decision", 1)])
def test_cells_of_another_type_are_hashed_as_the_writer_would_hash_them(
    column: str, value: object
) -> None:
    """A float where a whole number belongs, a number where text belongs: the fast path
    must not quietly format them as the expected type (``"%d" % 42.0`` is ``"42"``)."""
    event = {**KNOWN_EVENT, column: value}
    reference = canonical_json({**{k: v for k, v in event.items() if k != "at"},
                                "at": "2026-11-27T02:15:30.123456Z"})
    stored = hashlib.sha256(reference.encode()).hexdigest()
    assert _verifier_problems(event, stored) == []
    assert _verifier_problems(event, KNOWN_HASH)  # and not the intact event's hash


def test_a_naive_time_is_refused_not_guessed() -> None:
    """A time without a zone would hash differently on a machine in another zone."""
    with pytest.raises(ValueError, match=r"^event time must be timezone-aware$"):
        event_hash(**{**KNOWN_EVENT, "at": dt.datetime(2026, 11, 27, 10, 15)})  # type: ignore[arg-type]


def test_a_number_that_is_no_number_is_refused_in_a_payload() -> None:
    """NaN and infinity have no JSON spelling; writing ``NaN`` would make a payload other
    readers cannot parse (and a hash over a non-standard encoding)."""
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            canonical_json({"seconds": bad})


def test_times_are_hashed_in_utc_whatever_the_machines_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        assert format_time(dt.datetime(2026, 11, 27, 10, 15, 30, 123456, tzinfo=SHANGHAI)) \
            == "2026-11-27T02:15:30.123456Z"
        assert event_hash(**KNOWN_EVENT) == KNOWN_HASH  # type: ignore[arg-type]
    finally:
        monkeypatch.undo()
        time.tzset()
