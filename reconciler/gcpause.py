"""``paused_gc()``: build many long-lived objects without the cyclic collector.

Loading a list, reading state or diffing a million numbers creates millions of
objects that hold no reference cycles and cannot be garbage yet; the cyclic
collector would rescan them again and again (a third of the time on 3.11). The
pause is scoped: it never outlives the block.

``frozen_heap()``: a long run (an apply) over objects that all outlive it (the plan,
the desired and live state) takes them out of the collector's sight for the run and
gives them back after: a full collection in the middle of an apply otherwise
traverses every one of them (0.3 s at 20 000 numbers on five targets, before the
first request). Scoped too: the heap is never left frozen, and a heap someone else
froze is left as it is. ``keep_alive()`` adds what a stage inside it just built.

``rare_full_collections()``: a refresh's entries pile up for minutes of requests
whose own garbage dies young: full collections ten times rarer, young ones as usual.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator


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


@contextlib.contextmanager
def built_to_last() -> Iterator[None]:
    """``paused_gc()`` for objects that outlive the block, frozen (``keep_alive``) before
    the collector is back on: its first young collection would otherwise traverse
    every one of them, and the one promoting them again."""
    with paused_gc():
        yield
        keep_alive()


@contextlib.contextmanager
def rare_full_collections(factor: int = 10) -> Iterator[None]:
    """Full collections ``factor`` times rarer inside the block (as they were after the
    last of the blocks running, which may overlap: concurrent refreshes). Young
    collections still free what each request leaves behind (cycles of responses and
    their bodies, which die young: pausing the collector for a refresh of a million
    numbers held 90 MB more); full ones traverse every object not frozen, and a
    refresh's entries pile up without ever being garbage (0.5 s of that refresh)."""
    global _rare
    if not _rare:
        _saved[:] = gc.get_threshold()
        gc.set_threshold(_saved[0], _saved[1], _saved[2] * factor)
    _rare += 1
    try:
        yield
    finally:
        _rare -= 1
        if not _rare:
            gc.set_threshold(*_saved)


_rare = 0  # rare_full_collections blocks running
_saved: list[int] = []  # the thresholds before the first of them


_held = 0  # frozen_heap blocks running (in this process's one thread that runs them)


@contextlib.contextmanager
def frozen_heap() -> Iterator[Callable[[], None]]:
    """Every object alive on entry is left alone by the cyclic collector inside the
    block (``gc.freeze``), and collected as usual after the outermost block
    (``gc.unfreeze``). The block gets a function that freezes what is alive by then
    too (a stage's result that outlives the block); it does nothing where the heap
    was not ours to freeze."""
    global _held
    # the embedding program's: not ours to undo (counted only outside our own blocks:
    # the count walks the whole frozen heap, 9 ms after a saved plan's recompute)
    if not _held and gc.get_freeze_count():
        yield keep_alive  # which does nothing here
        return
    gc.freeze()
    _held += 1
    try:
        yield keep_alive
    finally:
        _held -= 1
        if not _held:
            gc.unfreeze()


def keep_alive() -> None:
    """Inside a ``frozen_heap`` block: freeze what is alive now too (what a stage just
    built and the rest of the block keeps, e.g. a target's live entries, whichever
    function built them); elsewhere (or in a heap someone else froze) nothing. Without
    it, a refresh's full collections traverse every live entry read so far, and a
    sandbox's emulators' state: 1.4 s of a million-number plan."""
    if _held:
        gc.freeze()
