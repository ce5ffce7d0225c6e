"""Istio ``VirtualService`` (``networking.istio.io`` v1alpha3, v1beta1, v1).

Two layouts are common and both work:

- by subset (the GitOps-for-Istio guide): one host, ``subset: ga`` and ``subset: canary``, the
  subsets declared by a ``DestinationRule``;
- by host (Flagger): ``host: podinfo-primary`` and ``host: podinfo-canary`` (a destination without a
  subset matches by its host, or by the first DNS label of it: ``podinfo-canary.test.svc``).

A file may hold several documents and a VirtualService several ``http`` routes: the route is chosen
by name (``spec.route.name``), else it is the one route that holds both destinations.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from rollouts.routes._engine import (
    Entry,
    Group,
    SplitEditor,
    compose,
    describe,
    documents_of_kind,
    get,
    get_str,
    items,
)
from rollouts.routes.errors import RouteError

API_VERSIONS = (
    "networking.istio.io/v1alpha3",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1",
)


class VirtualServiceEditor(SplitEditor):
    """Weights of two destinations of one ``http`` route of an Istio VirtualService.

    ``subsets``, when given, are the subsets a DestinationRule declares for the host; the stable and
    canary subsets must be among them. DestinationRules in the same file are always checked, and so
    are those in ``destination_rules`` (``(path, text)`` of other files of the repo).
    """

    kind = "VirtualService"
    entry_word = "destination"

    def __init__(
        self,
        *,
        stable: str,
        canary: str,
        route_name: str | None = None,
        source: str = "<text>",
        subsets: Collection[str] | None = None,
        destination_rules: Sequence[tuple[str, str]] = (),
    ):
        super().__init__(stable=stable, canary=canary, route_name=route_name, source=source)
        self.subsets = frozenset(subsets) if subsets is not None else None
        self.destination_rules = tuple(destination_rules)

    def find_groups(self, documents: list[Node]) -> list[Group]:
        """One group per ``http[i].route`` of every VirtualService in the file."""
        groups: list[Group] = []
        for doc in documents_of_kind(documents, "VirtualService", API_VERSIONS, self.source):
            spec = get(doc, "spec")
            for index, http in enumerate(items(get(spec, "http"))):
                route = get(http, "route")
                name = get_str(http, "name")
                label = f"{describe(doc, 'VirtualService')} http[{index}]" + (f" ({name})" if name else "")
                if route is None:
                    continue
                if not hasattr(route, "flow_style") or not isinstance(route.value, list):
                    raise RouteError(f"{self.source}: {label}: route must be a list")
                entries = [self._entry(item, label) for item in items(route)]
                groups.append(Group(label=label, route_name=name, seq=route, entries=entries))  # type: ignore[arg-type]
        return groups

    def _entry(self, item: Node, label: str) -> Entry:
        if not isinstance(item, MappingNode):
            raise RouteError(f"{self.source}: {label}: route entries must be mappings")
        destination = get(item, "destination")
        host = get(destination, "host")
        subset = get(destination, "subset")
        if not isinstance(host, ScalarNode):
            raise RouteError(f"{self.source}: {label}: a destination has no host")
        weight = get(item, "weight")
        if weight is not None and not isinstance(weight, ScalarNode):
            raise RouteError(f"{self.source}: {label}: weight must be an integer")
        if isinstance(subset, ScalarNode) and str(subset.value):
            # By subset: the subset names it; renaming replaces the subset scalar.
            return Entry(
                node=item,
                names=(str(subset.value),),
                name_span=_value_span(subset),
                weight=weight,
                weight_parent=item,
                word="subset",
            )
        # By host: "podinfo-canary" or "podinfo-canary.test.svc.cluster.local"; renaming replaces
        # the first DNS label only, so a copied entry keeps the namespace and domain.
        host_name = str(host.value)
        label0 = host_name.split(".", 1)[0]
        start = host.start_mark.index + (1 if host.style in {"'", '"'} else 0)
        return Entry(
            node=item,
            names=(host_name, label0) if label0 != host_name else (host_name,),
            name_span=(start, start + len(label0)),
            weight=weight,
            weight_parent=item,
            word="host",
        )

    def validate_names(self, group: Group, text: str) -> None:
        """The stable and canary subsets exist in the DestinationRule (this file's, or ``subsets``)."""
        by_subset = any(get(get(e.node, "destination"), "subset") is not None for e in group.entries)
        if not by_subset:
            return
        hosts = {get_str(get(e.node, "destination"), "host") or "" for e in group.entries}
        declared: set[str] | None = set(self.subsets) if self.subsets is not None else None
        for source, other in ((self.source, text), *self.destination_rules):
            in_file = subsets_in(self.documents(other, source), hosts)
            if in_file is not None:
                declared = (declared or set()) | in_file
        if declared is None:
            return
        for name in (self.stable, self.canary):
            if name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise RouteError(
                    f"{self.source}: {group.label}: subset {name!r} is not declared by the DestinationRule "
                    f"(declared: {known})"
                )


def _value_span(node: ScalarNode) -> tuple[int, int]:
    return node.start_mark.index, node.end_mark.index


def _short(host: str) -> str:
    return host.split(".", 1)[0]


def destination_rule_subsets(text: str, hosts: Collection[str], *, source: str = "<text>") -> set[str] | None:
    """Subset names declared by the DestinationRules in ``text`` for any of ``hosts``.

    Hosts match by their full name or their first DNS label (``podinfo`` matches
    ``podinfo.test.svc.cluster.local``). None when no DestinationRule for those hosts is in ``text``.
    """
    return subsets_in(compose(text, source), hosts)


def subsets_in(documents: list[Node], hosts: Collection[str]) -> set[str] | None:
    """:func:`destination_rule_subsets` on parsed documents."""
    wanted = {_short(h) for h in hosts if h}
    found: set[str] | None = None
    for doc in documents:
        if get_str(doc, "kind") != "DestinationRule":
            continue
        spec = get(doc, "spec")
        host = get_str(spec, "host") or ""
        if _short(host) not in wanted:
            continue
        found = found or set()
        for subset in items(get(spec, "subsets")):
            name = get_str(subset, "name")
            if name:
                found.add(name)
    return found
