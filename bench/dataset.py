"""The benchmark dataset: 10,000 people, 2,000 keys, 1,000,000 events (sizes adjustable).

Generated once into ``bench/.cache/<name>/`` (a SQLite database and its device key) and
reused; the generation time is reported. Events are real chained, hashed and checkpointed
rows (the verifier must accept them), written in bulk rather than one durable append at a
time, which would take hours and measure nothing new.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.orm import Session

from kiosk.audit.chain import GENESIS_HASH, canonical_json, checkpoint_message, event_hash
from kiosk.config import Settings
from kiosk.runtime import Runtime
from kiosk.store.models import (
    AuditHead,
    Cabinet,
    Card,
    Checkpoint,
    Department,
    Event,
    Key,
    KeyCategory,
    KeyGroup,
    Loan,
    Person,
    PersonRole,
    Role,
    Slot,
)

CACHE = Path(__file__).parent / ".cache"
CABINET = "bench"
BATCH = 20_000


@dataclass(frozen=True)
class Sizes:
    people: int = int(os.environ.get("BENCH_PEOPLE", "10000"))
    keys: int = int(os.environ.get("BENCH_KEYS", "2000"))
    events: int = int(os.environ.get("BENCH_EVENTS", "1000000"))
    loans: int = int(os.environ.get("BENCH_LOANS", "50000"))

    @property
    def name(self) -> str:
        return f"p{self.people}-k{self.keys}-e{self.events}-l{self.loans}"


def settings_for(directory: Path) -> Settings:
    return Settings(data_dir=directory, cabinet_id=CABINET, database_url="")


def dataset(sizes: Sizes | None = None) -> tuple[Path, float | None]:
    """The folder of a ready dataset and how long it took to generate (None: cached)."""
    sizes = sizes or Sizes()
    directory = CACHE / sizes.name
    if (directory / "ready").exists():
        return directory, None
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("kiosk.db*"):
        stale.unlink()
    t0 = time.perf_counter()
    _generate(directory, sizes)
    took = time.perf_counter() - t0
    (directory / "ready").write_text(json.dumps({"generation_s": round(took, 1)}))
    return directory, took


def _bulk(session: Session, model: type, rows: list[dict[str, object]]) -> None:
    for i in range(0, len(rows), BATCH):
        session.execute(insert(model), rows[i:i + BATCH])


def _generate(directory: Path, sizes: Sizes) -> None:
    rng = random.Random(7)
    runtime = Runtime.open(settings_for(directory))
    now = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    with Session(runtime.engine) as s:
        cabinet = s.query(Cabinet).filter(Cabinet.code == CABINET).one()
        depts = [Department(code=f"D{i}", name=f"部门{i}") for i in range(20)]
        groups = [KeyGroup(code=f"G{i}", name=f"组{i}") for i in range(10)]
        s.add_all([*depts, *groups])
        s.flush()
        people = [{"id": uuid.uuid4(), "staff_no": f"E{i:06d}", "name": f"员工{i}",
                   "department_id": depts[i % 20].id, "active": True, "updated_at": now}
                  for i in range(sizes.people)]
        _bulk(s, Person, people)
        _bulk(s, PersonRole, [{"person_id": p["id"], "role": Role.STAFF} for p in people])
        _bulk(s, Card, [{"id": uuid.uuid4(), "uid": f"{i:08X}", "person_id": p["id"],
                         "kind": "staff", "status": "active", "updated_at": now}
                        for i, p in enumerate(people)])
        slots = [{"id": uuid.uuid4(), "cabinet_id": cabinet.id, "number": n + 1, "enabled": True}
                 for n in range(sizes.keys)]
        _bulk(s, Slot, slots)
        keys = [{"id": uuid.uuid4(), "key_number": f"K{n:05d}", "label": f"房间 {n}",
                 "group_id": groups[n % 10].id, "category": KeyCategory.UNIT, "copies": 1,
                 "fob_tag": f"04{n:012X}", "home_slot_id": slots[n]["id"], "status": "active",
                 "updated_at": now} for n in range(sizes.keys)]
        _bulk(s, Key, keys)
        loans = []
        for i in range(sizes.loans):
            drawn = now - dt.timedelta(minutes=rng.randrange(60 * 24 * 365))
            loans.append({"id": uuid.uuid4(), "key_id": keys[i % len(keys)]["id"],
                          "cabinet_id": cabinet.id, "borrower_id": people[i % len(people)]["id"],
                          "quantity": 1, "reason_code": "repair", "drawn_at": drawn,
                          "due_at": drawn + dt.timedelta(hours=4),
                          "returned_at": drawn + dt.timedelta(hours=1), "returned_by_other": False})
        for i, key in enumerate(keys[: min(300, len(keys))]):  # 300 keys out right now
            loans.append({"id": uuid.uuid4(), "key_id": key["id"], "cabinet_id": cabinet.id,
                          "borrower_id": people[i]["id"], "quantity": 1, "reason_code": "repair",
                          "drawn_at": now - dt.timedelta(hours=2),
                          "due_at": now + dt.timedelta(hours=i % 5 - 1, minutes=30),
                          "returned_at": None, "returned_by_other": False})
        _bulk(s, Loan, loans)
        s.commit()

    device_key = runtime.device_key
    prev = GENESIS_HASH
    types = ["key.drawn", "key.returned", "draw.intent", "return.intent", "access.denied"]
    start = now - dt.timedelta(days=365)
    with Session(runtime.engine) as s:
        batch: list[dict[str, object]] = []
        checkpoints: list[dict[str, object]] = []
        for seq in range(1, sizes.events + 1):
            t = types[seq % 5]
            row = {
                "cabinet_id": CABINET, "seq": seq,
                "at": start + dt.timedelta(seconds=seq * 30),
                "type": t, "actors": canonical_json([str(people[seq % len(people)]["id"])]),
                "slot": seq % max(1, sizes.keys) + 1, "key_number": f"K{seq % max(1, sizes.keys):05d}",
                "decision": "deny" if t == "access.denied" else "allow",
                "rules": canonical_json(["K3"]), "payload": canonical_json({"i": seq}),
                "prev_hash": prev,
            }
            row["hash"] = prev = event_hash(**row)  # type: ignore[arg-type]
            batch.append(row)
            if seq % 256 == 0:
                msg = checkpoint_message(cabinet_id=CABINET, seq=seq, head_hash=prev,
                                         signed_at=row["at"])  # type: ignore[arg-type]
                checkpoints.append({"cabinet_id": CABINET, "seq": seq, "head_hash": prev,
                                    "signed_at": row["at"], "key_id": device_key.key_id,
                                    "signature": device_key.sign(msg)})
            if len(batch) >= BATCH:
                s.execute(insert(Event), batch)
                batch = []
        if batch:
            s.execute(insert(Event), batch)
        if checkpoints:
            s.execute(insert(Checkpoint), checkpoints)
        s.merge(AuditHead(cabinet_id=CABINET, seq=sizes.events, hash=prev))
        s.commit()
    runtime.close()


if __name__ == "__main__":
    folder, took = dataset()
    print(f"dataset {folder} " + (f"generated in {took:.1f} s" if took else "(cached)"))
