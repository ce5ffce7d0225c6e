"""The pipeline tests' world: two environments in two bare repositories, a Pipeline file beside
their Rollout specs, and the controller's commits of one rollout (the fixtures are
the package's, through ``conftest.py``)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from rollouts.gitops import Workspace
from rollouts.pipeline.runner import PipelineRunner, load_pipeline
from rollouts.routes import Weights
from rollouts.state import CommitVerdict, WeightChange
from tests.fixtures.gitrepo import GUIDE_CANARY, GUIDE_ROUTE, Remote, bare_remote, git, guide_rollout
from tests.support import require_binary

ROUTE = """apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: podinfo, namespace: test}
spec:
  hosts: [podinfo]
  http:
  - route:
    - destination: {host: podinfo, subset: ga}
      weight: 100
    - destination: {host: podinfo, subset: canary}
      weight: 0
"""
RULE = """apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: podinfo, namespace: test}
spec:
  host: podinfo
  subsets:
  - {name: ga, labels: {version: ga}}
  - {name: canary, labels: {version: canary}}
"""


def deployment(tag: str) -> str:
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo-canary, namespace: test}\n"
        "spec:\n  template:\n    spec:\n      containers:\n      - name: podinfod\n"
        f'        image: ghcr.io/stefanprodan/podinfo:{tag} # {{"$imagepolicy": "test:podinfo"}}\n'
    )


@pytest.fixture(autouse=True)
def _git_isolated(monkeypatch):
    require_binary("git")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def environment(root: Path, canary: str) -> Remote:
    root.mkdir()
    remote = bare_remote(root)
    remote.seed(
        {
            GUIDE_ROUTE["path"]: ROUTE,
            "workloads/podinfo/destination-rule.yaml": RULE,
            GUIDE_CANARY: deployment(canary),
        },
        f"podinfo: canary {canary}",
    )
    git(remote.human, "push", "--quiet", "origin", "master")
    return remote


@pytest.fixture
def world(tmp_path: Path):
    staging = environment(tmp_path / "staging", "0.2.0")
    production = environment(tmp_path / "production", "0.1.0")
    specs = tmp_path / "specs"
    specs.mkdir()
    for name, remote, rollout_name in (
        ("staging", staging, "podinfo"),
        ("production", production, "podinfo-prod"),
    ):
        doc = guide_rollout(str(remote.bare))
        doc["metadata"]["name"] = rollout_name
        (specs / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    pipeline = {
        "apiVersion": "rollouts.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "environments": [
                {"name": "staging", "rollout": "staging.yaml"},
                {"name": "production", "rollout": "production.yaml", "promotion": {"soak": "10m"}},
            ]
        },
    }
    (specs / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    loaded = load_pipeline(specs / "pipeline.yaml")
    cache = tmp_path / "cache"
    workspaces = {s.name: Workspace.for_spec(s.rollout, cache_dir=cache) for s in loaded.stages}
    return loaded, workspaces, staging, production, specs


def walk(ws: Workspace, rollout, *, finish: str = "finalize") -> None:
    """The controller's commits of one good (finish=finalize) or bad (finish=rollback) rollout."""
    ws.commit_weights(
        rollout, WeightChange(Weights.for_canary(10), CommitVerdict.PROMOTE, ("step 1",), step="1/3")
    )
    if finish == "rollback":
        ws.commit_weights(
            rollout,
            WeightChange(
                Weights.for_canary(0), CommitVerdict.ROLLBACK, ("evidence of harm 216 >= 100",), step="1/3"
            ),
        )
        return
    ws.commit_weights(
        rollout, WeightChange(Weights.for_canary(60), CommitVerdict.PROMOTE, ("ok",), step="2/3")
    )
    ws.commit_weights(
        rollout, WeightChange(Weights.for_canary(100), CommitVerdict.FINALIZE, ("ok",), step="3/3")
    )


def runner_at(loaded, workspaces, now: datetime) -> PipelineRunner:
    return PipelineRunner(loaded, workspaces, clock=lambda: now)
