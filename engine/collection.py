"""Python's cycle collector, paused around bursts of allocation that leave no cycles worth collecting.

The collector runs a pass every few hundred new container objects, and each full pass walks every object alive.
Importing scikit-learn, pandas and the service's modules creates about a million objects, and a million-deal
refresh holds million-row object arrays while it builds hundreds of thousands of small tuples: passes over them
cost about 0.4 s of start-up and 0.3 s of refresh while freeing nothing that reference counting does not free at
once (measured with `bench/refresh_scale.py`, which also shows peak memory unchanged). Pausing is confined to a
`with` block, and the collector is back on after it, so a long-running service collects as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """The cycle collector off inside the block (if it was on), on again after it, however the block ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def settle_long_lived_objects() -> None:
    """Collect once, then exclude every object alive now from later passes (`gc.freeze`).

    For a service, after start-up: the modules, settings and the first refresh's caches live as long as the process,
    and a full pass over the million objects the imports made stalled every request in flight for 130 to 170 ms,
    a few times a minute under load (`bench/deal_risk_ramp.py`, p99). After this, passes walk only what was made
    since. Garbage is collected first, so nothing that should be freed is kept forever.
    """
    gc.collect()
    gc.freeze()
