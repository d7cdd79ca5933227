"""``blocklist sandbox``: serve every provider emulator on loopback, or reseed them.

Served emulators keep their live state under ``.blocklist/sandbox/serve-<type>.json``
(separate from the in-process ``base_url: sandbox`` state, which is per provider
instance and reseeded with ``--reset`` too).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ..connections import dialect_for, per_type, sandbox_dir
from . import emulator_class, emulator_types
from .faults import FaultSpec
from .server import LoopbackServer


def faults_by_type(spec: str | None) -> dict[str, str | None]:
    """'5xx=0.1' for all, or 'TYPE:5xx=0.1;TYPE:drop=0.05' per type."""
    out = per_type(spec, emulator_types())
    for value in out.values():
        FaultSpec.parse(value)  # fail early on a bad spec
    return out


def dialects_by_type(spec: str | None) -> dict[str, str | None]:
    """'NAME' for every emulator that has it, or 'TYPE:NAME;TYPE:NAME' per type."""
    out = {name: dialect_for(name, spec) for name in emulator_types()}
    for name, dialect in out.items():
        if dialect is not None and dialect not in emulator_class(name).dialects:
            known = ", ".join(emulator_class(name).dialects)
            raise ValueError(f"unknown {name} dialect {dialect!r} (known: {known})")
    if spec and ":" not in spec and not any(out.values()):
        raise ValueError(f"no emulator has a dialect {spec.strip()!r} (see --help)")
    return out


def dialect_help() -> str:
    """Every emulator's dialects, one line each (for ``blocklist sandbox --help``)."""
    lines = []
    for name in emulator_types():
        for dialect, note in emulator_class(name).dialect_notes.items():
            lines.append(f"{name}:{dialect}: {note}")
    return "\n".join(lines)


def reset_sandbox(directory: Path) -> list[str]:
    """Delete every sandbox state file so that the next use reseeds it."""
    folder = sandbox_dir(directory)
    lines = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        path.unlink()
        lines.append(f"reset {path}")
    return lines or [f"nothing to reset under {folder}"]


def serve_sandbox(
    directory: Path,
    port: int,
    faults: str | None,
    echo: Callable[[str], None],
    dialect: str | None = None,
) -> None:
    """Serve all five emulators until Ctrl-C."""
    from ..errors import BlocklistError

    try:
        fault_specs = faults_by_type(faults)
    except ValueError as exc:
        raise BlocklistError(f"--faults: {exc}") from None
    try:
        dialects = dialects_by_type(dialect)
    except ValueError as exc:
        raise BlocklistError(f"--dialect: {exc}") from None
    folder = sandbox_dir(directory)
    servers = []
    try:
        for i, name in enumerate(emulator_types()):
            cls = emulator_class(name)
            emulator = cls(
                state_path=folder / f"serve-{name}.json",
                faults=fault_specs[name],
                dialect=dialects[name],
            )
            try:
                server = LoopbackServer(emulator, port + i if port else 0).start()
            except OSError as exc:
                raise BlocklistError(f"cannot listen on port {port + i}: {exc.strerror}") from None
            servers.append(server)
            creds = ", ".join(f"{k}={v}" for k, v in cls.credentials.items())
            note = f"   dialect: {emulator.dialect}" if emulator.dialect != "default" else ""
            echo(f"{name:9} {server.base_url}   credentials: {creds}{note}")
        echo(f"Debug endpoints: <base URL>/__sandbox/counters, /__sandbox/state; state in {folder}")
        echo("Serving on loopback; press Ctrl-C to stop.")
        threading.Event().wait()
    except KeyboardInterrupt:
        echo("Stopped.")
    finally:
        for server in servers:
            server.stop()
