"""Fixtures of the gate tests: the GitOps tests' bare remote laid out like the guide's, and no user config."""

from __future__ import annotations

from tests.gitops.conftest import _git_isolated, cache, remote  # noqa: F401
