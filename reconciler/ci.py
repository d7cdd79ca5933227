"""The facts of the environment a run happens in: who runs it, at which commit,
and GitHub Actions' annotations and step summary.

One place for what used to be sniffed in several: operations record the actor
and commit, views decide nothing about the environment, and the CLI asks here
whether to print annotations or append a job summary.
"""

from __future__ import annotations

import getpass
import os
import subprocess
from pathlib import Path
from typing import Protocol


def actor() -> str:
    """Who runs this: ``GITHUB_ACTOR`` in Actions, else the login name (``USER``,
    ``LOGNAME``, the password database), else ``uid N``."""
    name = os.environ.get("GITHUB_ACTOR")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no USER/LOGNAME and no entry in the password database
        return f"uid {os.getuid()}"


def git_commit(directory: Path) -> str | None:
    """The commit being applied: ``GITHUB_SHA``, or HEAD of the repository holding it."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


class _Located(Protocol):
    file: str
    line: int
    col: int
    message: str


def annotation(problem: _Located) -> str:
    """A ``::error file=…,line=…::`` workflow command for one problem."""
    message = str(problem.message).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::error file={problem.file},line={problem.line},col={problem.col}::{message}"


def append_step_summary(markdown: str) -> None:
    """Append to ``$GITHUB_STEP_SUMMARY`` under GitHub Actions (else nothing)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if in_github_actions() and path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
