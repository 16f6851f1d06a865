"""K10: a start-up whose sensor scan fails must not resolve interrupted intents blind.

Found by bench/crash_harness.py: the daemon died after a draw's intent and unlock, the
person took the key from the open compartment, and the restarted daemon could not read
one lock board. Start-up reconciliation then resolved the draw with no sensor data as
"not taken" and logged ``cabinet.reconciled``, so the intent was never looked at again:
the key was out with no loan and the records said it hung in its slot.
"""

from __future__ import annotations

from pathlib import Path

from rig import close_rig, make_rig

from kiosk.cabinet import Cabinet, calendar_from, options_from


async def test_K10_reconciliation_waits_for_a_scan_that_succeeds(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    uid, person = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    rig.hw.power(False)  # the daemon dies after the intent and the unlock...
    rig.hw.take(slot)  # ...and the key is taken from the popped compartment meanwhile
    rig.hw.power(True)
    sim = rig.hw.board.sim
    sim.set_faults(offline_boards={(slot - 1) // 16})  # one board silent at the restart
    reconciled_before = len(rig.events("cabinet.reconciled"))

    cabinet = Cabinet(rig.runtime, rig.hw.locks, calendar=calendar_from(rig.runtime.settings),
                      options=options_from(rig.runtime.settings), clock=rig.clock)
    rig.cabinet = cabinet
    summary = await cabinet.start()
    assert summary == {"reconcile_pending": 1}
    assert not rig.events("draw.resolved"), "resolved without reading the sensors"
    assert len(rig.events("cabinet.reconciled")) == reconciled_before

    sim.clear_faults()
    await rig.settle()  # the first scan that succeeds reconciles
    resolved = rig.events("draw.resolved")
    assert len(resolved) == 1 and '"outcome":"taken"' in resolved[0].payload
    loans = rig.open_loans()
    assert len(loans) == 1 and loans[0].borrower_id == person.id
    assert len(rig.events("cabinet.reconciled")) == reconciled_before + 1
    await rig.settle()  # and only once
    assert len(rig.events("draw.resolved")) == 1
    await close_rig(rig)
