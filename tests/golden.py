"""Golden files: a renderer's whole output, compared byte for byte with a file under
``tests/golden/``.

A difference fails the test with a unified diff. ``BLOCKLIST_UPDATE_GOLDEN=1``
rewrites the files instead (then review them with ``git diff tests/golden``): a
layout change is a reviewed change of these files, never a silent one.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_VARIABLE = "BLOCKLIST_UPDATE_GOLDEN"


def check_golden(name: str, text: str) -> None:
    """``text`` must equal ``tests/golden/NAME`` (rewritten when the variable is set)."""
    path = GOLDEN / name
    if os.environ.get(UPDATE_VARIABLE) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}: run with {UPDATE_VARIABLE}=1 to write it")
    expected = path.read_text(encoding="utf-8")
    if expected != text + "\n":
        diff = difflib.unified_diff(
            expected.splitlines(), text.splitlines(), f"golden/{name}", "rendered", lineterm=""
        )
        pytest.fail(
            f"{name} differs from its golden file ({UPDATE_VARIABLE}=1 rewrites it):\n"
            + "\n".join(diff),
            pytrace=False,
        )
