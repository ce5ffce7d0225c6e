"""SMI ``TrafficSplit`` (``split.smi-spec.io`` v1alpha1 to v1alpha4): ``spec.backends[].weight``.

Backends are named by ``service``. A file may hold several TrafficSplits: ``route_name`` chooses one
by ``metadata.name``, else it is the one that holds both services.
"""

from __future__ import annotations

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from rollouts.routes._engine import (
    Entry,
    Group,
    SplitEditor,
    describe,
    documents_of_kind,
    get,
    get_str,
    items,
)
from rollouts.routes.base import RouteError

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
            entries = [_entry(item, label, self.source) for item in items(backends)]
            name = get_str(get(doc, "metadata"), "name")
            groups.append(Group(label=label, route_name=name, seq=backends, entries=entries))  # type: ignore[arg-type]
        return groups


def _entry(item: Node, label: str, source: str) -> Entry:
    service = get(item, "service")
    if not isinstance(item, MappingNode) or not isinstance(service, ScalarNode):
        raise RouteError(f"{source}: {label}: every backend needs a service")
    weight = get(item, "weight")
    if weight is not None and not isinstance(weight, ScalarNode):
        raise RouteError(f"{source}: {label}: service {service.value!r}: weight must be an integer")
    return Entry(
        node=item,
        names=(str(service.value),),
        name_span=(service.start_mark.index, service.end_mark.index),
        weight=weight,
        weight_parent=item,
        word="service",
    )
