"""The sync gate in a cluster: the live route object has the committed weights, the canary is ready."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from rollouts.kube.errors import LiveRouteError
from rollouts.kube.readiness import deployment_readiness
from rollouts.kube.routes import read_live_route, read_live_weights
from rollouts.kube.shape import RouteShape, shape_difference, shape_of
from rollouts.routes.base import Weights
from rollouts.sync.base import Observation, PollingGate


@dataclass(frozen=True)
class RouteTarget:
    """The live route object and the names of its stable and canary destinations."""

    kind: str
    namespace: str
    name: str
    stable: str
    canary: str
    route_name: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class FluxKustomization:
    """A Flux Kustomization whose ``status.lastAppliedRevision`` names the applied commit."""

    namespace: str
    name: str


class KubernetesGate(PollingGate):
    """Open when the live route has the weights and every listed Deployment is ready.

    With ``kustomization`` the gate also waits for Flux to report our commit (or a later one) as
    applied; without it the weights are the evidence, which is what routes the traffic. With
    ``shape`` (the committed route's strategy blocks, read from Git) the live route must also have
    them: the match routes, the mirror and its percentage (:mod:`rollouts.kube.shape`).
    """

    def __init__(
        self,
        api: k8s.ApiClient,
        route: RouteTarget,
        *,
        deployments: tuple[tuple[str, str], ...] = (),
        kustomization: FluxKustomization | None = None,
        shape: RouteShape | None = None,
        **polling: Any,
    ) -> None:
        super().__init__(**polling)
        self._api = api
        self.shape = shape
        self.route = route
        self.deployments = deployments
        self.kustomization = kustomization

    def observe(self, expected_revision: str) -> Observation:
        """Read the route, the Deployments and (optionally) the Flux Kustomization."""
        r = self.route
        try:
            live = read_live_route(self._api, r.kind, r.namespace, r.name, version=r.version)
            weights = read_live_weights(
                self._api,
                r.kind,
                r.namespace,
                r.name,
                stable=r.stable,
                canary=r.canary,
                route_name=r.route_name,
                obj=live,
            )
            shape = shape_of(live, r.kind, stable=r.stable, canary=r.canary, route_name=r.route_name)
            not_ready = []
            for namespace, name in self.deployments:
                state = deployment_readiness(self._api, namespace, name)
                if not state.ready:
                    not_ready.append(f"Deployment {namespace}/{name}: {state.reason}")
            revision = self._applied_revision()
        except ApiException as exc:
            return Observation(error=f"Kubernetes API: {exc.status} {exc.reason}")
        except (HTTPError, LiveRouteError) as exc:
            return Observation(error=f"Kubernetes API: {exc}")
        return Observation(
            weights=weights, shape=shape, revision=revision, ready=not not_ready, detail="; ".join(not_ready)
        )

    def _applied_revision(self) -> str | None:
        if self.kustomization is None:
            return None
        obj = k8s.CustomObjectsApi(self._api).get_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io",
            "v1",
            self.kustomization.namespace,
            "kustomizations",
            self.kustomization.name,
        )
        status = obj.get("status", {}) if isinstance(obj, dict) else {}
        return str(status.get("lastAppliedRevision") or "")

    def matches(self, seen: Observation, weights: Weights, revision: str) -> str | None:
        """Weights equal, Deployments ready, and Flux's revision (when asked for) is ours."""
        r = self.route
        if seen.weights != weights:
            live = seen.weights
            got = f"stable {live.stable}% / canary {live.canary}%" if live else "nothing"
            return f"live {r.kind} {r.namespace}/{r.name} routes {got}"
        if self.shape is not None and isinstance(seen.shape, RouteShape):
            differs = shape_difference(self.shape, seen.shape)
            if differs is not None:
                return f"live {r.kind} {r.namespace}/{r.name}: {differs}"
        if not seen.ready:
            return seen.detail
        # Flux writes "main@sha1:<sha>" (v2) or "main/<sha>" (v0): a substring test covers both.
        if self.kustomization is not None and revision not in (seen.revision or ""):
            k = self.kustomization
            return f"Flux Kustomization {k.namespace}/{k.name} applied {seen.revision or 'nothing'} yet"
        return None
