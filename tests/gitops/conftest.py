"""Real Git repositories on disk: a bare remote laid out like the guide's repo, and a human's clone."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from rollouts.spec import Rollout, parse_spec
from tests.support import require_binary

VIRTUAL_SERVICE = """# podinfo: GA and canary split (the guide's layout)
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: podinfo
  namespace: test
spec:
  hosts:
  - podinfo
  gateways:
  - mesh
  http:
  - route:
    - destination:
        host: podinfo
        subset: ga
      weight: 90   # GA
    - destination:
        host: podinfo
        subset: canary
      weight: 10

"""

DESTINATION_RULE = """apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: podinfo
  namespace: test
spec:
  host: podinfo
  subsets:
  - name: ga
    labels:
      version: ga
  - name: canary
    labels:
      version: canary
"""


def deployment(name: str, tag: str) -> str:
    """A Deployment like the guide's, with Flux image-policy markers and an init container."""
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: test
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: busybox:1.36
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:{tag} # {{"$imagepolicy": "test:podinfo-{name}"}}
"""


GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Human",
    "GIT_AUTHOR_EMAIL": "human@example.com",
    "GIT_COMMITTER_NAME": "Human",
    "GIT_COMMITTER_EMAIL": "human@example.com",
}


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

    def commit_file(self, rel: str, text: str, message: str) -> str:
        """A human's commit pushed to the remote."""
        git(self.human, "pull", "--quiet", "--ff-only", "origin", self.branch)
        (self.human / rel).write_text(text)
        git(self.human, "commit", "--quiet", "-am", message)
        git(self.human, "push", "--quiet", "origin", f"HEAD:{self.branch}")
        return git(self.human, "rev-parse", "HEAD").strip()

    def message(self, rev: str) -> str:
        return git(self.bare, "log", "-1", "--format=%B", rev)


@pytest.fixture(autouse=True)
def _git_isolated(monkeypatch):
    """Neither the user's nor the system's Git config take part."""
    require_binary("git")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    """Bare remote (fast-forward only, reflog on) seeded with the guide's layout, a tag and a note."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=master", str(bare))
    git(bare, "config", "receive.denyNonFastForwards", "true")
    git(bare, "config", "core.logAllRefUpdates", "always")
    human = tmp_path / "human"
    git(tmp_path, "clone", "--quiet", str(bare), str(human))
    files = {
        "workloads/podinfo/virtual-service.yaml": VIRTUAL_SERVICE,
        "workloads/podinfo/destination-rule.yaml": DESTINATION_RULE,
        "workloads/podinfo/ga-deployment.yaml": deployment("podinfo-ga", "0.1.0"),
        "workloads/podinfo/canary-deployment.yaml": deployment("podinfo-canary", "0.2.0"),
    }
    for rel, text in files.items():
        (human / rel).parent.mkdir(parents=True, exist_ok=True)
        (human / rel).write_text(text)
    git(human, "checkout", "--quiet", "-b", "master")
    git(human, "add", ".")
    git(human, "commit", "--quiet", "-m", "podinfo: GA 0.1.0, canary 0.2.0 at 10%")
    git(human, "tag", "v0.1.0")
    git(human, "notes", "add", "-m", "flux: applied")
    git(human, "push", "--quiet", "origin", "master", "--tags", "refs/notes/commits")
    return Remote(bare=bare, human=human)


def make_spec(url: str, **route: str) -> Rollout:
    """The issue's Rollout spec pointing at ``url``."""
    return parse_spec(
        {
            "apiVersion": "rollouts.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "git": {"url": url, "branch": "master"},
                "route": {
                    "kind": "VirtualService",
                    "path": "workloads/podinfo/virtual-service.yaml",
                    "stable": "ga",
                    "canary": "canary",
                    **route,
                },
                "canary": {"path": "workloads/podinfo/canary-deployment.yaml"},
                "steps": [10, 60, 100],
            },
        }
    )


@pytest.fixture
def spec(remote: Remote) -> Rollout:
    return make_spec(str(remote.bare))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def vs_with(stable: int, canary: int) -> str:
    """The VirtualService with other weights (as a human would edit it)."""
    return VIRTUAL_SERVICE.replace("weight: 90   # GA", f"weight: {stable}   # GA").replace(
        "      weight: 10\n", f"      weight: {canary}\n"
    )
