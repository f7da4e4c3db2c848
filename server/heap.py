"""What a process made to start is kept out of the garbage collector's passes.

Python's cyclic garbage collector, now and then, looks at every object that has survived earlier
passes (a full, "generation 2", collection), with the GIL held throughout. A server process holds
millions of such objects it made once and keeps to its end (torch, mediapipe, the models, the
routes), so a full pass took 120 ms (measured in the server's own process, on this 2-core
machine): an event loop that runs no callback and threads that get no GIL for as long, and a live
frame due meanwhile 120 ms late. Allocation bursts (400 WebSocket handshakes, 50 offers) are what
start such a pass. ``freeze`` moves everything alive into the collector's permanent generation,
which no pass looks at; what is made afterwards is collected as before, in passes as long as it is
large. Call it once a process has started (models loaded, its first session built), before it
serves.
"""

from __future__ import annotations

import gc


def freeze() -> int:
    """Collect what is garbage now, then keep all that is alive out of later passes; how many
    objects that is."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
