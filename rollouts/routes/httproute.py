"""Gateway API ``HTTPRoute`` (``gateway.networking.k8s.io``): ``rules[].backendRefs[].weight``.

Backends are named by ``name`` (a Service). A rule is chosen by its ``name`` (Gateway API v1.2+),
else it is the one rule that holds both backends. Gateway API weights are proportions with a
default of 1; we write percentages and require every weight to be spelled out when there are two.
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

API_GROUPS = ("gateway.networking.k8s.io",)


class HTTPRouteEditor(SplitEditor):
    """Weights of two ``backendRefs`` of one rule of a Gateway API HTTPRoute."""

    kind = "HTTPRoute"
    entry_word = "backend"
    missing_weight_default = 1

    def find_groups(self, documents: list[Node]) -> list[Group]:
        """One group per ``rules[i].backendRefs`` of every HTTPRoute in the file."""
        groups: list[Group] = []
        for doc in documents_of_kind(documents, "HTTPRoute", API_GROUPS, self.source):
            for index, rule in enumerate(items(get(get(doc, "spec"), "rules"))):
                refs = get(rule, "backendRefs")
                name = get_str(rule, "name")
                label = f"{describe(doc, 'HTTPRoute')} rules[{index}]" + (f" ({name})" if name else "")
                if refs is None:
                    continue
                entries = [self._entry(item, label) for item in items(refs)]
                groups.append(Group(label=label, route_name=name, seq=refs, entries=entries))  # type: ignore[arg-type]
        return groups

    def _entry(self, item: Node, label: str) -> Entry:
        return keyed_entry(
            item, key="name", word="backend", item_word="backendRef", label=label, source=self.source
        )
