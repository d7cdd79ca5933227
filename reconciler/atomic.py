"""``write_atomic``: a file is either its old content or its whole new content.

Plan files, reports, state exports, list files and the sandbox's state are
written beside their final name and renamed into place, so an interrupted
write never leaves a half-written file under that name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    payload = data.encode(encoding) if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
