"""Hostile inputs against the real parts: a bare Git remote laid out like the guide's repo.

Every test here feeds input an attacker (or an accident) could commit or type, and checks that it
ends in a clear error naming the file, field or line, with a non-zero exit for commands, in bounded
time and memory, and that nothing was committed or pushed (the remote's refs are unchanged).
"""

from __future__ import annotations

import pytest

from tests.fixtures.gitrepo import Remote, git


@pytest.fixture
def pushed(remote: Remote):
    """Commit and push files as the human; returns a function ``(files, message) -> None``."""

    def push(files: dict[str, str | bytes], message: str) -> None:
        git(remote.human, "pull", "--quiet", "--ff-only", "origin", remote.branch)
        for rel, content in files.items():
            path = remote.human / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        git(remote.human, "add", "-A")
        git(remote.human, "commit", "--quiet", "-m", message)
        git(remote.human, "push", "--quiet", "origin", f"HEAD:{remote.branch}")

    return push


@pytest.fixture(autouse=True)
def _git_isolated(git_isolated: None) -> None:
    """Every hostile-input test runs without the user's Git config."""
