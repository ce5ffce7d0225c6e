"""The hostile inputs of issue 12, as text: built here so that every test uses the same ones."""

from __future__ import annotations

from tests.fixtures.gitrepo import Remote, git

SPEC_HEAD = """apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {name: podinfo, namespace: test}
"""

GOOD_SPEC = """apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {name: podinfo, namespace: test}
spec:
  git: {url: ., branch: master}
  route: {kind: VirtualService, path: workloads/podinfo/virtual-service.yaml, stable: ga, canary: canary}
  canary: {path: workloads/podinfo/canary-deployment.yaml}
  steps: [10, 60, 100]
  analysis: {prometheus: {url: "http://127.0.0.1:9"}}  # loopback, nothing listens: no lookups elsewhere
"""


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``levels`` levels of ``width``-element aliases: under 1 KiB of text, width**levels scalars
    once expanded (9**9 = 387 million for the defaults)."""
    lines = ["  a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return SPEC_HEAD + "x-bomb:\n" + "\n".join(lines) + f"\nspec:\n  steps: *a{levels - 1}\n"


def deep(depth: int = 3000) -> str:
    """A mapping whose value is ``depth`` nested flow sequences."""
    return "spec: " + "[" * depth + "]" * depth + "\n"


def route_with_duplicate(key: str) -> str:
    """The guide's VirtualService with ``key`` written twice in the GA destination."""
    second = {"weight": "      weight: 10\n", "subset": "        subset: canary\n"}[key]
    first = {"weight": "      weight: 90   # GA\n", "subset": "        subset: ga\n"}[key]
    from tests.fixtures.gitrepo import VIRTUAL_SERVICE

    assert first in VIRTUAL_SERVICE
    return VIRTUAL_SERVICE.replace(first, first + second, 1)


def refs(bare: Remote) -> str:
    """Every ref of the bare remote with its sha: equal before and after means nothing was pushed."""
    return git(bare.bare, "for-each-ref", "--format=%(refname) %(objectname)")
