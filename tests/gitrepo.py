"""Real Git repositories for tests and benchmarks: the git CLI as a human runs it, a bare remote
with a human's clone beside it, and the guide's Rollout spec pointing at such a remote.

One place for what the GitOps, report and controller tests (and the benchmarks) all build, so that
the remote's layout and the spec that reads it cannot drift apart. No pytest here: the benchmark
scripts import it too.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Human",
    "GIT_AUTHOR_EMAIL": "human@example.com",
    "GIT_COMMITTER_NAME": "Human",
    "GIT_COMMITTER_EMAIL": "human@example.com",
}

# Where the guide's layout keeps the route and the canary, and how its route names the subsets.
GUIDE_ROUTE = {
    "kind": "VirtualService",
    "path": "workloads/podinfo/virtual-service.yaml",
    "stable": "ga",
    "canary": "canary",
}
GUIDE_CANARY = "workloads/podinfo/canary-deployment.yaml"


def git(cwd: Path, *args: str) -> str:
    """Run the real git binary as a human would; returns stdout."""
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


@dataclass
class Remote:
    """A bare remote with a human's clone beside it."""

    bare: Path
    human: Path
    branch: str = "master"

    def head(self) -> str:
        return git(self.bare, "rev-parse", f"refs/heads/{self.branch}").strip()

    def count(self) -> int:
        return int(git(self.bare, "rev-list", "--count", self.branch))

    def show(self, rel: str, rev: str | None = None) -> str:
        return git(self.bare, "show", f"{rev or self.branch}:{rel}")

    def seed(self, files: Mapping[str, str], message: str) -> None:
        """The human's first commit on the empty remote's branch: ``files`` (path: text); not pushed,
        so the caller may tag or annotate it first."""
        for rel, text in files.items():
            (self.human / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.human / rel).write_text(text)
        git(self.human, "checkout", "--quiet", "-b", self.branch)
        git(self.human, "add", ".")
        git(self.human, "commit", "--quiet", "-m", message)

    def commit_file(self, rel: str, text: str, message: str) -> str:
        """A human's commit pushed to the remote."""
        git(self.human, "pull", "--quiet", "--ff-only", "origin", self.branch)
        (self.human / rel).write_text(text)
        git(self.human, "commit", "--quiet", "-am", message)
        git(self.human, "push", "--quiet", "origin", f"HEAD:{self.branch}")
        return git(self.human, "rev-parse", "HEAD").strip()

    def message(self, rev: str) -> str:
        return git(self.bare, "log", "-1", "--format=%B", rev)


def bare_remote(root: Path) -> Remote:
    """An empty bare remote ``root/remote.git`` (branch master) and the human's clone ``root/human``."""
    bare = root / "remote.git"
    git(root, "init", "--quiet", "--bare", "--initial-branch=master", str(bare))
    human = root / "human"
    git(root, "clone", "--quiet", str(bare), str(human))
    return Remote(bare=bare, human=human)


def guide_rollout(url: str, **sections: Any) -> dict[str, Any]:
    """The issue's Rollout document for the guide's layout at ``url`` (branch master, steps 10, 60,
    100); each of ``sections`` replaces (or adds) that ``spec`` section whole."""
    spec: dict[str, Any] = {
        "git": {"url": url, "branch": "master"},
        "route": dict(GUIDE_ROUTE),
        "canary": {"path": GUIDE_CANARY},
        "steps": [10, 60, 100],
    }
    spec.update(sections)
    return {
        "apiVersion": "rollouts.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": spec,
    }
