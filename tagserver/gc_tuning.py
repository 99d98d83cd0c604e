"""Garbage-collector settings for a long-running server process.

CPython frees most objects by reference counting; its cyclic collector runs every ``threshold0``
net allocations of container objects and, every so often, walks the whole heap (generation 2).
Measured with the benchmark harness's load (bench/README.md, "Garbage collection"): with the
defaults (700, 10, 10) the collector took about 6 % of the process's time and paused the event loop
for up to 83 ms (a generation-2 walk over the start-up heap: the Public Suffix List, phone metadata,
the compiled container). Two standard remedies (Python docs, ``gc.freeze``):

Only the server process (``tagserver serve``'s application factory) calls them: a test process that
builds many applications keeps Python's defaults.

* :func:`settle_heap` after start-up: one full collection, then every surviving object moves to the
  permanent generation, which the collector never walks again;
* :func:`configure_gc`: a larger first generation (5,000), so that the short-lived cycles of a
  request (asyncio futures, exceptions) die in fewer, cheaper collections.
"""

from __future__ import annotations

import gc

#: ``gc.set_threshold`` values of :func:`configure_gc` (generation 0, 1, 2).
THRESHOLDS = (5_000, 10, 10)


def configure_gc() -> None:
    """Set the collector's thresholds to :data:`THRESHOLDS` (process-wide)."""
    gc.set_threshold(*THRESHOLDS)


def gc_frozen() -> bool:
    """True when :func:`settle_heap` (or anything else) has frozen objects in this process."""
    return gc.get_freeze_count() > 0


def settle_heap() -> None:
    """Collect everything collectable, then freeze what survives (``gc.freeze``): call once the
    process has loaded what it keeps for its lifetime. Calling it again (after a container reload)
    first unfreezes, so that the objects of the replaced container can still be collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
