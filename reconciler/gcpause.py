"""``paused_gc()``: build many long-lived objects without the cyclic collector.

Loading a list, reading state or diffing a million numbers creates millions of
objects that hold no reference cycles and cannot be garbage yet; the cyclic
collector would rescan them again and again (a third of the time on 3.11). The
pause is scoped: it never outlives the block, and nothing here freezes the heap
of the whole process (a library must not).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector is off inside the block (as it was after it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
