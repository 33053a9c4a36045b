"""``showup.server``: the garbage collector's tuning for service processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from showup.server import GC_GEN0_THRESHOLD, tune_gc


@pytest.fixture
def gc_state() -> Iterator[None]:
    """Put the collector back as it was (other tests run in this process)."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_tune_gc_freezes_the_startup_heap_and_raises_the_youngest_threshold(
    gc_state: None,
) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    startup = {"a": [1, 2]}  # alive at setup: frozen, no collection scans it again
    tune_gc()
    assert gc.get_threshold() == (GC_GEN0_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0
    scanned = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
    assert gc.is_tracked(startup) and id(startup) not in scanned
    # Garbage cycles are still collected: the generations still run.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect(0) >= 1
