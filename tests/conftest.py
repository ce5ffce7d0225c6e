"""Suite-wide pytest configuration."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# The shared fixtures, for every folder (no conftest imports another's).
pytest_plugins = ["tests.fixtures.git", "tests.fixtures.kube"]

# CI machines are shared and noisy: no per-example deadlines, a fixed, reproducible profile.
settings.register_profile("ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
