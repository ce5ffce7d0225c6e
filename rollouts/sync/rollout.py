"""The Kubernetes sync gate of one rollout, with its objects named by the manifests in Git.

``rollouts run --kubernetes`` knows a rollout by its spec, which names files (the route file, the
canary manifest, the GA manifest); the objects to look at in the cluster are named by those files'
``metadata``. :class:`KubernetesSpecGate` reads them through the workspace (``show``: locked, no
symbolic links), and the strategy's shape of the committed route (its match routes and mirror), then
asks :class:`~rollouts.sync.KubernetesGate`. It also answers GA's readiness
for ``finalize: promote-ga``. It must never write to the cluster or to Git.
"""

from __future__ import annotations

from typing import Any, Protocol

from kubernetes import client as k8s

from rollouts.kube import ObjectRef
from rollouts.kube.readiness import readiness_of
from rollouts.kube.shape import RouteShape, shape_of
from rollouts.routes import Weights
from rollouts.spec import Rollout
from rollouts.state import RolloutState
from rollouts.sync.base import GateResult, Observation
from rollouts.sync.kubernetes import FluxKustomization, KubernetesGate, RouteTarget
from rollouts.yamlsafe import MANIFEST, ROUTE, load_all


class RepoFiles(Protocol):
    """Files of the rollout's repo at a commit (``rollouts.gitops.Workspace.show``)."""

    def show(self, sha: str, rel: str) -> str: ...


class KubernetesSpecGate:
    """A ``KubernetesGate`` for a rollout: the route object and canary Deployment are named by the
    ``metadata`` of the route file and canary manifest in Git."""

    def __init__(
        self,
        api: Any,
        workspace: RepoFiles,
        rollout: Rollout,
        interval: float,
        flux: FluxKustomization | None = None,
    ) -> None:
        self._api, self._workspace, self._rollout, self._interval = api, workspace, rollout, interval
        self._flux = flux

    def _meta(self, rel: str, head: str) -> tuple[str, str]:
        text = self._workspace.show(head, rel)
        doc = next(d for d in load_all(text, rel, MANIFEST) if isinstance(d, dict))  # bounded
        meta = doc.get("metadata") or {}
        return str(meta.get("namespace") or self._rollout.metadata.namespace), str(meta["name"])

    def target(self, head: str = "HEAD") -> tuple[RouteTarget, ObjectRef]:
        """The live route object and the canary Deployment of the rollout, as named at ``head``."""
        spec = self._rollout.spec
        namespace, name = self._meta(spec.route.path, head)
        route = RouteTarget(
            spec.route.kind, namespace, name, spec.route.stable, spec.route.canary, spec.route.name
        )
        canary_ns, canary = self._meta(spec.canary.path, head)
        return route, ObjectRef("Deployment", canary_ns, canary, api_version="apps/v1")

    def committed_shape(self, route: RouteTarget, head: str = "HEAD") -> RouteShape:
        """The strategy's shape of the route object in the route file at ``head``."""
        path = self._rollout.spec.route.path
        for doc in load_all(self._workspace.show(head, path), path, ROUTE):
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            if isinstance(meta, dict) and doc.get("kind") == route.kind and meta.get("name") == route.name:
                return shape_of(
                    doc, route.kind, stable=route.stable, canary=route.canary, route_name=route.route_name
                )
        return RouteShape()

    def wait(self, expected_weights: Weights, expected_revision: str, timeout: float) -> GateResult:
        """Resolve the objects and the route's shape from Git (the clone's head), then look at the
        cluster."""
        try:
            route, canary = self.target()
            shape = self.committed_shape(route)
        except Exception as exc:  # a bad file in Git
            observed = Observation(error=f"cannot name the objects from the manifests in Git: {exc}")
            return GateResult(False, observed.error or "", 0.0, 1, observed)
        gate = KubernetesGate(
            self._api,
            route,
            deployments=((canary.namespace, canary.name),),
            kustomization=self._flux,
            shape=shape,
            interval=self._interval,
        )
        return gate.wait(expected_weights, expected_revision, timeout)

    def ga_ready(self, rollout: Rollout, state: RolloutState) -> tuple[bool, str]:
        """``finalize: promote-ga``: the live GA Deployment (named by the GA manifest in Git) has the
        images of the manifest and is rolled out (``kubectl rollout status``'s rule)."""
        assert rollout.spec.finalize.ga_path is not None and state.ga_images is not None
        namespace, name = self._meta(rollout.spec.finalize.ga_path, "HEAD")
        live = k8s.AppsV1Api(self._api).read_namespaced_deployment(name, namespace)
        pod = live.spec.template.spec if live.spec is not None else None
        containers = [*(pod.init_containers or []), *(pod.containers or [])] if pod is not None else []
        running = {c.name: c.image for c in containers}
        stale = sorted(n for n, image in state.ga_images.items() if running.get(n) != image)
        if stale:
            return (
                False,
                f"Deployment {namespace}/{name} does not run the new images yet ({', '.join(stale)})",
            )
        readiness = readiness_of(live)
        return readiness.ready, f"Deployment {namespace}/{name}: {readiness.reason}"
