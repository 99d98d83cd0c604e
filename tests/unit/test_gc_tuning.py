"""The server process's collector settings."""

from __future__ import annotations

import gc
import weakref

from tagserver.gc_tuning import THRESHOLDS, configure_gc, gc_frozen, settle_heap


def test_settle_heap_freezes_and_a_second_call_lets_old_cycles_go() -> None:
    saved = gc.get_threshold()
    try:
        configure_gc()
        assert gc.get_threshold() == THRESHOLDS
        settle_heap()
        assert gc_frozen()

        class Node:
            me: object

        cycle = Node()
        cycle.me = cycle  # a cycle that only the collector can free
        alive = weakref.ref(cycle)
        settle_heap()  # frozen now: it survives every collection...
        del cycle
        gc.collect()
        assert alive() is not None
        settle_heap()  # ...until the next settle unfreezes and collects it
        assert alive() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
    assert not gc_frozen()
