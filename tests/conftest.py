"""Shared pytest configuration: the ``slow`` marker, the loopback server of the emulator
tests, and ``project``: a copy of the shipped blocklists in a fresh directory."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import Loopback

REPO = Path(__file__).resolve().parent.parent
#: environment that would change what the CLI prints or talks to
CLEARED_ENV = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "NO_COLOR", "BLOCKLIST_SANDBOX_FAULTS")


def pytest_configure(config) -> None:  # noqa: ANN001 - pytest's hook signature
    config.addinivalue_line("markers", "slow: a long test (seconds, not milliseconds)")


@pytest.fixture(scope="module")
def loopback() -> Iterator[Loopback]:
    """A module's loopback server: ``loopback.plug(emulator)`` serves ``emulator`` from
    then on over real HTTP and returns the base URL (``loopback.url``)."""
    with Loopback().serving() as served:
        yield served


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped blocklists in a fresh directory (its own .blocklist/), as
    the working directory, with no CI or fault variables set."""
    shutil.copytree(REPO / "blocklists", tmp_path / "blocklists")
    monkeypatch.chdir(tmp_path)
    for var in CLEARED_ENV:
        monkeypatch.delenv(var, raising=False)
    return tmp_path
