"""The text engine shared by every route editor: locate weights with ruamel.yaml, splice the text.

Why not ``ruamel.yaml`` load + dump? Its round trip is close to byte-exact but not exact: it applies
one indentation scheme per file (a file that indents some sequences and not others comes back
re-indented), re-wraps long scalars at its line width, and moves comments that sit at the end of a
document or before ``---``. A GitOps commit must change only the weight scalars, so we use ruamel to
*parse* (its composer records the start and end offset of every node) and replace exactly the
characters of the weight scalars in the original text. Everything else is untouched by construction.

Each traffic API describes its routes as "groups": a YAML sequence of weighted entries (Istio's
``http[].route``, Gateway API's ``rules[].backendRefs``, SMI's ``backends``). An editor only has to
find the groups and name the entries; selection, validation, reading and writing live here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rollouts.routes.base import Weights
from rollouts.routes.errors import RouteError
from rollouts.yamlsafe import ROUTE, YamlLimitError, compose_all

INT_TAG = "tag:yaml.org,2002:int"
STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"
# How many comment lines after a route we try to un-comment when the canary is "commented out".
MAX_COMMENTED_LINES = 20


def compose(text: str, source: str) -> list[Node]:
    """The node trees of every document in ``text`` (empty documents dropped), within the bounds of
    :data:`rollouts.yamlsafe.ROUTE` (size, depth, no aliases, no duplicate keys)."""
    try:
        return compose_all(text, source, ROUTE)
    except YamlLimitError as exc:
        raise RouteError(str(exc)) from None


def get(node: Node | None, key: str) -> Node | None:
    """The value of ``key`` in a mapping node, or None."""
    if not isinstance(node, MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return v  # type: ignore[no-any-return]
    return None


def get_str(node: Node | None, key: str) -> str | None:
    """The string value of ``key`` in a mapping node, or None (also for non-scalar values)."""
    value = get(node, key)
    if isinstance(value, ScalarNode) and value.tag != NULL_TAG:
        return str(value.value)
    return None


def items(node: Node | None) -> list[Node]:
    """The items of a sequence node ([] when it is not a sequence)."""
    return list(node.value) if isinstance(node, SequenceNode) else []


def walk(node: Node) -> Iterator[Node]:
    """Every node below (and including) ``node``."""
    yield node
    if isinstance(node, MappingNode):
        for k, v in node.value:
            yield from walk(k)
            yield from walk(v)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from walk(item)


def content_end(node: Node) -> int:
    """Offset just after the last character of ``node``'s content.

    Block collections end where the next token starts (after trailing comments and blank lines), so
    the end of the last scalar inside is the honest end.
    """
    ends = [
        n.end_mark.index for n in walk(node) if isinstance(n, ScalarNode) or getattr(n, "flow_style", False)
    ]
    return int(max(ends))


@dataclass(frozen=True)
class Entry:
    """One weighted destination of a group: its mapping, the scalar that names it, its weight."""

    node: MappingNode
    names: tuple[str, ...]
    # (start, end) of the characters to replace to rename this entry, and that text's value.
    name_span: tuple[int, int] | None
    weight: ScalarNode | None
    # The mapping in which a missing ``weight:`` key is inserted.
    weight_parent: MappingNode
    # What names it, for errors: "subset", "host", "backend", "service".
    word: str = "destination"


@dataclass
class Group:
    """A sequence of weighted entries; ``label`` names it in errors (document, route)."""

    label: str
    route_name: str | None
    seq: SequenceNode
    entries: list[Entry]
    # The route (``http[i]``, ``rules[i]``) holding ``seq``, and the list of routes holding it;
    # None for APIs without routes (TrafficSplit). The strategies edit around them.
    item: MappingNode | None = None
    routes: SequenceNode | None = None
    index: int = 0


class SplitEditor:
    """Reads and writes stable/canary weights of one group; concrete editors supply ``find_groups``
    (and may check names in ``validate_names``). ``entry_word`` names entries in errors about the
    group as a whole; each :class:`Entry` names itself ("subset", "host", "backend", "service")."""

    kind = "?"
    entry_word = "destination"
    # Defaults of the API when an entry has no weight: None means "only legal for a single entry".
    missing_weight_default: int | None = None

    def __init__(self, *, stable: str, canary: str, route_name: str | None = None, source: str = "<text>"):
        if not stable or not canary:
            raise RouteError(f"{source}: stable and canary must be non-empty names")
        if stable == canary:
            raise RouteError(f"{source}: stable and canary are both {stable!r}")
        self.stable = stable
        self.canary = canary
        self.route_name = route_name
        self.source = source
        # Parsed documents by text: read, write and validation of one change parse the same texts;
        # parsing is most of an editor's time. Bounded, per editor instance.
        self._parsed: dict[tuple[str, str], list[Node]] = {}

    def documents(self, text: str, source: str | None = None) -> list[Node]:
        """The parsed documents of ``text`` (cached per editor)."""
        key = (source or self.source, text)
        if key not in self._parsed:
            if len(self._parsed) >= 16:
                self._parsed.clear()
            self._parsed[key] = compose(text, key[0])
        return self._parsed[key]

    # -- to be provided by each traffic API -------------------------------------------------------

    def find_groups(self, documents: list[Node]) -> list[Group]:
        """Every candidate group in the documents of one file."""
        raise NotImplementedError

    def validate_names(self, group: Group, text: str) -> None:
        """Hook for API-specific checks of the stable and canary names (e.g. DestinationRule)."""

    # -- the interface --------------------------------------------------------------------------------

    def read(self, text: str) -> Weights:
        """The weights in ``text``; ``RouteError`` naming file, route and entry when unreadable."""
        group = self._select(text)
        stable, canary = self._pair(group)
        self.validate_names(group, text)
        self._check_others(group, stable, canary)
        stable_weight = self._weight_of(group, stable, len(group.entries))
        canary_weight = 0 if canary is None else self._weight_of(group, canary, len(group.entries))
        try:
            return Weights(stable=stable_weight, canary=canary_weight)
        except RouteError as exc:
            raise RouteError(f"{self.source}: {group.label}: {exc}") from None

    def write(self, text: str, weights: Weights) -> str:
        """``text`` with the weights replaced; only the weight scalars change.

        A missing canary is added next to the stable entry (or un-commented when the file carries it
        as a comment); a missing ``weight:`` key is inserted. Nothing else moves.
        """
        if not isinstance(weights, Weights):
            raise RouteError(f"{self.source}: weights must be a Weights, got {weights!r}")
        group = self._select(text)
        stable, canary = self._pair(group)
        self.validate_names(group, text)
        self._check_others(group, stable, canary)
        if canary is None:
            if weights.canary == 0 and self._weight_of(group, stable, len(group.entries)) == 100:
                # Nothing routes to the canary and the file already says so: smallest change is none.
                return text
            uncommented = self._uncomment_canary(text, group)
            if uncommented is not None:
                return self.write(uncommented, weights)
            return self._add_canary(text, group, stable, weights)
        edits: list[tuple[int, int, str]] = []
        for entry, value in ((stable, weights.stable), (canary, weights.canary)):
            edits.append(self._weight_edit(text, group, entry, value))
        return splice(text, edits)

    # -- selection ------------------------------------------------------------------------------------

    def _candidates(self, text: str) -> list[Group]:
        """The groups the default route is chosen among (hook: the strategies leave out theirs)."""
        return self.find_groups(self.documents(text))

    def _select(self, text: str) -> Group:
        groups = self._candidates(text)
        if not groups:
            raise RouteError(f"{self.source}: no {self.kind} with weighted routes found")
        if self.route_name is not None:
            named = [g for g in groups if g.route_name == self.route_name]
            if not named:
                found = ", ".join(repr(g.route_name) for g in groups if g.route_name) or "none"
                raise RouteError(
                    f"{self.source}: {self.kind}: no route named {self.route_name!r} (named routes: {found})"
                )
            if len(named) > 1:
                raise RouteError(
                    f"{self.source}: {self.kind}: {len(named)} routes are named {self.route_name!r}"
                )
            return named[0]
        both = [g for g in groups if self._find(g, self.stable) and self._find(g, self.canary)]
        if len(both) == 1:
            return both[0]
        if len(both) > 1:
            labels = "; ".join(g.label for g in both)
            raise RouteError(
                f"{self.source}: ambiguous: {len(both)} routes hold both {self.stable!r} and "
                f"{self.canary!r} ({labels}); set spec.route.name"
            )
        only_stable = [g for g in groups if self._find(g, self.stable)]
        if len(only_stable) == 1:
            return only_stable[0]
        if len(only_stable) > 1:
            labels = "; ".join(g.label for g in only_stable)
            raise RouteError(
                f"{self.source}: ambiguous: {len(only_stable)} routes hold {self.entry_word} "
                f"{self.stable!r} ({labels}); set spec.route.name"
            )
        if len(groups) == 1:
            names = ", ".join(repr(e.names[0]) for e in groups[0].entries) or "none"
            raise RouteError(
                f"{self.source}: {groups[0].label}: no {self.entry_word} {self.stable!r} (found: {names})"
            )
        raise RouteError(f"{self.source}: {self.kind}: no route holds {self.entry_word} {self.stable!r}")

    @staticmethod
    def _find(group: Group, name: str) -> list[Entry]:
        return [e for e in group.entries if name in e.names]

    def _check_others(self, group: Group, stable: Entry, canary: Entry | None) -> None:
        """Destinations other than stable and canary may stay in the route, at weight 0."""
        for entry in group.entries:
            if entry is stable or entry is canary:
                continue
            other = self._weight_of(group, entry, len(group.entries))
            if other:
                raise RouteError(
                    f"{self.source}: {group.label}: {entry.word} {entry.names[0]!r} carries weight "
                    f"{other}; only {self.stable!r} and {self.canary!r} may"
                )

    def _pair(self, group: Group) -> tuple[Entry, Entry | None]:
        """The stable entry (required) and the canary entry (None when absent)."""
        found: dict[str, Entry | None] = {}
        for name in (self.stable, self.canary):
            matches = self._find(group, name)
            if len(matches) > 1:
                raise RouteError(
                    f"{self.source}: {group.label}: {self.entry_word} {name!r} appears {len(matches)} times"
                )
            found[name] = matches[0] if matches else None
        stable = found[self.stable]
        if stable is None:
            names = ", ".join(repr(e.names[0]) for e in group.entries) or "none"
            raise RouteError(
                f"{self.source}: {group.label}: no {self.entry_word} {self.stable!r} (found: {names})"
            )
        return stable, found[self.canary]

    def _weight_of(self, group: Group, entry: Entry, entries: int) -> int:
        node = entry.weight
        where = f"{self.source}: {group.label}: {entry.word} {entry.names[0]!r}"
        if node is None or node.tag == NULL_TAG:
            if entries == 1:
                return 100
            if self.missing_weight_default is not None:
                raise RouteError(
                    f"{where}: weight is missing (the API default {self.missing_weight_default} is a "
                    "proportion, not a percentage); write the weights out"
                )
            raise RouteError(f"{where}: weight is missing")
        if node.tag != INT_TAG or node.style is not None:
            raise RouteError(f"{where}: weight must be an integer, got {node.value!r}")
        if (
            not entry.weight_parent.start_mark.index
            <= node.start_mark.index
            <= content_end(entry.weight_parent)
        ):
            # ``weight: *w``: the scalar lives at its anchor, elsewhere; editing it would change both.
            raise RouteError(f"{where}: weight is a YAML alias; write the number out")
        value = _int(str(node.value))
        if value is None:
            raise RouteError(f"{where}: weight must be an integer, got {node.value!r}")
        if not 0 <= value <= 100:
            raise RouteError(f"{where}: weight must be between 0 and 100, got {value}")
        return value

    # -- writing --------------------------------------------------------------------------------------

    def _weight_edit(self, text: str, group: Group, entry: Entry, value: int) -> tuple[int, int, str]:
        node = entry.weight
        if node is not None and node.tag != NULL_TAG:
            # Validate the old value only as far as its shape: an out-of-range old weight is fixed.
            if node.tag != INT_TAG or node.style is not None:
                raise RouteError(
                    f"{self.source}: {group.label}: {entry.word} {entry.names[0]!r}: weight must be "
                    f"an integer, got {node.value!r}"
                )
            return node.start_mark.index, node.end_mark.index, str(value)
        if node is not None:  # ``weight:`` with no value (null): fill the value in after the colon
            return node.start_mark.index, node.end_mark.index, f" {value}"
        parent = entry.weight_parent
        if parent.flow_style:
            raise RouteError(
                f"{self.source}: {group.label}: {entry.word} {entry.names[0]!r} has no weight and is "
                "written in flow style; add the weight by hand"
            )
        # A new key line after the entry's last line, at the column of its keys.
        at = line_end(text, content_end(parent))
        indent = " " * parent.value[0][0].start_mark.column
        return at, at, _prefix_newline(text, at) + f"{indent}weight: {value}" + newline_of(text)

    def _add_canary(self, text: str, group: Group, stable: Entry, weights: Weights) -> str:
        """Copy the stable entry below itself, renamed to the canary, with both weights set."""
        if group.seq.flow_style or stable.node.flow_style:
            raise RouteError(
                f"{self.source}: {group.label}: cannot add {self.entry_word} {self.canary!r} to a "
                "flow-style list; add it by hand"
            )
        if stable.name_span is None:
            raise RouteError(f"{self.source}: {group.label}: cannot add {self.entry_word} {self.canary!r}")
        start = line_start(text, _item_start(text, stable.node))
        end = line_end(text, content_end(stable.node))
        copy_edits: list[tuple[int, int, str]] = [
            (*stable.name_span, stable_rename(text, stable, self.canary))
        ]
        if stable.weight is not None and stable.weight.tag != NULL_TAG:
            copy_edits.append(
                (stable.weight.start_mark.index, stable.weight.end_mark.index, str(weights.canary))
            )
        copy = splice(text, copy_edits)[start : end + _delta(copy_edits)]
        copy = _strip_comments(copy)
        if stable.weight is None:
            indent = " " * stable.weight_parent.value[0][0].start_mark.column
            copy = (
                copy
                + _prefix_newline(copy, len(copy))
                + f"{indent}weight: {weights.canary}"
                + newline_of(text)
            )
        edits = [self._weight_edit(text, group, stable, weights.stable)]
        insert = _prefix_newline(text, end) + copy
        if not insert.endswith(("\n", "\r")):
            insert += newline_of(text)
        if edits[0][0] == end:  # both insert at the same place: stable's weight line goes first
            return splice(text, [(end, end, edits[0][2] + insert[len(_prefix_newline(text, end)) :])])
        edits.append((end, end, insert))
        return splice(text, edits)

    def _uncomment_canary(self, text: str, group: Group) -> str | None:
        """The guide's "initial state" keeps the canary as comment lines in the route (before, between
        or after the entries): un-comment them if that yields exactly one more entry, the canary,
        in the same route (the smallest change). Tries the longest runs of comment lines first."""
        if not group.seq.value or group.seq.flow_style:
            return None
        for start, end in self._comment_regions(text, group):
            for variant in (_hash_to_space, _drop_hash, _drop_hash_space):
                region = "".join(variant(line) for line in text[start:end].splitlines(keepends=True))
                candidate = text[:start] + region + text[end:]
                if self._has_canary_in_same_route(candidate, group, start, start + len(region)):
                    return candidate
        return None

    def _comment_regions(self, text: str, group: Group) -> Iterator[tuple[int, int]]:
        """(start, end) offsets of runs of whole comment lines touching an entry of the route."""
        for item in group.seq.value:
            # Comment lines right above the entry: runs that end at the entry, longest first.
            top = line_start(text, _item_start(text, item))
            starts: list[int] = []
            pos = top
            while pos > 0 and len(starts) < MAX_COMMENTED_LINES:
                prev = line_start(text, pos - 1)
                if not text[prev:pos].lstrip().startswith("#"):
                    break
                starts.append(prev)
                pos = prev
            for begin in reversed(starts):
                yield begin, top
        # Comment lines right below the last entry: runs that start there, longest first.
        after = line_end(text, content_end(group.seq.value[-1]))
        ends: list[int] = []
        pos = after
        while pos < len(text) and len(ends) < MAX_COMMENTED_LINES:
            nxt = line_end(text, pos)
            if not text[pos:nxt].lstrip().startswith("#"):
                break
            ends.append(nxt)
            pos = nxt
        for finish in reversed(ends):
            yield after, finish

    def _has_canary_in_same_route(self, candidate: str, group: Group, start: int, end: int) -> bool:
        try:
            groups = self.find_groups(compose(candidate, self.source))
        except RouteError:
            return False
        for other in groups:
            if other.label != group.label or len(other.entries) != len(group.entries) + 1:
                continue
            canaries = self._find(other, self.canary)
            return len(canaries) == 1 and start <= canaries[0].node.start_mark.index < end
        return False


def _int(literal: str) -> int | None:
    """A YAML integer literal's value: decimal (``010`` is 10 in YAML 1.2), ``0x``, ``0o``, ``0b``."""
    digits = literal.replace("_", "")
    for base in (10, 0):
        try:
            return int(digits, base)
        except ValueError:
            continue
    return None


def stable_rename(text: str, stable: Entry, canary: str) -> str:
    """The replacement for ``stable.name_span``: the canary name in the same quoting style."""
    assert stable.name_span is not None
    original = text[stable.name_span[0] : stable.name_span[1]]
    if original[:1] in {"'", '"'} and original[-1:] == original[:1]:
        return original[0] + canary + original[0]
    return canary


def _delta(edits: list[tuple[int, int, str]]) -> int:
    return sum(len(new) - (end - start) for start, end, new in edits)


def splice(text: str, edits: Iterable[tuple[int, int, str]]) -> str:
    """``text`` with each (start, end, replacement) applied; spans must not overlap."""
    ordered = sorted(edits, key=lambda e: (e[0], e[1]))
    out: list[str] = []
    pos = 0
    for start, end, new in ordered:
        if start < pos:
            raise RouteError("internal error: overlapping edits")
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def line_start(text: str, index: int) -> int:
    """Offset of the first character of the line holding ``index``."""
    return text.rfind("\n", 0, index) + 1


def line_end(text: str, index: int) -> int:
    """Offset just after the newline that ends the line holding ``index`` (or len(text))."""
    nl = text.find("\n", index)
    return len(text) if nl < 0 else nl + 1


def newline_of(text: str) -> str:
    """The file's newline convention."""
    return "\r\n" if "\r\n" in text else "\n"


def _prefix_newline(text: str, at: int) -> str:
    """A newline to insert first when ``at`` is the end of a last line without one."""
    return newline_of(text) if at == len(text) and text and not text.endswith("\n") else ""


def _item_start(text: str, node: Node) -> int:
    """Offset of the ``-`` that introduces sequence item ``node``."""
    index: int = node.start_mark.index - 1
    while index >= 0 and text[index] in " \t\r\n":
        index -= 1
    if index < 0 or text[index] != "-":
        return int(node.start_mark.index)
    return index


_TRAILING_COMMENT = re.compile(r"[ \t]+#.*$")


def _strip_comments(block: str) -> str:
    """Drop comment lines and trailing comments from a copied entry: they describe the original.

    Only used on text that parsed as a block mapping of plain keys, where a `` #`` after the last
    colon-value on a line is a comment. Quoted scalars holding `` #`` are left alone (rare: the
    comment is then kept, which is harmless).
    """
    out: list[str] = []
    for line in block.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        if body.lstrip().startswith("#"):
            continue
        if "'" not in body and '"' not in body:
            body = _TRAILING_COMMENT.sub("", body)
        out.append(body + ending)
    return "".join(out)


def _hash_to_space(line: str) -> str:
    i = line.index("#")
    return line[:i] + " " + line[i + 1 :]


def _drop_hash(line: str) -> str:
    i = line.index("#")
    return line[:i] + line[i + 1 :]


def _drop_hash_space(line: str) -> str:
    i = line.index("#")
    return line[:i] + line[i + 2 :] if line[i + 1 : i + 2] == " " else line[:i] + line[i + 1 :]


def keyed_entry(item: Node, *, key: str, word: str, item_word: str, label: str, source: str) -> Entry:
    """An entry named by the scalar at ``key`` with its ``weight`` beside it: Gateway API's
    ``backendRefs[].name`` and SMI's ``backends[].service`` (``item_word`` names the list item in
    errors, ``word`` the entry)."""
    name = get(item, key)
    if not isinstance(item, MappingNode) or not isinstance(name, ScalarNode):
        raise RouteError(f"{source}: {label}: every {item_word} needs a {key}")
    weight = get(item, "weight")
    if weight is not None and not isinstance(weight, ScalarNode):
        raise RouteError(f"{source}: {label}: {word} {name.value!r}: weight must be an integer")
    return Entry(
        node=item,
        names=(str(name.value),),
        name_span=(name.start_mark.index, name.end_mark.index),
        weight=weight,
        weight_parent=item,
        word=word,
    )


def describe(doc: Node, kind: str) -> str:
    """``Kind namespace/name`` of a document, for error messages."""
    meta = get(doc, "metadata")
    name = get_str(meta, "name") or "?"
    namespace = get_str(meta, "namespace")
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def documents_of_kind(
    documents: list[Node], kind: str, api_groups: tuple[str, ...], source: str
) -> list[Node]:
    """The documents of ``kind`` whose apiVersion is in one of ``api_groups`` (other kinds skipped)."""
    out: list[Node] = []
    for doc in documents:
        if get_str(doc, "kind") != kind:
            continue
        api = get_str(doc, "apiVersion") or ""
        group, _, _version = api.rpartition("/")
        if api not in api_groups and group not in api_groups:
            raise RouteError(f"{source}: {describe(doc, kind)}: unsupported apiVersion {api!r}")
        out.append(doc)
    return out
