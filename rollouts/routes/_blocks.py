"""Adding and removing whole YAML blocks (a route, a key, a list item) as the smallest text edit.

The weight engine (:mod:`rollouts.routes._engine`) replaces scalars; the strategies add a match
route, a mirror or a response header, and take them away again. Why not ruamel's dump here either:
see ``_engine``'s docstring. A block we add is rendered in the file's own indentation (detected from
the nodes around the insertion point), inserted at a line boundary, and everything else stays byte
for byte; removing it deletes exactly the lines it occupies, so add-then-remove gives the original
file back. Routes we add carry a marker comment on the line above them, so that we only ever remove
our own routes and never one a person wrote.

This module renders only the small value shapes the strategies need (mappings, lists, strings and
numbers); it must never be used to re-render a person's YAML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rollouts.routes._engine import _item_start, content_end, line_end, line_start, newline_of
from rollouts.routes.base import RouteError

#: Marker comments above the routes we add (the text after ``# ``).
MATCH_MARKER = "gitops-rollouts: canary match route"
AFFINITY_MARKER = "gitops-rollouts: session affinity route"
PRIMARY_AFFINITY_MARKER = "gitops-rollouts: session affinity route (GA)"
OUR_MARKERS = (MATCH_MARKER, AFFINITY_MARKER, PRIMARY_AFFINITY_MARKER)

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_RESERVED = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~)$"
)


@dataclass(frozen=True)
class Style:
    """How a file indents: ``step`` columns per mapping level, sequences' dashes ``seq_indent``
    columns right of their key, ``dash_gap`` columns from a dash to the item's first key."""

    step: int = 2
    seq_indent: int = 0
    dash_gap: int = 2


def scalar(value: str | int | float | bool) -> str:
    """``value`` as a YAML scalar: plain when that reads back as the same string, else single-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if _PLAIN.match(value) and not _RESERVED.match(value):
        return value
    return "'" + value.replace("'", "''") + "'"


def render(value: Mapping[str, object], column: int, style: Style, nl: str) -> list[str]:
    """Lines of block mapping ``value`` with its keys at ``column`` (each line ends with ``nl``)."""
    lines: list[str] = []
    pad = " " * column
    for key, item in value.items():
        if isinstance(item, Mapping):
            lines.append(f"{pad}{scalar(key)}:{nl}")
            lines.extend(render(item, column + style.step, style, nl))
        elif isinstance(item, (list, tuple)):
            lines.append(f"{pad}{scalar(key)}:{nl}")
            lines.extend(render_items(item, column + style.seq_indent, style, nl))
        else:
            lines.append(f"{pad}{scalar(key)}: {scalar(item)}{nl}")  # type: ignore[arg-type]
    return lines


def render_items(items: Sequence[object], dash_column: int, style: Style, nl: str) -> list[str]:
    """Lines of a block sequence of mappings with its dashes at ``dash_column``."""
    lines: list[str] = []
    for item in items:
        if not isinstance(item, Mapping):
            lines.append(f"{' ' * dash_column}- {scalar(item)}{nl}")  # type: ignore[arg-type]
            continue
        body = render(item, dash_column + style.dash_gap, style, nl)
        first = body[0]
        body[0] = " " * dash_column + "-" + first[dash_column + 1 :]
        lines.extend(body)
    return lines


def detect(text: str, seq: SequenceNode, mapping: MappingNode | None = None) -> Style:
    """The style of the file around sequence ``seq`` (and a nested ``mapping`` for the step)."""
    step = 2
    if mapping is not None:
        found = _nested_step(mapping)
        if found:
            step = found
    seq_indent, dash_gap = 0, 2
    if seq.value:
        first = seq.value[0]
        dash = _item_start(text, first)
        dash_column = dash - line_start(text, dash)
        key_line = text.rfind("\n", 0, dash) + 1
        parent_key_column = _key_column_above(text, key_line)
        if parent_key_column is not None:
            seq_indent = max(0, dash_column - parent_key_column)
        if isinstance(first, MappingNode) and first.value:
            dash_gap = max(1, first.value[0][0].start_mark.column - dash_column)
    return Style(step=step, seq_indent=seq_indent, dash_gap=dash_gap)


def _nested_step(node: Node) -> int | None:
    """Columns between a key and the keys of its block-mapping value, anywhere under ``node``."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(value, MappingNode) and value.value and not value.flow_style:
                inner = int(value.value[0][0].start_mark.column - key.start_mark.column)
                if inner > 0:
                    return inner
            found = _nested_step(value)
            if found:
                return found
    elif isinstance(node, SequenceNode):
        for item in node.value:
            found = _nested_step(item)
            if found:
                return found
    return None


def _key_column_above(text: str, line_begin: int) -> int | None:
    """The indentation of the nearest non-comment line above ``line_begin`` (the list's key)."""
    pos = line_begin
    while pos > 0:
        prev = line_start(text, pos - 1)
        line = text[prev:pos]
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return len(line) - len(line.lstrip(" "))
        pos = prev
    return None


def dash_column(text: str, item: Node) -> int:
    """The column of the ``-`` of sequence item ``item``."""
    dash = _item_start(text, item)
    return dash - line_start(text, dash)


def block_start(text: str, item: Node, floor: int) -> int:
    """Start of the lines that belong to sequence item ``item``: its dash line and the comment
    lines right above it (not above ``floor``)."""
    start = line_start(text, _item_start(text, item))
    while start > floor:
        prev = line_start(text, start - 1)
        if prev < floor or not text[prev:start].lstrip().startswith("#"):
            break
        start = prev
    return start


def marker_line(text: str, item: Node) -> str | None:
    """The comment on the line right above item ``item``'s dash (without ``#``), or None."""
    start = line_start(text, _item_start(text, item))
    if start == 0:
        return None
    prev = line_start(text, start - 1)
    line = text[prev:start].strip()
    return line[1:].strip() if line.startswith("#") else None


def item_span(text: str, item: Node, *, with_marker: bool) -> tuple[int, int]:
    """(start, end) of the lines of sequence item ``item`` (and its marker line above)."""
    start = line_start(text, _item_start(text, item))
    if with_marker:
        start = line_start(text, start - 1)
    return start, line_end(text, content_end(item))


def insert_before(text: str, item: Node, floor: int, lines: list[str]) -> str:
    """``lines`` inserted above item ``item`` (above the comments that belong to it)."""
    at = block_start(text, item, floor)
    return text[:at] + "".join(lines) + text[at:]


def insert_after(text: str, node: Node, lines: list[str]) -> str:
    """``lines`` inserted after the last line of ``node``'s content."""
    at = line_end(text, content_end(node))
    prefix = newline_of(text) if at == len(text) and text and not text.endswith("\n") else ""
    return text[:at] + prefix + "".join(lines) + text[at:]


def key_span(text: str, mapping: MappingNode, key: str, where: str) -> tuple[int, int] | None:
    """(start, end) of the lines of ``key: value`` in block mapping ``mapping``, or None when absent.

    ``RouteError`` naming ``where`` when the key shares its line with something we must keep."""
    for index, (k, v) in enumerate(mapping.value):
        if not (isinstance(k, ScalarNode) and k.value == key):
            continue
        start = line_start(text, k.start_mark.index)
        if text[start : k.start_mark.index].strip():
            if index == 0:
                raise RouteError(f"{where}: {key} is on the line of the list item's dash; move it down")
            raise RouteError(f"{where}: {key} shares its line with another key")
        end = line_end(text, content_end(v) if _has_content(v) else k.end_mark.index)
        return start, end
    return None


def _has_content(node: Node) -> bool:
    if isinstance(node, ScalarNode):
        return True
    return bool(getattr(node, "value", None)) or bool(getattr(node, "flow_style", False))


def copy_keys(text: str, mapping: MappingNode, skip: frozenset[str]) -> list[str]:
    """The lines of every ``key: value`` of block mapping ``mapping`` whose key is not in ``skip``,
    as written (comments inside included), each starting at the key's column."""
    lines: list[str] = []
    for key, value in mapping.value:
        if not isinstance(key, ScalarNode) or key.value in skip:
            continue
        end = line_end(text, content_end(value) if _has_content(value) else key.end_mark.index)
        segment = " " * key.start_mark.column + text[key.start_mark.index : end]
        if not segment.endswith("\n"):
            segment += newline_of(text)
        lines.extend(segment.splitlines(keepends=True))
    return lines


def remove(text: str, span: tuple[int, int]) -> str:
    """``text`` without ``span``."""
    return text[: span[0]] + text[span[1] :]


def first_key_column(mapping: MappingNode) -> int:
    """The column of the first key of block mapping ``mapping``."""
    return int(mapping.value[0][0].start_mark.column)


__all__ = [
    "AFFINITY_MARKER",
    "MATCH_MARKER",
    "OUR_MARKERS",
    "PRIMARY_AFFINITY_MARKER",
    "Style",
    "block_start",
    "copy_keys",
    "dash_column",
    "detect",
    "first_key_column",
    "insert_after",
    "insert_before",
    "item_span",
    "key_span",
    "marker_line",
    "remove",
    "render",
    "render_items",
    "scalar",
]
