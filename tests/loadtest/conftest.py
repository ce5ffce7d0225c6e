"""Fixtures: a real HTTP target on loopback, and the ``loadtest`` command as a subprocess."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.loadtest.target import Target
from tests.support import free_port


@pytest.fixture
def target() -> Iterator[Target]:
    """A keep-alive HTTP target on 127.0.0.1 that counts the requests it answered."""
    server = Target(free_port()).start()
    yield server
    server.stop()
