"""Helpers shared by the test suite.

Tests that need a real part (Prometheus, promtool, Git, a server) call :func:`require_binary`. On a
developer machine a missing part skips the test with a hint; under CI (``CI=true``) it fails, so a
missing install step can never turn a red build green.
"""

from __future__ import annotations

import os
import shutil

import pytest

from rollouts.local.process import free_port

__all__ = ["free_port", "in_ci", "require_binary"]


def in_ci() -> bool:
    """True when running under CI, where missing parts are failures, not skips."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str, hint: str = "") -> str:
    """Path of executable ``name``; skip (locally) or fail (CI) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found on PATH" + (f" ({hint})" if hint else "")
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path
