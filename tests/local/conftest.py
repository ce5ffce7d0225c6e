"""Fixtures that start the real local stack (Prometheus, two services, the mesh, a bare Git repo)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rollouts.local.stack import LocalStack, ServiceOptions, StackConfig
from tests.support import require_binary

# Delays that put GA and canary in known, disjoint buckets of both bucket layouts:
# GA 11-19 ms -> Istio le=25 ms, podinfo le=0.025 s; canary 30-44 ms -> le=50 ms, le=0.05 s.
GA = ServiceOptions(
    version="6.5.0",
    args=("--random-delay", "--random-delay-unit=ms", "--random-delay-min=11", "--random-delay-max=20"),
)
CANARY = ServiceOptions(
    version="6.5.1",
    args=("--random-delay", "--random-delay-unit=ms", "--random-delay-min=30", "--random-delay-max=45"),
)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """One stack for the session: starting Prometheus costs ~5 s of target discovery."""
    require_binary("prometheus", "apt-get install prometheus")
    require_binary("git")
    with LocalStack(StackConfig(ga=GA, canary=CANARY, canary_weight=0, poll_interval=0.25)) as running:
        yield running
