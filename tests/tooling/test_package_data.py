"""Every non-Python file inside the packages (templates, schemas, py.typed) is shipped: pyproject's
package-data patterns cover it, so an installed wheel renders the report like a checkout does."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("analyzer", "loadtest", "rollouts")


def _patterns() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data: dict[str, list[str]] = config["tool"]["setuptools"]["package-data"]
    return [pattern for patterns in data.values() for pattern in patterns]


def _data_files() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    ]


def uncovered(files: list[Path], patterns: list[str]) -> list[str]:
    """The files no pattern matches (setuptools matches package-data globs against file names)."""
    return sorted(
        str(f.relative_to(ROOT)) for f in files if not any(fnmatch.fnmatch(f.name, p) for p in patterns)
    )


def test_every_data_file_in_the_packages_is_package_data() -> None:
    files = _data_files()
    assert any(f.name == "report.html.j2" for f in files)  # the report's template is one of them
    assert uncovered(files, _patterns()) == []


def test_a_file_no_pattern_covers_is_found() -> None:
    template = ROOT / "rollouts" / "report" / "templates" / "report.html.j2"
    assert uncovered([template], ["*.json", "*.yaml"]) == ["rollouts/report/templates/report.html.j2"]
