"""Real Git repositories on disk: a bare remote laid out like the guide's repo, and a human's clone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rollouts.spec import Rollout, parse_spec
from tests.gitrepo import GUIDE_ROUTE, Remote, bare_remote, git, guide_rollout
from tests.support import require_binary

__all__ = ["Remote", "git"]  # re-exported: tests import them from here

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


@pytest.fixture(autouse=True)
def _git_isolated(monkeypatch):
    """Neither the user's nor the system's Git config take part."""
    require_binary("git")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    """Bare remote (fast-forward only, reflog on) seeded with the guide's layout, a tag and a note."""
    remote = bare_remote(tmp_path)
    git(remote.bare, "config", "receive.denyNonFastForwards", "true")
    git(remote.bare, "config", "core.logAllRefUpdates", "always")
    files = {
        "workloads/podinfo/virtual-service.yaml": VIRTUAL_SERVICE,
        "workloads/podinfo/destination-rule.yaml": DESTINATION_RULE,
        "workloads/podinfo/ga-deployment.yaml": deployment("podinfo-ga", "0.1.0"),
        "workloads/podinfo/canary-deployment.yaml": deployment("podinfo-canary", "0.2.0"),
    }
    remote.seed(files, "podinfo: GA 0.1.0, canary 0.2.0 at 10%")
    git(remote.human, "tag", "v0.1.0")
    git(remote.human, "notes", "add", "-m", "flux: applied")
    git(remote.human, "push", "--quiet", "origin", "master", "--tags", "refs/notes/commits")
    return remote


def make_spec(url: str, **route: str) -> Rollout:
    """The issue's Rollout spec pointing at ``url``; ``route`` fields override the guide's route."""
    return parse_spec(guide_rollout(url, route={**GUIDE_ROUTE, **route}))


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
