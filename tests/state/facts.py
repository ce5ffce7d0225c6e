"""Git facts without Git, for the pure derivation and decision tests: a spec, our records, facts."""

from __future__ import annotations

from typing import Any

from rollouts.routes import Weights
from rollouts.spec import Rollout, parse_spec
from rollouts.state import CommitVerdict, GitFacts, Record

V1 = {"podinfod": "ghcr.io/stefanprodan/podinfo:0.2.0"}
V2 = {"podinfod": "ghcr.io/stefanprodan/podinfo:0.2.1"}
GA = {"podinfod": "ghcr.io/stefanprodan/podinfo:0.1.0"}


def spec(**extra: Any) -> Rollout:
    return parse_spec(
        {
            "apiVersion": "rollouts.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "git": {"url": "https://127.0.0.1/cluster.git", "branch": "main"},
                "route": {"kind": "VirtualService", "path": "vs.yaml", "stable": "ga", "canary": "canary"},
                "canary": {"path": "canary.yaml"},
                "steps": [10, 60, 100],
                **extra,
            },
        },
        source="test",
    )


PROMOTE_GA = {"finalize": {"action": "promote-ga", "gaPath": "ga.yaml"}}


def rec(verdict: str, at: int, step: str | None = None, revision: str | None = "0.2.0", **kw: Any) -> Record:
    return Record(
        sha=f"{verdict}-{at}",
        verdict=CommitVerdict(verdict),
        step=step,
        revision=revision,
        subject="s",
        timestamp=at,
        author="a <a@x>",
        **kw,
    )


def facts(canary: int, *records: Record, images=V1, then=None, images_then=None, **kw: Any) -> GitFacts:
    """Facts at a head; ``then`` (weights at our last weight commit) defaults to the current ones."""
    has_weight_commit = any(
        r.verdict in ("promote", "rollback", "abort", "manual", "finalize") for r in records
    )
    return GitFacts(
        rollout="test/podinfo",
        branch="main",
        head="head",
        weights=Weights.for_canary(canary),
        images=images,
        revision=images["podinfod"].rsplit(":", 1)[1],
        records=tuple(sorted(records, key=lambda r: -r.timestamp)),
        weights_then=(then or Weights.for_canary(canary)) if has_weight_commit else None,
        images_then=(images_then or V1) if has_weight_commit else None,
        **kw,
    )
