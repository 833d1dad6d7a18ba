"""How every long-running service runs its garbage collector.

(uvloop was tried as the services' event loop and dropped: no measured gain in the
benchmarks.)
"""

from __future__ import annotations

import gc

# Young collections every 10,000 allocations, not 700. The services allocate objects by the
# hundred thousand (stored batches, a firm's names, a first sync's pairs, a burst of events),
# nearly all freed by reference counting, yet each allocation counts toward the cyclic
# collector's next run and the older collections walk every live object: at the default
# threshold the collector took 1.6 of the 4.7 CPU-s of a 100,000-account match step
# (scripted QuickBooks), 0.36 at 10,000. What it collects is unchanged, only how often.
GC_THRESHOLD = (10_000, 10, 10)


def tune_garbage_collector() -> None:
    """Once start-up is done: what it loaded (modules, settings) lives on, never walked again."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
