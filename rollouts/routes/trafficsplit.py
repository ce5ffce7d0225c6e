"""SMI ``TrafficSplit`` (``split.smi-spec.io`` v1alpha1 to v1alpha4): ``spec.backends[].weight``.

Backends are named by ``service``. A TrafficSplit has weights only: no request matches, no mirror,
no response headers, so A/B matches, mirroring and session affinity are errors that name the field
(blue/green, a switch from 0 to 100, is a weight change and works).

A file may hold several TrafficSplits: ``route_name`` chooses one by ``metadata.name``, else it is
the one that holds both services.
"""

from __future__ import annotations

from ruamel.yaml.nodes import Node

from rollouts.routes._engine import (
    Entry,
    Group,
    SplitEditor,
    describe,
    documents_of_kind,
    get,
    get_str,
    items,
    keyed_entry,
)
from rollouts.routes.base import RouteError
from rollouts.routes.strategies import Match, RouteTable, Rule, SessionAffinity

API_GROUPS = ("split.smi-spec.io",)


class TrafficSplitEditor(SplitEditor):
    """Weights of two backends of an SMI TrafficSplit."""

    kind = "TrafficSplit"
    entry_word = "service"

    def find_groups(self, documents: list[Node]) -> list[Group]:
        """One group per TrafficSplit in the file (its ``spec.backends``)."""
        groups: list[Group] = []
        for doc in documents_of_kind(documents, "TrafficSplit", API_GROUPS, self.source):
            backends = get(get(doc, "spec"), "backends")
            if backends is None:
                continue
            label = f"{describe(doc, 'TrafficSplit')} backends"
            entries = [self._entry(item, label) for item in items(backends)]
            name = get_str(get(doc, "metadata"), "name")
            groups.append(Group(label=label, route_name=name, seq=backends, entries=entries))  # type: ignore[arg-type]
        return groups

    def _entry(self, item: Node, label: str) -> Entry:
        return keyed_entry(
            item, key="service", word="service", item_word="backend", label=label, source=self.source
        )

    # -- strategies: SMI cannot express them ----------------------------------------------------------

    def _cannot(self, field: str, what: str) -> RouteError:
        return RouteError(
            f"{self.source}: {field}: a TrafficSplit has no {what}; use a VirtualService or an HTTPRoute"
        )

    def set_match(self, text: str, match: Match | None) -> str:
        """Only "no match" is expressible."""
        if match is None:
            return text
        raise self._cannot("analysis.match", "request matches")

    def set_mirror(self, text: str, percent: float | None) -> str:
        """Only "no mirror" is expressible."""
        if percent is None:
            return text
        raise self._cannot("analysis.mirror", "traffic mirroring")

    def set_affinity(self, text: str, affinity: SessionAffinity | None) -> str:
        """Only "no affinity" is expressible."""
        if affinity is None:
            return text
        raise self._cannot("analysis.sessionAffinity", "response headers or request matches")

    def table(self, text: str) -> RouteTable:
        """One rule: the split."""
        return RouteTable(rules=(Rule(matches=(), weights=self.read(text), label=self._select(text).label),))
