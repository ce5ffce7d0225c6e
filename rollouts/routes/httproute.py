"""Gateway API ``HTTPRoute`` (``gateway.networking.k8s.io``): ``rules[].backendRefs[].weight``.

Backends are named by ``name`` (a Service). A rule is chosen by its ``name`` (Gateway API v1.2+),
else it is the one rule that holds both backends. Gateway API weights are proportions with a
default of 1; we write percentages and require every weight to be spelled out when there are two.

Strategies: an A/B match is a rule with ``matches`` (headers, a cookie as a regular expression on the
``cookie`` header, query parameters; a header prefix becomes a regular expression) carrying the
default rule's path and method; a mirror is a ``RequestMirror`` filter on the default rule (its
``percent`` is Gateway API's experimental channel, written only below 100); session affinity is a
``ResponseHeaderModifier`` filter on the canary backendRef plus a rule for the cookie's holders.
Gateway API orders rules by how specific their matches are, not by position, so a rule a person
wrote that ours would outrank is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from rollouts.routes import _blocks as blocks
from rollouts.routes._engine import (
    Entry,
    Group,
    describe,
    documents_of_kind,
    get,
    get_str,
    items,
    keyed_entry,
    newline_of,
)
from rollouts.routes._strategy import StrategyEditor, mapping_items
from rollouts.routes.base import RouteError
from rollouts.routes.strategies import RequestMatch, Rule, StringMatch

API_GROUPS = ("gateway.networking.k8s.io",)


class HTTPRouteEditor(StrategyEditor):
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
                groups.append(
                    Group(
                        label=label,
                        route_name=name,
                        seq=refs,  # type: ignore[arg-type]
                        entries=entries,
                        item=rule,  # type: ignore[arg-type]
                        routes=get(get(doc, "spec"), "rules"),  # type: ignore[arg-type]
                        index=index,
                    )
                )
        return groups

    def _entry(self, item: Node, label: str) -> Entry:
        return keyed_entry(
            item, key="name", word="backend", item_word="backendRef", label=label, source=self.source
        )

    # -- strategies -------------------------------------------------------------------------------

    routing_keys = frozenset({"name", "matches", "backendRefs"})

    def check_copy(self, group: Group) -> None:
        """The default rule's filters are copied into ours: not when they mirror."""
        assert group.item is not None
        if any(get_str(f, "type") == "RequestMirror" for f in items(get(group.item, "filters"))):
            raise RouteError(
                f"{self.source}: {group.label}: has a RequestMirror filter; remove the mirror before "
                "adding a match or session affinity rule (it would be copied into it)"
            )

    def read_matches(self, item: MappingNode, label: str) -> tuple[RequestMatch, ...]:
        """The ``matches`` of a rule; a ``PathPrefix`` of ``/`` is no condition."""
        out: list[RequestMatch] = []
        for index, alternative in enumerate(items(get(item, "matches"))):
            where = f"{self.source}: {label}: matches[{index}]"
            if not isinstance(alternative, MappingNode):
                raise RouteError(f"{where}: must be a mapping")
            path: StringMatch | None = None
            method: str | None = None
            headers: list[tuple[str, StringMatch]] = []
            query: list[tuple[str, StringMatch]] = []
            for key, value in mapping_items(alternative):
                if key == "path":
                    kind = get_str(value, "type") or "PathPrefix"
                    text = get_str(value, "value") or "/"
                    if kind not in _PATH_KINDS:
                        raise RouteError(f"{where}.path.type: unsupported {kind!r}")
                    path = (
                        None
                        if (kind, text) == ("PathPrefix", "/")
                        else _match(_PATH_KINDS[kind], text, where)
                    )
                elif key == "method":
                    method = get_str(alternative, "method")
                elif key in ("headers", "queryParams"):
                    pairs = [
                        self._named(entry, f"{where}.{key}[{i}]") for i, entry in enumerate(items(value))
                    ]
                    (headers if key == "headers" else query).extend(
                        (name.lower() if key == "headers" else name, condition) for name, condition in pairs
                    )
                else:
                    raise RouteError(f"{where}: match field {key!r} is not supported next to a canary rule")
            try:
                out.append(RequestMatch(headers=tuple(headers), query=tuple(query), path=path, method=method))
            except RouteError as exc:
                raise RouteError(f"{where}: {exc}") from None
        if out and all(m == RequestMatch() for m in out):
            return ()
        return tuple(out)

    def _named(self, entry: Node, where: str) -> tuple[str, StringMatch]:
        name, value = get_str(entry, "name"), get_str(entry, "value")
        kind = get_str(entry, "type") or "Exact"
        if name is None or value is None:
            raise RouteError(f"{where}: needs a name and a value")
        if kind not in _VALUE_KINDS:
            raise RouteError(f"{where}.type: unsupported {kind!r} (Exact or RegularExpression)")
        return name, _match(_VALUE_KINDS[kind], value, where)

    def render_route(
        self, matches: tuple[RequestMatch, ...], destination: Mapping[str, object]
    ) -> dict[str, object]:
        """A rule: ``matches``, one backendRef."""
        alternatives: list[dict[str, object]] = []
        for match in matches:
            alternative: dict[str, object] = {}
            if match.path is not None:
                kind = {"exact": "Exact", "prefix": "PathPrefix", "regex": "RegularExpression"}[
                    match.path.kind
                ]
                alternative["path"] = {"type": kind, "value": match.path.value}
            if match.method is not None:
                alternative["method"] = match.method
            for key, pairs in (("headers", match.headers), ("queryParams", match.query)):
                if pairs:
                    alternative[key] = [_render_named(name, condition) for name, condition in pairs]
            alternatives.append(alternative)
        return {"matches": alternatives, "backendRefs": [dict(destination)]}

    def split_route(
        self,
        route: dict[str, object],
        stable: Mapping[str, object],
        canary: Mapping[str, object],
        weight: int,
    ) -> dict[str, object]:
        """``route`` to both backendRefs, with weights."""
        backends = [{**stable, "weight": 100 - weight}, {**canary, "weight": weight}]
        return {**route, "backendRefs": backends}

    def canary_destination(self, group: Group, stable: Entry) -> dict[str, object]:
        """The stable backendRef's fields (group, kind, namespace, port), named for the canary."""
        out: dict[str, object] = {"name": self.canary}
        for key, value in mapping_items(stable.node):
            if key in ("name", "weight", "filters") or not isinstance(value, ScalarNode):
                continue
            out[key] = int(value.value) if key == "port" and str(value.value).isdigit() else str(value.value)
        return out

    def stable_destination(self, stable: Entry) -> dict[str, object]:
        """The stable backendRef's fields but its weight and filters."""
        out: dict[str, object] = {}
        for key, value in mapping_items(stable.node):
            if key in ("weight", "filters") or not isinstance(value, ScalarNode):
                continue
            out[key] = int(value.value) if key == "port" and str(value.value).isdigit() else str(value.value)
        return out

    def check_others(self, text: str, group: Group, ours: tuple[RequestMatch, ...], skip: set[int]) -> None:
        """Gateway API gives precedence to the more specific match: a rule a person wrote on the same
        path with header or query conditions that ours would outrank, or that takes exactly our
        requests, is refused, naming it."""
        for other in self.find_groups(self.documents(text)):
            if other.routes is not group.routes or other.index in skip or other.item is None:
                continue
            if blocks.marker_line(text, other.item) in blocks.OUR_MARKERS:
                continue
            for theirs in self.read_matches(other.item, other.label):
                if not (theirs.headers or theirs.query):
                    continue
                for mine in ours:
                    if theirs.path != mine.path or theirs.method not in (None, mine.method):
                        continue
                    if theirs == mine or _rank(mine) > _rank(theirs):
                        raise RouteError(
                            f"{self.source}: {other.label}: a match rule on the same path that the canary "
                            "match rule would outrank or duplicate (Gateway API prefers more header and "
                            "query conditions); remove it or change the match"
                        )

    def order(self, rules: list[Rule]) -> list[Rule]:
        """Gateway API precedence: one rule per match alternative, most specific first (then as written)."""
        split: list[Rule] = []
        for rule in rules:
            for match in rule.matches or (RequestMatch(),):
                split.append(Rule((match,), rule.weights, rule.mirror, rule.set_cookie, rule.label))
        return sorted(split, key=lambda r: _precedence(r.matches[0]))

    def _mirrors(self, item: MappingNode, label: str) -> list[tuple[Node, str, float]]:
        out: list[tuple[Node, str, float]] = []
        for filter_ in items(get(item, "filters")):
            if get_str(filter_, "type") != "RequestMirror":
                continue
            mirror = get(filter_, "requestMirror")
            name = get_str(get(mirror, "backendRef"), "name")
            if name is None:
                raise RouteError(f"{self.source}: {label}: RequestMirror has no backendRef.name")
            where = f"{self.source}: {label}: RequestMirror"
            percent = 100.0
            if get(mirror, "percent") is not None:
                percent = _number(get_str(mirror, "percent"), f"{where}.percent")
            elif get(mirror, "fraction") is not None:
                fraction = get(mirror, "fraction")
                numerator = _number(get_str(fraction, "numerator"), f"{where}.fraction.numerator")
                denominator = _number(
                    get_str(fraction, "denominator") or "100", f"{where}.fraction.denominator"
                )
                if denominator <= 0:
                    raise RouteError(f"{where}.fraction.denominator: must be positive")
                percent = 100.0 * numerator / denominator
            out.append((filter_, name, percent))
        return out

    def read_mirror(self, item: MappingNode, label: str) -> tuple[str, float] | None:
        """The rule's ``RequestMirror`` filter: backend name and percent (100 without ``percent``)."""
        mirrors = self._mirrors(item, label)
        others = [name for _, name, _ in mirrors if name != self.canary]
        if others:
            return others[0], 100.0
        return (mirrors[0][1], mirrors[0][2]) if mirrors else None

    def write_mirror(self, text: str, group: Group, stable: Entry, percent: float | None) -> str:
        """Set, change or remove the default rule's ``RequestMirror`` filter to the canary."""
        assert group.item is not None
        text = self._drop_filter(
            text, group.item, [f for f, _, _ in self._mirrors(group.item, group.label)], group.label
        )
        if percent is None:
            return text
        group = self._select(text)
        stable, _canary = self._pair(group)
        assert group.item is not None
        backend = {
            k: v
            for k, v in self.canary_destination(group, stable).items()
            if k in ("name", "namespace", "port", "kind", "group")
        }
        mirror: dict[str, object] = {"backendRef": backend}
        if percent < 100 and float(percent).is_integer():
            mirror["percent"] = int(percent)
        elif percent < 100:  # ``percent`` is an integer; finer shares are a fraction
            mirror["fraction"] = {"numerator": round(percent * 100), "denominator": 10000}
        return self._add_filter(text, group, group.item, {"type": "RequestMirror", "requestMirror": mirror})

    def cookie_of(self, entry: Entry, label: str) -> str | None:
        """``Set-Cookie`` added or set by the backendRef's ``ResponseHeaderModifier`` filter."""
        for filter_ in items(get(entry.node, "filters")):
            modifier = get(filter_, "responseHeaderModifier")
            for operation in ("add", "set"):
                for header_ in items(get(modifier, operation)):
                    if (get_str(header_, "name") or "").lower() == "set-cookie":
                        return get_str(header_, "value")
        return None

    def write_cookie(self, text: str, group: Group, entry: Entry, cookie: str | None) -> str:
        """Add or remove the backendRef's filter that sets our cookie."""
        ours = [
            f
            for f in items(get(entry.node, "filters"))
            if get_str(f, "type") == "ResponseHeaderModifier"
            and [k for k, _ in mapping_items(get(f, "responseHeaderModifier"))] == ["add"]
            and len(items(get(get(f, "responseHeaderModifier"), "add"))) == 1
        ]
        if cookie is not None or ours:
            text = self._drop_filter(text, entry.node, ours, group.label)
        if cookie is None:
            return text
        side = "canary" if self.canary in entry.names else "stable"
        group = self._select(text)
        stable, canary = self._pair(group)
        target = canary if side == "canary" else stable
        assert target is not None
        modifier = {"add": [{"name": "Set-Cookie", "value": cookie}]}
        filter_ = {"type": "ResponseHeaderModifier", "responseHeaderModifier": modifier}
        return self._add_filter(text, group, target.node, filter_)

    def _drop_filter(self, text: str, owner: MappingNode, filters: list[Node], label: str) -> str:
        """``text`` without ``filters`` (items of ``owner.filters``), or the whole key when they are all."""
        if not filters:
            return text
        every = items(get(owner, "filters"))
        if len(filters) == len(every):
            span = blocks.key_span(text, owner, "filters", f"{self.source}: {label}")
            assert span is not None
            return blocks.remove(text, span)
        for filter_ in sorted(filters, key=lambda f: -f.start_mark.index):
            text = blocks.remove(text, blocks.item_span(text, filter_, with_marker=False))
        return text

    def _add_filter(self, text: str, group: Group, owner: MappingNode, filter_: Mapping[str, object]) -> str:
        style = self.style_of(text, group)
        existing = get(owner, "filters")
        if existing is None:
            return self.add_keys(text, owner, {"filters": [filter_]}, style)
        if getattr(existing, "flow_style", False) or not items(existing):
            raise RouteError(
                f"{self.source}: {group.label}: filters are in flow style; add the filter by hand"
            )
        last = items(existing)[-1]
        lines = blocks.render_items([filter_], blocks.dash_column(text, last), style, newline_of(text))
        return blocks.insert_after(text, last, lines)


_PATH_KINDS = {"PathPrefix": "prefix", "Exact": "exact", "RegularExpression": "regex"}
_VALUE_KINDS = {"Exact": "exact", "RegularExpression": "regex"}


def _number(text: str | None, where: str) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise RouteError(f"{where}: must be a number, got {text!r}") from None
    if not 0 <= value <= 1e9:
        raise RouteError(f"{where}: out of range: {text!r}")
    return value


def _match(kind: str, value: str, where: str) -> StringMatch:
    try:
        return StringMatch(kind, value)  # type: ignore[arg-type]
    except RouteError as exc:
        raise RouteError(f"{where}: {exc}") from None


def _render_named(name: str, condition: StringMatch) -> dict[str, object]:
    if condition.kind == "exact":
        return {"name": name, "value": condition.value}
    return {"name": name, "type": "RegularExpression", "value": condition.as_regex()}


def _rank(match: RequestMatch) -> tuple[int, int]:
    return len(match.headers), len(match.query)


def _precedence(match: RequestMatch) -> tuple[int, int, int, int, int]:
    path = match.path
    exact = 0 if path is not None and path.kind == "exact" else 1
    length = len(path.value) if path is not None and path.kind != "regex" else 1
    return exact, -length, 0 if match.method else 1, -len(match.headers), -len(match.query)
