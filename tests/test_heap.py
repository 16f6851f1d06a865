"""``kiosk.heap.collections_paused``: the choice-to-unlock path's pause of garbage collection
(issue 15) never leaves collection off behind it, however pauses nest or fail."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from kiosk.heap import collections_paused


@pytest.fixture(autouse=True)
def collection_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_a_pause_turns_collection_off_and_on_again_even_when_its_block_fails() -> None:
    with pytest.raises(RuntimeError), collections_paused():
        assert not gc.isenabled()
        raise RuntimeError("refused")
    assert gc.isenabled()


def test_overlapping_pauses_resume_only_when_the_last_one_ends() -> None:
    """Two threads (or coroutines) pausing at once: the first to end must not turn
    collection back on under the other."""
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with collections_paused():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=other)
    with collections_paused():
        worker.start()
        inside.wait(5)
    assert not gc.isenabled()  # the other pause still holds
    release.set()
    worker.join(5)
    assert gc.isenabled()


def test_a_pause_leaves_collection_off_if_it_was_off_before() -> None:
    gc.disable()
    with collections_paused():
        pass
    assert not gc.isenabled()
