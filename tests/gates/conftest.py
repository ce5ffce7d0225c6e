"""Fixtures of the gate tests: the GitOps tests' bare remote laid out like the guide's, and no user config."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _git_isolated(git_isolated: None) -> None:
    """Every gate test runs without the user's Git config (``remote``, ``cache``: tests.fixtures.git)."""
