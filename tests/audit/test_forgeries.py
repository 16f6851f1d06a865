"""Forgeries by someone who knows the hash algorithm but not the device key (issue 15 item 7).

Each forgery is one step further than the last, and each is caught by the next line of
defence: a row's own hash, then the next row's link, then a signed checkpoint.
"""

from __future__ import annotations

from audit_forge import edit_and_rechain, edit_and_rehash_row, fill, sql

from kiosk.audit.verify import VerifyResult, verify_log
from kiosk.runtime import Runtime

CAB = "cab-test"


def _verify(rt: Runtime) -> VerifyResult:
    return verify_log(rt.engine, cabinet_id=CAB, public_key=rt.device_key.public,
                      checkpoint_every=256)


def test_edit_without_rehash_is_caught_by_the_rows_own_hash(runtime: Runtime) -> None:
    fill(runtime)
    sql(runtime, "UPDATE events SET decision = 'allow' WHERE seq = 5")
    assert [str(p) for p in _verify(runtime).problems] == [
        "seq 5: content does not match its hash: row edited (type 'access.denied')"
    ]


def test_edit_with_the_rows_hash_recomputed_is_caught_by_the_next_rows_link(
    runtime: Runtime,
) -> None:
    """Row 5 is consistent with itself now; only row 6's stored previous hash betrays it."""
    fill(runtime)
    edit_and_rehash_row(runtime, 5, '{"i":4,"reason":"私事"}')
    assert [str(p) for p in _verify(runtime).problems] == [
        "seq 6: previous-hash link broken: a row was inserted, removed or reordered here"
    ]


def test_edit_with_the_whole_tail_recomputed_is_caught_by_a_signed_checkpoint(
    runtime: Runtime,
) -> None:
    """Every hash and link after row 5 recomputed, head record fixed: the chain is whole,
    but the checkpoint signed at seq 8 pins the old hash and cannot be re-signed."""
    fill(runtime, 8)
    runtime.audit.checkpoint()
    fill(runtime, 2)
    edit_and_rechain(runtime, 5, '{"i":4,"reason":"私事"}')
    result = _verify(runtime)
    assert [str(p) for p in result.problems] == [
        "seq 8: stored checkpoint hash differs: the log up to here was rewritten"
    ]
