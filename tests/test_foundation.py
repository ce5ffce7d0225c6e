"""The project installs as one distribution with three console scripts."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys

import pytest

from tests.support import in_ci, require_binary


@pytest.mark.parametrize("script", ["analyzer", "loadtest", "rollouts"])
def test_console_script_is_installed_and_runs(script: str) -> None:
    entry_points = {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert script in entry_points
    path = shutil.which(script) or str(__import__("pathlib").Path(sys.executable).parent / script)
    result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert f"usage: {script}" in result.stdout


def test_rollouts_does_not_import_locust() -> None:
    """Locust patches the interpreter with gevent; the controller must never import it."""
    code = "import sys, rollouts.cli, analyzer.cli; print('locust' in sys.modules, 'gevent' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_require_binary_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert in_ci()
    with pytest.raises(pytest.fail.Exception):
        require_binary("definitely-not-a-binary-gitops-rollouts")
