"""The strategy's shape of a route object, beyond its weights: what the sync gate also compares.

A strategy stage is more than weights: the A/B stage adds a match route before the default route,
the mirror stage a mirror block with its percentage, session affinity cookie routes, and the
blue/green switch moves the default route to the canary. A cluster that runs the committed weights
but not yet the committed match route or mirror (Flux applied an older commit at the same weights,
the mirror stage and its rollback both sit at canary 0 %) must keep the gate closed, or the windows
of a mirror stage would judge a canary that receives no copies.

:func:`shape_of` reads the shape from the object as a mapping, so the same function reads the route
file in Git (parsed YAML) and the live object the API server returns (JSON): equal shapes mean the
cluster runs the committed strategy. Conditions are compared as canonical JSON (keys sorted), and
percentages as numbers (``50`` and ``50.0`` are the same). It is pure: no API calls, no Git, and it
must never decide anything beyond "equal or what differs".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RouteShape:
    """The strategy blocks of a route: ``matches``, the conditions of each route before the default
    one that sends requests to the canary (canonical JSON, in order: A/B match routes and session
    affinity routes); ``mirror``, the default route's mirror destination (canonical JSON) and
    ``mirror_percent`` (None: 100 % when mirroring, or no mirror)."""

    matches: tuple[str, ...] = ()
    mirror: str | None = None
    mirror_percent: float | None = None

    def describe(self) -> str:
        """In words, for a gate's reason."""
        parts = [f"{len(self.matches)} match route(s) to the canary"]
        if self.mirror is None:
            parts.append("no mirror")
        else:
            percent = 100.0 if self.mirror_percent is None else self.mirror_percent
            parts.append(f"a mirror to {self.mirror} ({percent:g}%)")
        return ", ".join(parts)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _is_default(destinations: Sequence[Any], key: str, stable: str, canary: str) -> bool:
    """The default route has both destinations (a match or affinity route has the canary alone, or
    both when it splits the segment: the default route is then the last one with both)."""
    names = {_name(d, key) for d in destinations if isinstance(d, Mapping)}
    return {stable, canary} <= names


def _split(destinations: Sequence[Any], key: str, stable: str, canary: str) -> str:
    """``" canary N%"`` for a match route that splits its requests between both destinations
    (``analysis.matchWeight``), so that a changed split is a changed shape; "" otherwise."""
    if not _is_default(destinations, key, stable, canary):
        return ""
    weights = {_name(d, key): _number(d.get("weight")) or 0.0 for d in destinations if isinstance(d, Mapping)}
    total = sum(weights.values()) or 1.0
    return f" canary {100.0 * weights.get(canary, 0.0) / total:g}%"


def _name(destination: Mapping[str, Any], key: str) -> str | None:
    if key == "subset":  # Istio: the subset, else the host
        target = destination.get("destination") or {}
        if not isinstance(target, Mapping):
            return None
        subset = target.get("subset")
        return str(subset) if subset is not None else str(target.get("host", "")).split(".")[0]
    value = destination.get(key)
    return None if value is None else str(value)


def _virtualservice(spec: Mapping[str, Any], stable: str, canary: str, route_name: str | None) -> RouteShape:
    routes = [r for r in spec.get("http") or [] if isinstance(r, Mapping)]
    # The last route with both destinations: a match route that splits the segment holds both too,
    # and is written right before the default route.
    default = next(
        (
            i
            for i, r in reversed(list(enumerate(routes)))
            if (route_name is not None and r.get("name") == route_name)
            or (route_name is None and _is_default(r.get("route") or [], "subset", stable, canary))
        ),
        None,
    )
    if default is None:
        return RouteShape()
    matches = tuple(
        _canonical(r.get("match") or []) + _split(r.get("route") or [], "subset", stable, canary)
        for r in routes[:default]
        if any(_name(d, "subset") == canary for d in r.get("route") or [] if isinstance(d, Mapping))
    )
    route = routes[default]
    mirror = route.get("mirror")
    percent = route.get("mirrorPercentage")
    value = (
        _number(percent.get("value")) if isinstance(percent, Mapping) else _number(route.get("mirrorPercent"))
    )
    return RouteShape(matches, _canonical(mirror) if mirror else None, value if mirror else None)


def _httproute(spec: Mapping[str, Any], stable: str, canary: str, route_name: str | None) -> RouteShape:
    rules = [r for r in spec.get("rules") or [] if isinstance(r, Mapping)]
    default = next(
        (
            i
            for i, r in reversed(list(enumerate(rules)))
            if (route_name is not None and r.get("name") == route_name)
            or (route_name is None and _is_default(r.get("backendRefs") or [], "name", stable, canary))
        ),
        None,
    )
    if default is None:
        return RouteShape()
    # Gateway API orders rules by precedence, not position: every other rule to the canary counts.
    matches = tuple(
        _canonical(r.get("matches") or []) + _split(r.get("backendRefs") or [], "name", stable, canary)
        for i, r in enumerate(rules)
        if i != default
        and any(_name(b, "name") == canary for b in r.get("backendRefs") or [] if isinstance(b, Mapping))
    )
    mirror, percent = None, None
    for f in rules[default].get("filters") or []:
        if isinstance(f, Mapping) and f.get("type") == "RequestMirror":
            block = f.get("requestMirror") or {}
            mirror = _canonical(block.get("backendRef") or {})
            percent = _number(block.get("percent"))
            fraction = block.get("fraction")
            if isinstance(fraction, Mapping) and _number(fraction.get("numerator")) is not None:
                denominator = _number(fraction.get("denominator")) or 100.0
                percent = 100.0 * (_number(fraction.get("numerator")) or 0.0) / denominator
    return RouteShape(matches, mirror, percent)


def shape_of(
    obj: Mapping[str, Any], kind: str, *, stable: str, canary: str, route_name: str | None = None
) -> RouteShape:
    """The strategy shape of a route object (parsed YAML from Git, or the API server's JSON).
    A TrafficSplit has weights only: its shape is always empty."""
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        return RouteShape()
    if kind == "VirtualService":
        return _virtualservice(spec, stable, canary, route_name)
    if kind == "HTTPRoute":
        return _httproute(spec, stable, canary, route_name)
    return RouteShape()


def shape_difference(committed: RouteShape, live: RouteShape) -> str | None:
    """What the live route lacks of the committed shape, in words; None when they are equal."""
    if committed == live:
        return None
    if committed.matches != live.matches:
        return f"match routes differ (Git: {committed.describe()}; live: {live.describe()})"
    return f"mirror differs (Git: {committed.describe()}; live: {live.describe()})"


__all__ = ["RouteShape", "shape_difference", "shape_of"]
