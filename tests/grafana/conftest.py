"""Fixtures for the dashboard tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.grafana.promserver import Prometheus, run_prometheus
from tests.support import require_binary


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real, empty Prometheus on loopback, shared by the tests of a module."""
    binary = require_binary("prometheus", "Debian package prometheus; `make system` installs it")
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    with run_prometheus(binary, workdir) as server:
        yield server
