"""Issue 13, items 1 and 5 at the composition root: the simulated cabinet keeps its physical
state across daemon restarts, and a cabinet configured with identity receptors reads each
key's own fob chip per slot.

A real cabinet does not reset when the Pi reboots: a key pulled before the restart is
still out after it, and the start-up reconciliation must see it out (K10).
"""

from __future__ import annotations

from pathlib import Path

from drivers.identity import FobId, IdentifiedLockBank
from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.runtime import Runtime
from kiosk.wiring import SIM_STATE_FILE, build_simulated
from simulators.cabinet import CabinetModel
from tests.kiosk.rig import FRI_10AM


def _runtime(tmp_path: Path, **settings: object) -> Runtime:
    cfg = Settings(data_dir=tmp_path / "var", cabinet_id="cab-01", **settings)  # type: ignore[arg-type]
    return Runtime.open(cfg)


def test_a_pulled_key_stays_pulled_across_a_restart(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    load_demo(runtime, now=FRI_10AM)
    hw = build_simulated(runtime)
    stocked = [n for n in sorted(hw.model.slots) if hw.model.fob_in(n)]
    slot = stocked[0]
    fob = hw.take(slot, force=True)  # pulled while the daemon runs
    hw.close()

    again = build_simulated(runtime)  # the daemon restarts on the same data dir
    try:
        assert again.model.fob_in(slot) is None  # still out: not restocked from the records
        assert again.locks.status()[slot].key_present is False
        assert all(again.model.fob_in(n) for n in stocked[1:])
        assert fob not in {again.model.fob_in(n) for n in again.model.slots}
    finally:
        again.close()
    assert (runtime.settings.data_dir / SIM_STATE_FILE).is_file()


def test_a_damaged_state_file_is_set_aside_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json", encoding="utf-8")
    model = CabinetModel([1, 2])
    model.load({1: "FOB-1"})
    assert model.persist_to(path) is False
    assert path.with_suffix(".json.bad").is_file()
    assert model.fob_in(1) == "FOB-1"  # the records' stocking stands
    model.take(1, force=True)
    restored = CabinetModel([1, 2])
    restored.load({1: "FOB-1"})
    assert restored.persist_to(path) is True
    assert restored.fob_in(1) is None


def test_an_identity_cabinet_reads_each_keys_own_chip(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, hardware={"identity": {"enabled": True}})
    load_demo(runtime, now=FRI_10AM)
    hw = build_simulated(runtime)
    try:
        assert hw.identity is not None
        sweep = hw.identity.sweep()
        assert sweep.ok
        for slot, rom in sweep.fobs.items():
            label = hw.model.fob_in(slot)
            assert rom == (None if label is None else FobId.derived(label))
        # U701's fob hung in another key's slot reads as U701's chip, not "a key"
        occupied = [n for n, rom in sweep.fobs.items() if rom is not None]
        a, b = occupied[:2]
        fob_a = hw.take(a, force=True)
        fob_b = hw.take(b, force=True)
        hw.model.load({a: fob_b})
        assert hw.identity.read_slot(a) == FobId.derived(fob_b) != FobId.derived(fob_a)
        assert hw.state()["slots"][a]["rom"] == FobId.derived(fob_b).hex
    finally:
        hw.close()


def test_a_presence_only_cabinet_has_no_identity_reader(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    load_demo(runtime, now=FRI_10AM)
    hw = build_simulated(runtime, persist=False)
    try:
        assert hw.identity is None and hw.state()["identity"] is False
    finally:
        hw.close()
    assert not (runtime.settings.data_dir / SIM_STATE_FILE).exists()


def test_the_cabinets_bank_reports_which_key_hangs_in_each_slot(tmp_path: Path) -> None:
    """What item 2 of issue 13 builds on: SlotState.fob is the ROM of the fob in the slot."""
    runtime = _runtime(tmp_path, hardware={"identity": {"enabled": True}})
    load_demo(runtime, now=FRI_10AM)
    hw = build_simulated(runtime, persist=False)
    try:
        bank = hw.bank
        assert bank is not hw.locks and isinstance(bank, IdentifiedLockBank)
        status = bank.status()
        occupied = [n for n, st in status.items() if st.key_present]
        a, b = occupied[:2]
        label_a, label_b = hw.model.fob_in(a), hw.model.fob_in(b)
        assert label_a is not None and label_b is not None
        assert status[a].fob == FobId.derived(label_a).hex
        hw.take(a, force=True)
        hw.take(b, force=True)
        assert bank.status()[a].fob is None  # gone: no identity
        hw.model.load({a: label_b})  # the wrong key hung in a's slot
        assert bank.status()[a].fob == FobId.derived(label_b).hex
        # a dirty receptor: identity unknown (None) and reported, the lock status stands
        assert hw.i2c is not None
        receptor = hw.identity.receptor(b) if hw.identity else None
        assert receptor is not None
        hw.model.load({b: label_a})
        hw.i2c.chip(receptor.address, mux=receptor.mux).faults.shorted.add(receptor.channel)
        status = bank.status()
        assert status[b].key_present is True and status[b].fob is None
        assert b in bank.identity_faults
        hw.i2c.chip(receptor.address, mux=receptor.mux).faults.shorted.clear()
        assert bank.status()[b].fob == FobId.derived(label_a).hex
        assert b not in bank.identity_faults
    finally:
        hw.close()
