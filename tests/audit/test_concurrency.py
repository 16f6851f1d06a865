"""Two threads or two processes appending at once never fork the chain."""

from __future__ import annotations

import subprocess
import sys
import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kiosk.audit import NewEvent
from kiosk.audit.verify import verify_log
from kiosk.runtime import Runtime
from kiosk.store.models import Event

CAB = "cab-test"


WORKER = """
import sys
from pathlib import Path
from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.device_key import load_or_create
from kiosk.store.db import make_engine

url, key_path, worker, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
engine = make_engine(url)
log = AuditLog(engine, cabinet_id="cab-test", device_key=load_or_create(Path(key_path)),
               checkpoint_every=7)
for i in range(count):
    log.append(NewEvent(type="test.append", actors=["w" + worker], payload={"i": i}))
engine.dispose()
"""


def _assert_one_unbroken_chain(runtime: Runtime, expected: int) -> None:
    result = verify_log(runtime.engine, cabinet_id=CAB, public_key=runtime.device_key.public)
    assert result.ok, result.problems
    assert result.last_seq == expected
    with Session(runtime.engine) as s:
        assert s.scalar(select(func.count()).select_from(Event)) == expected
        assert s.scalar(select(func.count(func.distinct(Event.prev_hash)))) == expected


def test_threads_appending_at_once(runtime: Runtime) -> None:
    workers, each = 4, 25
    threads = [
        threading.Thread(
            target=lambda w=w: [
                runtime.audit.append(
                    NewEvent(type="test.append", actors=[f"t{w}"], payload={"i": i})
                )
                for i in range(each)
            ]
        )
        for w in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _assert_one_unbroken_chain(runtime, workers * each)


def test_processes_appending_at_once(runtime: Runtime) -> None:
    workers, each = 3, 30
    url = runtime.engine.url.render_as_string(hide_password=False)
    key_path = str(runtime.settings.device_key_path)
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, url, key_path, str(w), str(each)])
        for w in range(workers)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    _assert_one_unbroken_chain(runtime, workers * each)
