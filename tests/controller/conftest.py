"""The controller tests: no user or system Git config in any of them (the shared ``git_isolated``;
``remote`` and ``kube_api`` come from ``tests.fixtures``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _git_isolated(git_isolated: None) -> None:
    """Every controller test runs without the user's Git config."""
