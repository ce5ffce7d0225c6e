"""Istio ``VirtualService`` (``networking.istio.io`` v1alpha3, v1beta1, v1).

Two layouts are common and both work:

- by subset (the GitOps-for-Istio guide): one host, ``subset: ga`` and ``subset: canary``, the
  subsets declared by a ``DestinationRule``;
- by host (Flagger): ``host: podinfo-primary`` and ``host: podinfo-canary`` (a destination without a
  subset matches by its host, or by the first DNS label of it: ``podinfo-canary.test.svc``).

A file may hold several documents and a VirtualService several ``http`` routes: the route is chosen
by name (``spec.route.name``), else it is the one route that holds both destinations.

Strategies: an A/B match is an ``http`` route with ``match`` (headers, cookies as a regex on the
``cookie`` header, query parameters) placed right before the default route; a mirror is the default
route's ``mirror`` and ``mirrorPercentage``; session affinity is a ``Set-Cookie`` response header on
the canary destination plus a route for the cookie's holders, as Flagger writes them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from rollouts.routes import _blocks as blocks
from rollouts.routes._engine import (
    Entry,
    Group,
    compose,
    describe,
    documents_of_kind,
    get,
    get_str,
    items,
)
from rollouts.routes._strategy import StrategyEditor, mapping_items
from rollouts.routes.errors import RouteError
from rollouts.routes.strategies import MATCH_KINDS, RequestMatch, StringMatch

API_VERSIONS = (
    "networking.istio.io/v1alpha3",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1",
)


class VirtualServiceEditor(StrategyEditor):
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
                groups.append(
                    Group(
                        label=label,
                        route_name=name,
                        seq=route,  # type: ignore[arg-type]
                        entries=entries,
                        item=http,  # type: ignore[arg-type]
                        routes=get(spec, "http"),  # type: ignore[arg-type]
                        index=index,
                    )
                )
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

    # -- strategies -------------------------------------------------------------------------------

    routing_keys = frozenset({"name", "match", "route", "mirror", "mirrorPercentage", "mirrors"})

    def read_matches(self, item: MappingNode, label: str) -> tuple[RequestMatch, ...]:
        """The ``match`` alternatives of an ``http`` route."""
        match = get(item, "match")
        if match is None:
            return ()
        out: list[RequestMatch] = []
        for index, alternative in enumerate(items(match)):
            where = f"{self.source}: {label}: match[{index}]"
            if not isinstance(alternative, MappingNode):
                raise RouteError(f"{where}: must be a mapping")
            headers: list[tuple[str, StringMatch]] = []
            query: list[tuple[str, StringMatch]] = []
            path = method = None
            for key, value in mapping_items(alternative):
                if key == "name":
                    continue
                if key == "headers":
                    headers = [
                        (n.lower(), _string_match(v, f"{where}.headers.{n}")) for n, v in mapping_items(value)
                    ]
                elif key == "queryParams":
                    query = [
                        (n, _string_match(v, f"{where}.queryParams.{n}")) for n, v in mapping_items(value)
                    ]
                elif key == "uri":
                    path = _string_match(value, f"{where}.uri")
                elif key == "method":
                    condition = _string_match(value, f"{where}.method")
                    if condition.kind != "exact":
                        raise RouteError(f"{where}.method: only an exact method is supported here")
                    method = condition.value
                else:
                    raise RouteError(
                        f"{where}: match field {key!r} is not supported next to a canary route "
                        "(supported: headers, queryParams, uri, method)"
                    )
            try:
                out.append(RequestMatch(headers=tuple(headers), query=tuple(query), path=path, method=method))
            except RouteError as exc:
                raise RouteError(f"{where}: {exc}") from None
        return tuple(out)

    def render_route(
        self, matches: tuple[RequestMatch, ...], destination: Mapping[str, object]
    ) -> dict[str, object]:
        """An ``http`` route: ``match`` alternatives, one destination."""
        alternatives: list[dict[str, object]] = []
        for match in matches:
            alternative: dict[str, object] = {}
            if match.headers:
                alternative["headers"] = {name: {c.kind: c.value} for name, c in match.headers}
            if match.query:
                alternative["queryParams"] = {name: {c.kind: c.value} for name, c in match.query}
            if match.path is not None:
                alternative["uri"] = {match.path.kind: match.path.value}
            if match.method is not None:
                alternative["method"] = {"exact": match.method}
            alternatives.append(alternative)
        return {"match": alternatives, "route": [{"destination": dict(destination)}]}

    def split_route(
        self,
        route: dict[str, object],
        stable: Mapping[str, object],
        canary: Mapping[str, object],
        weight: int,
    ) -> dict[str, object]:
        """``route`` to both destinations, with weights."""
        destinations = [
            {"destination": dict(stable), "weight": 100 - weight},
            {"destination": dict(canary), "weight": weight},
        ]
        return {**route, "route": destinations}

    def canary_destination(self, group: Group, stable: Entry) -> dict[str, object]:
        """The stable destination's host, subset and port, renamed to the canary."""
        destination = get(stable.node, "destination")
        host = get_str(destination, "host") or ""
        out: dict[str, object] = {}
        if stable.word == "subset":
            out["host"] = host
            out["subset"] = self.canary
        else:
            label0 = host.split(".", 1)[0]
            out["host"] = self.canary + host[len(label0) :]
        port = get_str(get(destination, "port"), "number")
        if port is not None:
            out["port"] = {"number": int(port) if port.isdigit() else port}
        return out

    def stable_destination(self, stable: Entry) -> dict[str, object]:
        """The stable destination's host, subset and port."""
        destination = get(stable.node, "destination")
        out: dict[str, object] = {"host": get_str(destination, "host") or ""}
        subset = get_str(destination, "subset")
        if subset is not None:
            out["subset"] = subset
        port = get_str(get(destination, "port"), "number")
        if port is not None:
            out["port"] = {"number": int(port) if port.isdigit() else port}
        return out

    def check_others(self, text: str, group: Group, ours: tuple[RequestMatch, ...], skip: set[int]) -> None:
        """A route a person wrote before the default one with the very conditions of ours takes all
        of our requests: refused, naming it. (Ours carries the default route's conditions, so it never
        takes what a route after the default one would have taken.)"""
        for other in self.find_groups(self.documents(text)):
            if other.routes is not group.routes or other.index >= group.index or other.item is None:
                continue
            if blocks.marker_line(text, other.item) in blocks.OUR_MARKERS:
                continue
            theirs = set(self.read_matches(other.item, other.label))
            if theirs and any(m in theirs for m in ours):
                raise RouteError(
                    f"{self.source}: {other.label}: already takes the requests of the canary match "
                    "(same conditions, earlier route); ours would get none. Remove it or change the match"
                )

    def read_mirror(self, item: MappingNode, label: str) -> tuple[str, float] | None:
        """The route's ``mirror`` (subset, or first label of the host) and ``mirrorPercentage``."""
        if get(item, "mirrors") is not None:
            raise RouteError(f"{self.source}: {label}: has 'mirrors' (a list); only 'mirror' is supported")
        mirror = get(item, "mirror")
        if mirror is None:
            return None
        host = get_str(mirror, "host")
        if host is None:
            raise RouteError(f"{self.source}: {label}: mirror has no host")
        target = get_str(mirror, "subset") or host.split(".", 1)[0]
        percentage = get(get(item, "mirrorPercentage"), "value")
        percent = 100.0
        if isinstance(percentage, ScalarNode):
            try:
                percent = float(str(percentage.value))
            except ValueError:
                raise RouteError(f"{self.source}: {label}: mirrorPercentage.value must be a number") from None
            if not 0 <= percent <= 100:
                raise RouteError(
                    f"{self.source}: {label}: mirrorPercentage.value must be 0-100, got {percent:g}"
                )
        return target, percent

    def write_mirror(self, text: str, group: Group, stable: Entry, percent: float | None) -> str:
        """Set, change or remove the default route's ``mirror`` and ``mirrorPercentage``."""
        assert group.item is not None
        where = f"{self.source}: {group.label}"
        percentage = get(get(group.item, "mirrorPercentage"), "value")
        if (
            percent is not None
            and get(group.item, "mirror") is not None
            and isinstance(percentage, ScalarNode)
        ):
            return (
                text[: percentage.start_mark.index]
                + blocks.scalar(float(percent))
                + text[percentage.end_mark.index :]
            )
        for key in ("mirrorPercentage", "mirror"):
            span = blocks.key_span(text, group.item, key, where)
            if span is not None:
                text = blocks.remove(text, span)
                group = self._select(text)
        if percent is None:
            return text
        assert group.item is not None
        stable, _canary = self._pair(group)
        value: dict[str, object] = {"mirror": self.canary_destination(group, stable)}
        if percent < 100:
            value["mirrorPercentage"] = {"value": float(percent)}
        return self.add_keys(text, group.item, value, self.style_of(text, group))

    def cookie_of(self, entry: Entry, label: str) -> str | None:
        """``headers.response.add`` (or ``set``) ``Set-Cookie`` of a route destination."""
        response = get(get(entry.node, "headers"), "response")
        for operation in ("add", "set"):
            for name, value in mapping_items(get(response, operation)):
                if name.lower() == "set-cookie" and isinstance(value, ScalarNode):
                    return str(value.value)
        return None

    def write_cookie(self, text: str, group: Group, entry: Entry, cookie: str | None) -> str:
        """Add or remove the destination's ``headers`` block holding only our ``Set-Cookie``."""
        where = f"{self.source}: {group.label}: {entry.word} {entry.names[0]!r}"
        headers = get(entry.node, "headers")
        if headers is not None:
            if (
                [k for k, _ in mapping_items(headers)] != ["response"]
                or [k for k, _ in mapping_items(get(headers, "response"))] != ["add"]
                or len(mapping_items(get(get(headers, "response"), "add"))) != 1
            ):
                raise RouteError(f"{where}: has response headers of its own; add the session cookie by hand")
            span = blocks.key_span(text, entry.node, "headers", where)
            assert span is not None
            text = blocks.remove(text, span)
        if cookie is None:
            return text
        side = "canary" if self.canary in entry.names else "stable"
        group = self._select(text)
        stable, canary = self._pair(group)
        target = canary if side == "canary" else stable
        assert target is not None
        value = {"headers": {"response": {"add": {"Set-Cookie": cookie}}}}
        return self.add_keys(text, target.node, value, self.style_of(text, group))


def _string_match(node: Node, where: str) -> StringMatch:
    pairs = mapping_items(node)
    if len(pairs) != 1 or pairs[0][0] not in MATCH_KINDS or not isinstance(pairs[0][1], ScalarNode):
        raise RouteError(f"{where}: must be one of {', '.join(MATCH_KINDS)} with a string")
    try:
        return StringMatch(pairs[0][0], str(pairs[0][1].value))
    except RouteError as exc:
        raise RouteError(f"{where}: {exc}") from None


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
