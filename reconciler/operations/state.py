"""The ``blocklist state`` commands: list, show, rm, mv, export, import, unlock.

State is the record of what this tool manages: every command that changes it
takes the apply lock first (a ``state import`` or ``state rm`` during an apply
would lose what the apply records), and none of them calls a provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..desired import load_desired
from ..domain import ManagedEntry
from ..errors import BlocklistError, StateError
from ..numbers import InvalidNumber, normalise_live
from ..state import (
    LockInfo,
    StateBackend,
    current_lock_info,
    export_to_file,
    import_from_file,
)
from .common import open_run_state

#: (the question, what to say when nobody can be asked) -> the answer
Confirm = Callable[[str, str], bool]


def open_existing_state(directory: Path, *, write: bool = False) -> StateBackend:
    desired = load_desired(directory, str(directory))
    backend = open_run_state(desired, directory, create=False, write=write)
    if backend is None:
        raise StateError("no state yet (run `blocklist apply` first)")
    return backend


def _lock_timeout(directory: Path) -> float:
    return load_desired(directory, str(directory)).config.state.lock_timeout


@dataclass
class StateListing:
    lineage: str
    serial: int
    targets: dict[str, dict[str, ManagedEntry]]


def list_state(directory: Path, targets: Iterable[str] = ()) -> StateListing:
    """Managed numbers per target (``targets``: names or bare instances; all if none)."""
    wanted = list(targets)
    with open_existing_state(directory) as backend:
        names = [
            t for t in backend.targets() if not wanted or t in wanted or t.split("/")[0] in wanted
        ]
        return StateListing(
            backend.lineage(),
            backend.serial(),
            {name: dict(sorted(backend.read_target(name).items())) for name in names},
        )


def e164_of(number: str) -> str:
    try:
        return normalise_live(number)
    except InvalidNumber:
        return number


def find_number(directory: Path, number: str) -> tuple[str, list[tuple[str, ManagedEntry]]]:
    """(E.164 form, every (target, entry) that manages it)."""
    e164 = e164_of(number)
    with open_existing_state(directory) as backend:
        return e164, backend.find_number(e164)


def forget_number(directory: Path, number: str, target: str) -> str:
    """Forget ``number`` for ``target`` without any API call (under the lock)."""
    e164 = e164_of(number)
    with open_existing_state(directory, write=True) as backend:
        backend.acquire_lock(current_lock_info("state rm"), timeout=_lock_timeout(directory))
        if not backend.forget(target, e164):
            raise StateError(f"{e164} is not in state for {target}")
    return e164


def move_target(directory: Path, source: str, destination: str) -> int:
    """Give ``source``'s managed entries to ``destination`` (after renaming a group,
    say), under the lock; no provider is called."""
    with open_existing_state(directory, write=True) as backend:
        backend.acquire_lock(current_lock_info("state mv"), timeout=_lock_timeout(directory))
        known = backend.targets()
        if source not in known:
            raise StateError(
                f"state has no target {source!r} (it has: {', '.join(known) or 'none'})"
            )
        if destination in known:
            raise StateError(
                f"state already has a target {destination!r}: `state rm` its entries first"
            )
        if source.split("/")[0] != destination.split("/")[0]:
            raise BlocklistError(
                f"{source} and {destination} belong to different provider instances: a "
                "number managed on one is not on the other"
            )
        return backend.move_target(source, destination)


def export_state(directory: Path, file: Path) -> tuple[str, int]:
    with open_existing_state(directory) as backend:
        export_to_file(backend, file)
        return backend.lineage(), backend.serial()


def import_state(directory: Path, file: Path, confirm: Confirm) -> tuple[str, int] | None:
    """Replace the state with an export (under the lock); None when not confirmed."""
    desired = load_desired(directory, str(directory))
    backend = open_run_state(desired, directory, create=True)
    assert backend is not None
    with backend:
        backend.acquire_lock(
            current_lock_info("state import"), timeout=desired.config.state.lock_timeout
        )
        question = "The current state will be replaced. Continue?"
        if backend.targets() and not confirm(
            question, "state is not empty: pass --yes to replace it"
        ):
            return None
        import_from_file(backend, file)
        return backend.lineage(), backend.serial()


def unlock(directory: Path, confirm: Confirm) -> tuple[LockInfo | None, bool]:
    """(who held the lock, whether it was broken)."""
    with open_existing_state(directory, write=True) as backend:
        holder = backend.lock_holder()
        if holder is None:
            return None, False
        refusal = f"state is locked by {holder.describe()}: pass --yes to break the lock"
        if not confirm(f"Break the lock held by {holder.describe()}?", refusal):
            return holder, False
        return backend.break_lock() or holder, True
