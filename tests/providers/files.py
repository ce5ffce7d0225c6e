"""Secret files for the provider tests (a module, not the conftest: tests import it)."""

from __future__ import annotations

from pathlib import Path


def write(path: Path, text: str) -> str:
    """Write a secret file (mode 600) and return its path as a string."""
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)
