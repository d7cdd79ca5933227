"""Shared pytest configuration: the ``slow`` marker (deselect with ``-m "not slow"``)."""


def pytest_configure(config) -> None:  # noqa: ANN001 - pytest's hook signature
    config.addinivalue_line("markers", "slow: a long test (seconds, not milliseconds)")


# -- loopback: one HTTP server per test module for the emulator tests (see loopback.py) --

from collections.abc import Iterator  # noqa: E402 - appended section

import pytest  # noqa: E402 - appended section
from loopback import Loopback  # noqa: E402 - appended section


@pytest.fixture(scope="module")
def loopback() -> Iterator[Loopback]:
    """A module's loopback server: ``loopback.plug(emulator)`` serves ``emulator`` from
    then on over real HTTP and returns the base URL (``loopback.url``)."""
    with Loopback().serving() as served:
        yield served
