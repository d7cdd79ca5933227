"""Shared pytest configuration: the ``slow`` marker, the loopback server of the emulator
tests, ``project``: a copy of the shipped blocklists in a fresh directory, and
``freeze_during_refresh``."""

import gc
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback import Loopback
from pgserver import PgServer, PgServerUnavailable

REPO = Path(__file__).resolve().parent.parent
SKIP_STATE = shutil.ignore_patterns(".blocklist")  # a copy of the lists, never their state
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
    # never the clone's own .blocklist/: a new user's `blocklist plan` made one there
    shutil.copytree(REPO / "blocklists", tmp_path / "blocklists", ignore=SKIP_STATE)
    monkeypatch.chdir(tmp_path)
    for var in CLEARED_ENV:
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """A PostgreSQL server for the whole session (started here unless one is given)."""
    given_dsn = os.environ.get("BLOCKLIST_TEST_POSTGRES_DSN")
    if given_dsn:
        yield given_dsn
        return
    server = PgServer()
    try:
        server.start()
    except PgServerUnavailable as exc:
        if os.environ.get("BLOCKLIST_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here (BLOCKLIST_REQUIRE_POSTGRES): {exc}")
        pytest.skip(f"no PostgreSQL to test the postgres state backend against: {exc}")
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture
def freeze_during_refresh(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], list[int]]:
    """``watch(module)``: the ``gc.get_freeze_count()`` each time ``module``'s
    ``refresh_targets`` starts (a run that keeps the heap out of the collector's sight)."""

    def watch(module: Any) -> list[int]:
        counts: list[int] = []
        refresh = module.refresh_targets

        async def watched(*args: Any, **kwargs: Any) -> Any:
            counts.append(gc.get_freeze_count())
            return await refresh(*args, **kwargs)

        monkeypatch.setattr(module, "refresh_targets", watched)
        return counts

    return watch
