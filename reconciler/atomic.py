"""``write_atomic`` and ``atomic_file``: a file is either its old content or its whole
new content.

Plan files, reports, state exports, list files and the sandbox's state are
written beside their final name and renamed into place, so an interrupted
write never leaves a half-written file under that name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def write_atomic(
    path: str | os.PathLike[str],
    data: str | bytes,
    *,
    encoding: str = "utf-8",
    mode: int | None = None,
    fsync: bool = True,
) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    ``mode`` sets the file's permissions (e.g. ``0o600`` for a plan that lists every
    number in full); ``fsync`` makes the content durable before the rename.
    Raises ``OSError`` as ``open`` would; the temporary file never stays behind.
    """
    payload = data.encode(encoding) if isinstance(data, str) else data
    with atomic_file(path, mode=mode, fsync=fsync) as fh:
        fh.write(payload)


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str], *, mode: int | None = None, fsync: bool = True
) -> Iterator[BinaryIO]:
    """A binary file to write in pieces (a document too large to hold whole) that
    replaces ``path`` only when the block ends without an error; as ``write_atomic``
    otherwise (same folder, ``mode``, ``fsync``, no temporary file left behind)."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
