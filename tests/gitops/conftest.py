"""The GitOps tests: no user or system Git config in any of them (the shared ``git_isolated``;
``remote``, ``spec`` and ``cache`` come from ``tests.fixtures.git``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _git_isolated(git_isolated: None) -> None:
    """Every GitOps test runs without the user's Git config."""
