"""The strategies' edits shared by the traffic APIs that have routes (VirtualService, HTTPRoute).

An A/B match or a session-affinity cookie is a route of ours placed right before the default
route (the one whose weights the steps change), carrying the default route's own conditions too, so
that it takes a subset of what the default route takes and never a request another route would have
taken. A mirror is a block on the default route. Each API supplies the hooks (how its matches,
destinations, mirrors and response headers are spelled); the flows (find ours, refuse what is not
ours, remove, render, insert) live here, once.

Nothing here writes weights; the weight engine does. An edit never touches a route a person wrote:
what would change one is refused with an error naming the route.
"""

from __future__ import annotations

from collections.abc import Mapping

from ruamel.yaml.nodes import MappingNode, Node

from rollouts.routes import _blocks as blocks
from rollouts.routes._engine import (
    NULL_TAG,
    Entry,
    Group,
    SplitEditor,
    _int,
    content_end,
    items,
    line_end,
    newline_of,
)
from rollouts.routes.base import RouteError, Weights
from rollouts.routes.strategies import Match, RequestMatch, RouteTable, Rule, SessionAffinity


class StrategyEditor(SplitEditor):
    """A :class:`SplitEditor` that also writes match routes, mirrors and session affinity."""

    # -- hooks, per API ---------------------------------------------------------------------------

    def read_matches(self, item: MappingNode, label: str) -> tuple[RequestMatch, ...]:
        """The match alternatives of route ``item`` (empty: it takes every request)."""
        raise NotImplementedError

    def render_route(
        self, matches: tuple[RequestMatch, ...], destination: Mapping[str, object]
    ) -> dict[str, object]:
        """Our route: ``matches`` to the canary ``destination``."""
        raise NotImplementedError

    def canary_destination(self, group: Group, stable: Entry) -> dict[str, object]:
        """The canary's destination, spelled like the stable entry's (host, subset, port)."""
        raise NotImplementedError

    def stable_destination(self, stable: Entry) -> dict[str, object]:
        """The stable entry's destination, as written (host, subset, port)."""
        raise NotImplementedError

    def check_others(self, text: str, group: Group, ours: tuple[RequestMatch, ...], skip: set[int]) -> None:
        """Refuse when a route a person wrote would be shadowed by (or shadow) ours."""

    def split_route(
        self,
        route: dict[str, object],
        stable: Mapping[str, object],
        canary: Mapping[str, object],
        weight: int,
    ) -> dict[str, object]:
        """Our ``route`` with its destinations split: ``stable`` at ``100 - weight``, ``canary`` at
        ``weight`` percent."""
        raise NotImplementedError

    #: Keys of the default route that are about choosing requests and destinations; every other key
    #: (timeouts, retries, rewrites, CORS, header edits, filters) is copied into our routes, as Flagger
    #: copies them, so the canary's requests are handled like the default route's.
    routing_keys: frozenset[str] = frozenset()

    def check_copy(self, group: Group) -> None:
        """Refuse a default route whose other keys cannot be copied into ours as they are."""

    def read_mirror(self, item: MappingNode, label: str) -> tuple[str, float] | None:
        """(target name, percent) of the default route's mirror, or None."""
        raise NotImplementedError

    def write_mirror(self, text: str, group: Group, stable: Entry, percent: float | None) -> str:
        """The default route with its mirror to the canary set to ``percent`` (None: removed)."""
        raise NotImplementedError

    def cookie_of(self, entry: Entry, label: str) -> str | None:
        """The ``Set-Cookie`` value the destination ``entry`` adds to its answers, or None."""
        raise NotImplementedError

    def write_cookie(self, text: str, group: Group, entry: Entry, cookie: str | None) -> str:
        """The destination ``entry`` with its ``Set-Cookie`` response header set (None: removed)."""
        raise NotImplementedError

    # -- the interface ------------------------------------------------------------------------------

    def set_match(self, text: str, match: Match | None) -> str:
        """``text`` with our A/B match route to the canary (None: without it)."""
        if match is not None and not isinstance(match, Match):
            raise RouteError(f"{self.source}: match must be a Match, got {match!r}")
        text = self._drop_route(text, blocks.MATCH_MARKER)
        if match is None:
            return text
        if self._ours(text, self._select(text), blocks.AFFINITY_MARKER) is not None:
            raise RouteError(
                f"{self.source}: {self._select(text).label}: has a session affinity route; an A/B match "
                "and session affinity cannot be combined"
            )
        split = match.weight if match.weight < 100 else None
        return self._add_route(text, match.alternatives, blocks.MATCH_MARKER, split=split)

    def set_affinity(self, text: str, affinity: SessionAffinity | None) -> str:
        """``text`` with session affinity for the canary (None: without it): the canary's answers
        set the cookie, and our route before the default one sends the cookie's holders to it; with
        a primary cookie, GA's answers set that one and a second route keeps its holders on GA."""
        if affinity is not None and not isinstance(affinity, SessionAffinity):
            raise RouteError(f"{self.source}: affinity must be a SessionAffinity, got {affinity!r}")
        for marker in (blocks.AFFINITY_MARKER, blocks.PRIMARY_AFFINITY_MARKER):
            text = self._drop_route(text, marker)
        for side in ("canary", "stable"):
            text = self._drop_cookie(text, side, affinity)
        if affinity is None:
            return text
        group = self._select(text)
        if self._ours(text, group, blocks.MATCH_MARKER) is not None:
            raise RouteError(
                f"{self.source}: {group.label}: has an A/B match route; an A/B match and session "
                "affinity cannot be combined"
            )
        _stable, canary = self._pair(group)
        if canary is None:
            raise RouteError(
                f"{self.source}: {group.label}: no {self.entry_word} {self.canary!r} to set the session "
                "cookie on; write the step's weights first"
            )
        text = self.write_cookie(text, group, canary, affinity.set_cookie)
        primary = affinity.primary_set_cookie
        if primary is not None:
            group = self._select(text)
            stable, _canary = self._pair(group)
            text = self.write_cookie(text, group, stable, primary)
        name, condition = affinity.condition
        text = self._add_route(text, (RequestMatch(headers=((name, condition),)),), blocks.AFFINITY_MARKER)
        if affinity.primary_condition is not None:
            pinned = RequestMatch(headers=(affinity.primary_condition,))
            text = self._add_route(text, (pinned,), blocks.PRIMARY_AFFINITY_MARKER, to_stable=True)
        return text

    def _drop_cookie(self, text: str, side: str, affinity: SessionAffinity | None) -> str:
        """``text`` without our ``Set-Cookie`` on the ``side`` destination; a cookie not ours is refused."""
        group = self._select(text)
        stable, canary = self._pair(group)
        entry = canary if side == "canary" else stable
        if entry is None:
            return text
        current = self.cookie_of(entry, group.label)
        if current is None:
            return text
        if not self._is_our_cookie(current, affinity):
            if side == "stable" and (affinity is None or affinity.primary_cookie_name is None):
                return text  # a person's cookie on GA; ours would not go there
            raise RouteError(
                f"{self.source}: {group.label}: {entry.word} {entry.names[0]!r} already sets "
                f"a Set-Cookie header that is not ours ({current!r})"
            )
        return self.write_cookie(text, group, entry, None)

    @staticmethod
    def _is_our_cookie(current: str, affinity: SessionAffinity | None) -> bool:
        # Ours: "name=value; Max-Age=N; Path=/" as SessionAffinity writes it, any name and value.
        parts = [p.strip() for p in current.split(";")]
        return len(parts) == 3 and parts[1].startswith("Max-Age=") and parts[2] == "Path=/"

    def set_mirror(self, text: str, percent: float | None) -> str:
        """``text`` with the default route mirroring ``percent`` of its requests to the canary
        (None: no mirror). A mirror to anything else is refused, naming the route."""
        if percent is not None and (
            isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 < percent <= 100
        ):
            raise RouteError(f"{self.source}: mirror percentage must be > 0 and <= 100, got {percent!r}")
        group = self._select(text)
        stable, _canary = self._pair(group)
        self.validate_names(group, text)
        assert group.item is not None
        current = self.read_mirror(group.item, group.label)
        if current is not None and current[0] != self.canary:
            raise RouteError(
                f"{self.source}: {group.label}: mirrors to {current[0]!r} already; one route has one "
                f"mirror (remove it, or mirror to {self.canary!r})"
            )
        if current is None and percent is None:
            return text
        if current is not None and percent is not None and current[1] == float(percent):
            return text
        return self.write_mirror(text, group, stable, percent)

    def table(self, text: str) -> RouteTable:
        """The routes of the file that lead to the stable or canary, in the order they apply."""
        group = self._select(text)
        self._pair(group)
        self.validate_names(group, text)
        if group.routes is None:
            return RouteTable(rules=(Rule(matches=(), weights=self.read(text), label=group.label),))
        rules: list[Rule] = []
        for other in self.find_groups(self.documents(text)):
            if other.routes is not group.routes or other.item is None:
                continue
            weights = self._rule_weights(other)
            if weights is None:
                continue
            mirror = self.read_mirror(other.item, other.label)
            cookies: list[tuple[str, str]] = []
            for entry in other.entries:
                cookie = self.cookie_of(entry, other.label)
                if cookie is not None and (self.stable in entry.names or self.canary in entry.names):
                    cookies.append(("canary" if self.canary in entry.names else "stable", cookie))
            rules.append(
                Rule(
                    matches=self.read_matches(other.item, other.label),
                    weights=weights,
                    mirror=mirror[1] if mirror is not None and mirror[0] == self.canary else None,
                    set_cookie=tuple(cookies),
                    label=other.label,
                )
            )
        return RouteTable(rules=tuple(self.order(rules)))

    def order(self, rules: list[Rule]) -> list[Rule]:
        """The order in which the API applies its routes (Istio: as written)."""
        return rules

    # -- flows ----------------------------------------------------------------------------------------

    def _rule_weights(self, group: Group) -> Weights | None:
        """The split of a route among stable and canary; None when it leads elsewhere."""
        shares = {"stable": 0, "canary": 0, "other": 0}
        for entry in group.entries:
            node = entry.weight
            if node is None or node.tag == NULL_TAG:
                share = 100 if len(group.entries) == 1 else (self.missing_weight_default or 0)
            else:
                share = _int(str(node.value)) or 0
            name = (
                "canary"
                if self.canary in entry.names
                else "stable"
                if self.stable in entry.names
                else "other"
            )
            shares[name] += share
        stable, canary = shares["stable"], shares["canary"]
        if stable + canary == 0 or shares["other"]:
            return None
        canary_share = round(100 * canary / (stable + canary))
        return Weights(stable=100 - canary_share, canary=canary_share)

    def _ours(self, text: str, group: Group, marker: str) -> Node | None:
        """Our route with ``marker`` among the default route's siblings, or None."""
        found = [item for item in items(group.routes) if blocks.marker_line(text, item) == marker]
        if len(found) > 1:
            raise RouteError(f"{self.source}: {len(found)} routes are marked '# {marker}'; keep one")
        return found[0] if found else None

    def _drop_route(self, text: str, marker: str) -> str:
        group = self._select(text)
        if group.routes is None:
            raise RouteError(f"{self.source}: {self.kind} has no routes to add a match to")
        ours = self._ours(text, group, marker)
        if ours is None:
            return text
        return blocks.remove(text, blocks.item_span(text, ours, with_marker=True))

    def _candidates(self, text: str) -> list[Group]:
        """Every group but our own match route: a match route that splits the segment holds both
        destinations too, and is never the default route whose weights the steps change."""
        groups = super()._candidates(text)
        kept = [
            g for g in groups if g.item is None or blocks.marker_line(text, g.item) != blocks.MATCH_MARKER
        ]
        return kept or groups

    def _add_route(
        self,
        text: str,
        alternatives: tuple[RequestMatch, ...],
        marker: str,
        *,
        to_stable: bool = False,
        split: int | None = None,
    ) -> str:
        group = self._select(text)
        stable, _canary = self._pair(group)
        self.validate_names(group, text)
        assert group.item is not None and group.routes is not None
        if group.routes.flow_style:
            raise RouteError(f"{self.source}: {group.label}: the routes are in flow style; cannot add one")
        defaults = self.read_matches(group.item, group.label) or (RequestMatch(),)
        where = f"{self.source}: {group.label}"
        ours = tuple(a.merged(d, where) for a in alternatives for d in defaults)
        self.check_others(text, group, ours, {group.index})
        destination = self.stable_destination(stable) if to_stable else self.canary_destination(group, stable)
        route = self.render_route(ours, destination)
        if split is not None:
            route = self.split_route(route, self.stable_destination(stable), destination, split)
        column = blocks.dash_column(text, group.item)
        if group.item.flow_style:
            raise RouteError(f"{where}: is in flow style; cannot place a route before it")
        # Our keys line up with the default route's, so its other keys are copied as they are written.
        gap = blocks.first_key_column(group.item) - column
        detected = blocks.detect(text, group.routes, group.item)
        style = blocks.Style(step=detected.step, seq_indent=detected.seq_indent, dash_gap=max(1, gap))
        nl = newline_of(text)
        self.check_copy(group)
        copied = blocks.copy_keys(text, group.item, self.routing_keys)
        lines = [" " * column + "# " + marker + nl, *blocks.render_items([route], column, style, nl), *copied]
        # Above the comment lines right above the default route: they are about it.
        floor = line_end(text, content_end(group.routes.value[group.index - 1])) if group.index > 0 else 0
        return blocks.insert_before(text, group.item, floor, lines)

    # -- helpers for the hooks -------------------------------------------------------------------------

    def add_keys(
        self, text: str, mapping: MappingNode, value: Mapping[str, object], style: blocks.Style
    ) -> str:
        """``value``'s keys appended to block mapping ``mapping``, in ``style``."""
        if mapping.flow_style:
            raise RouteError(f"{self.source}: cannot add {', '.join(value)} to a flow-style mapping")
        lines = blocks.render(value, blocks.first_key_column(mapping), style, newline_of(text))
        return blocks.insert_after(text, mapping, lines)

    def style_of(self, text: str, group: Group) -> blocks.Style:
        """The file's indentation around the default route."""
        assert group.routes is not None
        return blocks.detect(text, group.routes, group.item)


def mapping_items(node: Node | None) -> list[tuple[str, Node]]:
    """(key, value) pairs of a mapping node with scalar keys."""
    if not isinstance(node, MappingNode):
        return []
    return [(str(k.value), v) for k, v in node.value if hasattr(k, "value") and isinstance(k.value, str)]


__all__ = ["StrategyEditor", "mapping_items"]
