"""The lock bus (``kiosk.cabinet.bus``): the boards hear one exchange at a time, and a turn
taken from another thread (the writer's unlock on an intent's commit, issue 15) never
overtakes work already queued (K2: a ``lock_all`` asked for first is done first)."""

from __future__ import annotations

import threading
import time

import pytest

from kiosk.cabinet.bus import LockBus


@pytest.fixture
def bus() -> LockBus:
    return LockBus(name="test-bus")


def test_an_idle_bus_runs_the_turn_on_the_callers_thread(bus: LockBus) -> None:
    ran: list[str] = []
    assert bus.try_now(lambda: ran.append(threading.current_thread().name)) is True
    assert ran == [threading.current_thread().name]
    bus.shutdown()


def test_a_turn_is_refused_while_a_job_runs_or_waits_and_the_queue_keeps_its_order(
        bus: LockBus) -> None:
    release = threading.Event()
    started = threading.Event()
    order: list[str] = []

    def lock_all() -> None:
        started.set()
        release.wait(5)
        order.append("lock_all")

    running = bus.submit(lock_all)
    started.wait(5)
    queued = bus.submit(order.append, "arming")
    assert bus.try_now(order.append, "unlock") is False  # one running, one waiting
    release.set()
    running.result(5), queued.result(5)
    assert bus.try_now(order.append, "unlock") is True
    assert order == ["lock_all", "arming", "unlock"]
    bus.shutdown()


def test_a_turns_error_is_the_callers_and_the_bus_stays_usable(bus: LockBus) -> None:
    def fault() -> None:
        raise OSError("adapter unplugged")

    with pytest.raises(OSError, match="unplugged"):
        bus.try_now(fault)
    assert bus.submit(lambda: "answered").result(5) == "answered"
    assert bus.try_now(lambda: None) is True
    bus.shutdown()


def test_after_shutdown_no_turn_and_no_job(bus: LockBus) -> None:
    bus.shutdown()
    called: list[int] = []
    assert bus.try_now(called.append, 1) is False and called == []
    with pytest.raises(RuntimeError, match="shut down"):
        bus.submit(called.append, 2)


def test_queued_jobs_and_turns_from_another_thread_never_interleave(bus: LockBus) -> None:
    """Each exchange writes its start and end; from the bus thread and a second thread at
    once, no exchange starts before the one before it has ended."""
    wire: list[tuple[str, int]] = []

    def exchange(who: str) -> None:
        wire.append((who, 1))
        time.sleep(0.0005)
        wire.append((who, 2))

    def turns() -> None:
        for _ in range(200):
            bus.try_now(exchange, "turn")

    other = threading.Thread(target=turns)
    other.start()
    jobs = [bus.submit(exchange, "job") for _ in range(200)]
    other.join(30)
    for job in jobs:
        job.result(30)
    assert len(wire) % 2 == 0 and len(wire) >= 400
    for start, end in zip(wire[::2], wire[1::2], strict=True):
        assert start[1] == 1 and end == (start[0], 2)
    bus.shutdown()
