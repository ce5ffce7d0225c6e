"""SMI ``TrafficSplit`` (``split.smi-spec.io`` v1alpha1 to v1alpha4): ``spec.backends[].weight``.

Backends are named by ``service``. A file may hold several TrafficSplits: ``route_name`` chooses one
by ``metadata.name``, else it is the one that holds both services.
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
