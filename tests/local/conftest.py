"""Fixtures that start the real local stack (Prometheus, two services, the mesh, a bare Git repo)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rollouts.local.stack import LocalStack, StackConfig
from tests.local.services import CANARY, GA
from tests.support import require_binary


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """One stack for the session: starting Prometheus costs ~5 s of target discovery."""
    require_binary("prometheus", "apt-get install prometheus")
    require_binary("git")
    with LocalStack(StackConfig(ga=GA, canary=CANARY, canary_weight=0, poll_interval=0.25)) as running:
        yield running
