"""Route editors: one module per traffic API behind one small interface (read weights, write
weights; add or remove the strategies' match route, mirror and session affinity; read the routing
table), as Flagger does in ``pkg/router``.

>>> editor = editor_for("VirtualService", stable="ga", canary="canary", source="vs.yaml")
>>> weights = editor.read(text)                           # doctest: +SKIP
>>> new_text = editor.write(text, Weights.for_canary(60))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from rollouts.routes.base import RouteEditor, Weights
from rollouts.routes.errors import RouteError
from rollouts.routes.httproute import HTTPRouteEditor
from rollouts.routes.strategies import Match, RequestMatch, RouteTable, Rule, SessionAffinity, StringMatch
from rollouts.routes.trafficsplit import TrafficSplitEditor
from rollouts.routes.virtualservice import VirtualServiceEditor, destination_rule_subsets

KINDS = ("VirtualService", "HTTPRoute", "TrafficSplit")

__all__ = [
    "KINDS",
    "HTTPRouteEditor",
    "Match",
    "RequestMatch",
    "RouteEditor",
    "RouteError",
    "RouteTable",
    "Rule",
    "SessionAffinity",
    "StringMatch",
    "TrafficSplitEditor",
    "VirtualServiceEditor",
    "Weights",
    "destination_rule_subsets",
    "editor_for",
]


def editor_for(
    kind: str,
    *,
    stable: str,
    canary: str,
    route_name: str | None = None,
    source: str = "<text>",
    subsets: Collection[str] | None = None,
    destination_rules: Sequence[tuple[str, str]] = (),
) -> RouteEditor:
    """The editor for traffic API ``kind`` (``VirtualService``, ``HTTPRoute`` or ``TrafficSplit``).

    ``source`` (the file's path) prefixes every error. ``subsets`` (VirtualService only) are the
    subsets a DestinationRule elsewhere in the repo declares; they are checked when given, as are the
    DestinationRules found in ``destination_rules`` (``(path, text)`` pairs of other files).
    """
    if kind == "VirtualService":
        return VirtualServiceEditor(
            stable=stable,
            canary=canary,
            route_name=route_name,
            source=source,
            subsets=subsets,
            destination_rules=destination_rules,
        )
    if subsets is not None or destination_rules:
        raise RouteError(f"{source}: subsets apply to VirtualService only, not {kind}")
    if kind == "HTTPRoute":
        return HTTPRouteEditor(stable=stable, canary=canary, route_name=route_name, source=source)
    if kind == "TrafficSplit":
        return TrafficSplitEditor(stable=stable, canary=canary, route_name=route_name, source=source)
    raise RouteError(f"{source}: unknown route kind {kind!r} (one of {', '.join(KINDS)})")
