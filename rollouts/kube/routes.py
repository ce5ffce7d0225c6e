"""The weights a route object in the cluster carries right now (what the sync gate compares).

The route editors in ``rollouts.routes`` work on the text in Git; this module reads the live object
the API server returns (a dict from ``CustomObjectsApi``), which Flux has applied from that text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from rollouts.kube.errors import (
    LiveRouteError,
)
from rollouts.routes.base import Weights


@dataclass(frozen=True)
class RouteApi:
    """Where a traffic API lives on the API server."""

    group: str
    version: str
    plural: str


# The versions every supported release of each project serves (Istio >= 1.8, Gateway API >= 1.0,
# SMI v1alpha4); `read_live_weights(version=...)` overrides them.
ROUTE_APIS: dict[str, RouteApi] = {
    "VirtualService": RouteApi("networking.istio.io", "v1beta1", "virtualservices"),
    "HTTPRoute": RouteApi("gateway.networking.k8s.io", "v1", "httproutes"),
    "TrafficSplit": RouteApi("split.smi-spec.io", "v1alpha4", "trafficsplits"),
}


def _host_matches(host: str, service: str) -> bool:
    # Istio hosts may be short names or FQDNs ("podinfo.test.svc.cluster.local").
    return host == service or host.startswith(service + ".")


def _percent(stable: float, canary: float, *, total: float, where: str) -> Weights:
    if total <= 0:
        raise LiveRouteError(f"{where}: all weights are zero")
    if stable + canary != total:
        raise LiveRouteError(f"{where}: traffic goes to destinations other than stable and canary")
    canary_pct = round(100 * canary / total)
    return Weights.for_canary(canary_pct)


def _both(destinations: Sequence[Mapping[str, Any]], stable: str, canary: str) -> bool:
    subsets = {(d.get("destination") or {}).get("subset") for d in destinations if isinstance(d, Mapping)}
    return {stable, canary} <= subsets


def _virtualservice(spec: Mapping[str, Any], stable: str, canary: str, route_name: str | None) -> Weights:
    routes: Sequence[Mapping[str, Any]] = spec.get("http") or []
    # The default route has both destinations; a strategy's match or session-affinity route before
    # it sends to the canary alone, and must not be read as the split.
    routes = sorted(routes, key=lambda http: not _both(http.get("route") or [], stable, canary))
    for index, http in enumerate(routes):
        if route_name is not None and http.get("name") != route_name:
            continue
        destinations: Sequence[Mapping[str, Any]] = http.get("route") or []

        def role(dest: Mapping[str, Any]) -> str | None:
            target = dest.get("destination") or {}
            subset, host = target.get("subset"), str(target.get("host", ""))
            for name, label in ((stable, "stable"), (canary, "canary")):
                if subset == name or (subset is None and _host_matches(host, name)):
                    return label
            return None

        roles = [role(d) for d in destinations]
        if route_name is None and not any(roles):
            continue
        sums = {"stable": 0.0, "canary": 0.0}
        total = 0.0
        for dest, label in zip(destinations, roles, strict=True):
            # Istio: a lone destination takes all traffic when it has no weight.
            weight = float(dest.get("weight", 100 if len(destinations) == 1 else 0))
            total += weight
            if label is not None:
                sums[label] += weight
        where = f"VirtualService http[{http.get('name', index)}]"
        return _percent(sums["stable"], sums["canary"], total=total, where=where)
    wanted = f"http route {route_name!r}" if route_name else f"an http route to {stable!r} or {canary!r}"
    raise LiveRouteError(f"VirtualService has no {wanted}")


def _backends(
    backends: Sequence[Mapping[str, Any]], key: str, stable: str, canary: str, where: str
) -> Weights:
    sums = {"stable": 0.0, "canary": 0.0}
    total = 0.0
    for backend in backends:
        # Gateway API defaults a backendRef's weight to 1; SMI requires it.
        weight = float(backend.get("weight", 1))
        total += weight
        name = backend.get(key)
        if name == stable:
            sums["stable"] += weight
        elif name == canary:
            sums["canary"] += weight
    return _percent(sums["stable"], sums["canary"], total=total, where=where)


def weights_of(
    obj: Mapping[str, Any], kind: str, *, stable: str, canary: str, route_name: str | None = None
) -> Weights:
    """The stable/canary split in a live route object (the JSON the API server returns).

    ``stable``/``canary`` are Istio subset names (or hosts) for a VirtualService and Service names
    for HTTPRoute and TrafficSplit. Relative weights are converted to percent.
    """
    spec: Mapping[str, Any] = obj.get("spec") or {}
    if kind == "VirtualService":
        return _virtualservice(spec, stable, canary, route_name)
    if kind == "HTTPRoute":
        rules: Sequence[Mapping[str, Any]] = spec.get("rules") or []
        # As for a VirtualService: the rule with both backends is the split, not a match rule.
        rules = sorted(
            rules, key=lambda r: not {stable, canary} <= {b.get("name") for b in r.get("backendRefs") or []}
        )
        for index, rule in enumerate(rules):
            refs: Sequence[Mapping[str, Any]] = rule.get("backendRefs") or []
            names = {ref.get("name") for ref in refs}
            if (route_name is not None and rule.get("name") == route_name) or (
                route_name is None and names & {stable, canary}
            ):
                where = f"HTTPRoute rules[{rule.get('name', index)}]"
                return _backends(refs, "name", stable, canary, where)
        raise LiveRouteError(f"HTTPRoute has no rule with a backendRef to {stable!r} or {canary!r}")
    if kind == "TrafficSplit":
        backends: Sequence[Mapping[str, Any]] = spec.get("backends") or []
        return _backends(backends, "service", stable, canary, "TrafficSplit backends")
    raise LiveRouteError(f"unknown route kind {kind!r}; expected one of {', '.join(ROUTE_APIS)}")


def read_live_route(
    api: k8s.ApiClient, kind: str, namespace: str, name: str, *, version: str | None = None
) -> dict[str, Any]:
    """GET the route object from the API server, as the JSON mapping it answers (``ApiException``
    passes)."""
    if kind not in ROUTE_APIS:
        raise LiveRouteError(f"unknown route kind {kind!r}; expected one of {', '.join(ROUTE_APIS)}")
    where = ROUTE_APIS[kind]
    obj = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        where.group, version or where.version, namespace, where.plural, name
    )
    if not isinstance(obj, dict):
        raise LiveRouteError(f"{kind} {namespace}/{name}: the API server answered {type(obj).__name__}")
    return obj


def read_live_weights(
    api: k8s.ApiClient,
    kind: str,
    namespace: str,
    name: str,
    *,
    stable: str,
    canary: str,
    route_name: str | None = None,
    version: str | None = None,
    obj: dict[str, Any] | None = None,
) -> Weights:
    """GET the route object from the API server (or take ``obj``, already read) and return its
    weights (``ApiException`` passes)."""
    if obj is None:
        obj = read_live_route(api, kind, namespace, name, version=version)
    try:
        return weights_of(obj, kind, stable=stable, canary=canary, route_name=route_name)
    except LiveRouteError as exc:
        raise LiveRouteError(f"{kind} {namespace}/{name}: {exc}") from exc


# The errors are defined in errors.py and raised here: importable from here too.
__all__ = ["ROUTE_APIS", "LiveRouteError", "RouteApi", "read_live_route", "read_live_weights", "weights_of"]
