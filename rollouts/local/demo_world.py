"""What the demos share: the guide's files, the versions' behaviour, the "kubelet" and the story.

``rollouts demo`` (:mod:`rollouts.local.demo`) and its pipeline scenario
(:mod:`rollouts.local.pipeline_demo`) both lay a repository out like the guide's, play Kubernetes
with a :class:`Kubelet` that follows the manifests in Git, and tell what the controller did with a
:class:`Story`. Kept here, apart from both, so neither imports the other (the demo command only
starts the pipeline scenario). It must never start a stack or a controller itself.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from rollouts.controller.machine import TickResult
from rollouts.gitops import Workspace
from rollouts.local.stack import LocalStack, ServiceOptions
from rollouts.spec import Author
from rollouts.state import Action

ROUTE = "workloads/podinfo/virtual-service.yaml"
CANARY = "workloads/podinfo/canary-deployment.yaml"
GA = "workloads/podinfo/ga-deployment.yaml"
SPEC = "rollouts/podinfo.yaml"
IMAGE = "ghcr.io/stefanprodan/podinfo"
# Every version answers in 5-25 ms (podinfo's random delay); the regressions add to that.
BASE = ("--random-delay", "--random-delay-min=5", "--random-delay-max=25", "--random-delay-unit=ms")
BEHAVIOUR: dict[str, tuple[str, ...]] = {
    "0.1.0": BASE,
    "0.2.0": BASE,
    "0.2.1": (*BASE, "--latency-factor=3"),
    "0.2.2": (*BASE, "--error-rate=0.08"),
    "0.2.3": BASE,
}
#: Versions that change once they serve every user (the mesh at canary 100 %): 0.2.3 answers like
#: GA on the preview's load and three times slower under all of the users' traffic (a limit reached
#: only at full load), what blue/green's ``postPromotionAnalysis`` is there to catch.
AT_FULL_LOAD: dict[str, tuple[str, ...]] = {"0.2.3": (*BASE, "--latency-factor=3")}


def deployment(name: str, version: str, tag: str) -> str:
    """A Deployment like the guide's, with Flux's image-policy marker on the image line."""
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: test
  labels: {{app: podinfo, version: {version}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: podinfo, version: {version}}}
  template:
    metadata:
      labels: {{app: podinfo, version: {version}}}
    spec:
      containers:
      - name: podinfod
        image: {IMAGE}:{tag} # {{"$imagepolicy": "flux-system:{name}"}}
        ports:
        - containerPort: 9898
"""


def rollout_spec(
    stack: LocalStack,
    interval: float,
    rate: float,
    *,
    url: str = ".",
    finalize: str = f"{{action: promote-ga, gaPath: {GA}}}",
    approval: bool = False,
    strategy: str = "",
    load: str = "",
    steps: str = "[10, 60, 100]",
    preview: bool = False,
    post_promotion: bool = False,
) -> str:
    """The demo's Rollout spec (in the repo, ``git.url: .`` means that repo); its namespace is the
    stack's. With ``approval`` the 60 % step waits for the merge of its approval branch.
    ``strategy``: more lines of ``analysis`` (e.g. ``"iterations: 3\n    mirror: true"``);
    ``load``: more fields of ``load`` (e.g. ``"headers: {x-user: beta}"``); ``preview``: the
    stack's preview Service as ``analysis.previewService`` (blue/green on its own Service);
    ``post_promotion``: ``postPromotionAnalysis`` with the stack's Service of GA alone."""
    gate = "  approval: {confirmTrafficIncrease: [60]}\n" if approval else ""
    more = f"\n    {strategy}" if strategy else ""
    if preview:
        more += f'\n    previewService: {{name: {stack.preview_service}, url: "{stack.preview_url}/"}}'
    if post_promotion:
        stable = f'{{name: {stack.stable_service}, url: "{stack.stable_service_url}/"}}'
        more += f"\n    postPromotionAnalysis: {{iterations: 3, stableService: {stable}}}"
    return f"""apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata:
  name: podinfo
  namespace: {stack.config.namespace}
spec:
  git:
    url: {url}
    branch: master
    author: {{name: rollouts-controller, email: rollouts@demo.invalid}}
  route: {{kind: VirtualService, path: {ROUTE}, stable: ga, canary: canary}}
  canary: {{path: {CANARY}}}
  steps: {steps}
  analysis:
    interval: {interval:g}s
    threshold: 6
    onError: pause
    syncTimeout: 60s
    metrics: istio
    prometheus: {{url: "{stack.prometheus_url}"}}
    policy: {{min_windows: 2, min_canary_requests: 60, max_windows_per_step: 40}}{more}
  load: {{mode: local, target: "{stack.mesh_url}/", rate: {rate:g}{", " + load if load else ""}}}
  finalize: {finalize}
{gate}"""


def commit(
    stack: LocalStack, files: dict[str, str], message: str, author: tuple[str, str], cache: Path
) -> str:
    """Commit ``files`` to the stack's repo as ``author`` (a person, or Flux's image automation),
    through a workspace of its own (the same fetch-edit-commit-push path as the controller's)."""
    person = Author(name=author[0], email=author[1])
    with Workspace(str(stack.repo_path), "master", cache_dir=cache, author=person) as workspace:
        result = workspace.commit_files(files, message)
    return result.sha or result.head


class Kubelet:
    """Plays the cluster: keeps the GA and canary services at the versions their manifests in Git
    name (a Deployment's rollout when Flux applies a new image)."""

    def __init__(self, stack: LocalStack, running: str, ga: str = "0.1.0") -> None:
        self.stack = stack
        self.versions = {"canary": running, "ga": ga}
        self._full_load: str | None = None  # the version restarted with its AT_FULL_LOAD behaviour
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)

    @property
    def running(self) -> str:
        """The canary's version."""
        return self.versions["canary"]

    def wanted(self, path: str = CANARY) -> str:
        """The image tag of the manifest ``path`` on the remote branch."""
        import git

        from rollouts.gitops import canary_images, image_tag

        blob = git.Repo(self.stack.repo_path).commit("master").tree / path
        images = canary_images(blob.data_stream.read().decode(), path)
        return image_tag(next(iter(images.values())))

    def _loop(self) -> None:
        while not self._stop.wait(0.3):
            for subset, path in (("canary", CANARY), ("ga", GA)):
                try:
                    tag = self.wanted(path)
                    if tag != self.versions[subset]:
                        self.stack.restart_service(
                            subset, ServiceOptions(version=tag, args=BEHAVIOUR.get(tag, BASE))
                        )
                        self.versions[subset] = tag
                except Exception as exc:  # keep playing the cluster; the view shows the controller's
                    print(f"kubelet: {subset}: {exc}", file=sys.stderr)
            try:
                self._at_full_load()
            except Exception as exc:  # as above
                print(f"kubelet: canary at full load: {exc}", file=sys.stderr)

    def _at_full_load(self) -> None:
        """A version of AT_FULL_LOAD takes its behaviour there once the mesh sends it every user."""
        tag = self.versions["canary"]
        if tag not in AT_FULL_LOAD or self._full_load == tag:
            return
        weights = requests.get(self.stack.status_url, timeout=2).json().get("weights") or {}
        if weights.get("canary") == 100:
            self.stack.restart_service("canary", ServiceOptions(version=tag, args=AT_FULL_LOAD[tag]))
            self._full_load = tag

    def start(self) -> Kubelet:
        """Start following Git."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following Git."""
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class Story:
    """What the controller did, as the display and the report tell it."""

    ticks: list[tuple[float, TickResult]] = field(default_factory=list)
    by_key: list[tuple[str, TickResult]] = field(default_factory=list)  # the same ticks, with their rollout
    started: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock)
    echo: Callable[[str], None] | None = None  # without a terminal: one line per decision
    waiting: bool = False  # the last tick waited for an approval (told once per wait)

    def record(self, key: str, result: TickResult) -> None:
        """``on_tick`` of the scheduler."""
        now = time.time()
        with self.lock:
            self.ticks.append((now, result))
            self.by_key.append((key, result))
            awaited = result.action == Action.WAIT and any(
                "waiting for approval" in r for r in result.reasons
            )
            first_wait = awaited and not self.waiting
            self.waiting = awaited
        if self.echo is not None and (_is_decision(result) or first_wait):
            self.echo(decision_line(now, key, result))

    def decisions(self) -> list[tuple[float, TickResult]]:
        """Ticks that changed something or judged windows."""
        with self.lock:
            return [(t, r) for t, r in self.ticks if _is_decision(r)]

    def keyed(self) -> list[tuple[str, TickResult]]:
        """Every tick with the key of its rollout (or pipeline job), oldest first."""
        with self.lock:
            return list(self.by_key)

    def last(self) -> TickResult | None:
        """The newest tick."""
        with self.lock:
            return self.ticks[-1][1] if self.ticks else None


def _is_decision(result: TickResult) -> bool:
    return result.action not in (Action.NONE, Action.WAIT) or bool(result.windows)


def decision_line(moment: float, key: str, result: TickResult) -> str:
    """``12:03:05 test/podinfo promote   GA 40% / canary 60%  non-inferiority established ...``"""
    weights = "weights ?" if result.weight is None else f"GA {100 - result.weight}% / canary {result.weight}%"
    reason = "; ".join(result.reasons)
    reason = reason if len(reason) <= 110 else reason[:109] + "…"
    return (
        f"{time.strftime('%H:%M:%S', time.localtime(moment))} {key} {result.action:8} {weights:21} {reason}"
    )
