"""Fixtures of the controller tests: the recorded Kubernetes API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.kubeapi import RunningApi, serve

# The Git fixtures of the GitOps tests: a bare remote laid out like the guide's, and no user config.
from tests.gitops.conftest import _git_isolated, remote  # noqa: F401


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[RunningApi]:
    """The recorded-response API server on loopback, with a kubeconfig pointing at it."""
    yield from serve(tmp_path)
