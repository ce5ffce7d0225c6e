"""Bounded YAML: every YAML file the controller reads (Rollout specs, route files, manifests) goes
through here, so that hostile input ends in a clear error naming the file and line, in bounded time
and memory.

What is checked, before anything is built from the text (see docs/limits.md for the figures):

- size, in bytes, before parsing (and, for files, before reading: :func:`read_text`);
- UTF-8, with the line, column and byte offset of the first bad byte (:func:`decode`);
- nesting depth: ruamel's composer and constructor recurse once per level, so 3,000 ``[`` would
  end in a ``RecursionError`` far from the file that caused it;
- aliases: a "billion laughs" document (nine aliases of nine aliases of ...) is tiny as text and
  huge once expanded (by a validator, ``repr``, or any walk of the tree). Anchors and aliases are
  allowed (real route files use them), up to a bound on the node count with every alias expanded;
  the route editors refuse a weight written as an alias (one edit would change several values);
- duplicate mapping keys, refused naming both lines: parsers disagree on which one wins (ruamel's
  composer keeps both, PyYAML and Go's yaml keep the last), so an edit of the first ``weight:`` may
  be read back by Flux as the second.

The checks run on an event stream (libyaml's through PyYAML, else ruamel's), which both parsers
produce with an explicit state stack (no recursion), so the check itself is bounded by the size
limit. Nothing here is specific to a file's
meaning; callers turn :class:`YamlLimitError` into their own error type.

It must never put a document (or a large part of one) into an error message: errors carry the file,
the line and a short, truncated excerpt at most.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import Node

__all__ = [
    "MANIFEST",
    "REPO_FILE",
    "ROUTE",
    "SPEC",
    "Limits",
    "YamlLimitError",
    "check",
    "compose_all",
    "decode",
    "excerpt",
    "load_all",
    "read_text",
]


class YamlLimitError(ValueError):
    """YAML that is refused before it is built: too big, too deep, not UTF-8, aliases, duplicate
    keys, or malformed. The message starts with the source (file) and names the line."""


@dataclass(frozen=True)
class Limits:
    """What a kind of file may hold.

    ``max_bytes``: the file's size; ``max_depth``: nesting of mappings and sequences;
    ``max_nodes``: nodes per document, counting what every alias expands to; ``aliases``: whether
    ``*alias`` is allowed at all.
    """

    what: str
    max_bytes: int
    max_depth: int = 64
    max_nodes: int = 100_000
    aliases: bool = False


#: A Rollout spec is a few dozen nodes; aliases allowed (e.g. shared analysis settings), bounded.
SPEC = Limits(what="Rollout spec", max_bytes=256 * 1024, max_nodes=10_000, aliases=True)
#: Route files: 256 KiB is what ``kubectl apply``'s last-applied annotation can hold (262,144
#: bytes), far above any real route, and what ruamel's pure-Python composer (which the editors need
#: for text positions) reads in a few seconds at worst.
ROUTE = Limits(what="route file", max_bytes=256 * 1024, max_nodes=100_000, aliases=True)
#: Workload manifests (canary, GA, DestinationRules): read and edited like route files.
MANIFEST = Limits(what="manifest", max_bytes=256 * 1024, max_nodes=100_000, aliases=True)
#: Any file of the repository read before its kind is known (route or manifest): their common bound.
REPO_FILE = Limits(what="file", max_bytes=max(ROUTE.max_bytes, MANIFEST.max_bytes))


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KiB"


def _too_big(source: str, size: int | str, limits: Limits) -> YamlLimitError:
    return YamlLimitError(
        f"{source}: {limits.what} is {size} bytes, more than the limit of {_size(limits.max_bytes)}"
    )


def read_text(path: Path, limits: Limits, *, source: str | None = None) -> str:
    """The UTF-8 text of the file at ``path``, its size checked before it is read.

    Reads at most ``max_bytes + 1`` bytes whatever ``stat`` said (the file may be a FIFO or grow).
    Line endings are kept as they are (no newline translation). ``source`` names the file in errors
    (default: the path).
    """
    name = source or str(path)
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > limits.max_bytes:
                raise _too_big(name, info.st_size, limits)
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise YamlLimitError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:
        raise _too_big(name, f"more than {limits.max_bytes}", limits)
    return decode(data, name)


def decode(data: bytes, source: str) -> str:
    """``data`` as UTF-8; the error names the line, column and byte offset of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlLimitError(
            f"{source}: line {line}, column {column}: not UTF-8 (byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start}); save the file as UTF-8"
        ) from None


def excerpt(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages. Containers are not expanded: a
    bounded summary (type and length) stands for them, so no alias bomb reaches ``repr``."""
    if isinstance(value, dict | list | tuple | set):
        return f"{type(value).__name__} of {len(value)} item(s)"
    text = repr(value) if not isinstance(value, str) or len(value) <= limit * 4 else repr(value[: limit * 4])
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _Frame:
    """An open mapping or sequence while the events stream past."""

    mapping: bool
    anchor: str | None
    nodes: int = 1  # this collection itself, then its expanded children
    expect_key: bool = True
    keys: dict[str, int] | None = None  # scalar key -> line (mappings only)


def _line(event: Any) -> int:
    return int(event.start_mark.line) + 1


class _Checker:
    """The state of one pass over the events of one text.

    Events come from libyaml (through PyYAML's C parser, fast) or from ruamel's pure-Python parser;
    both are state machines without recursion and both name their events alike, so the checker
    dispatches on the event's class name.
    """

    def __init__(self, source: str, limits: Limits) -> None:
        self.source, self.limits = source, limits
        self.anchors: dict[str, int] = {}  # anchor -> expanded node count of its node
        self.stack: list[_Frame] = []
        self.nodes = 0  # in the current document, aliases expanded

    def event(self, event: Any) -> None:
        kind = type(event).__name__
        if kind == "DocumentStartEvent":
            self.anchors.clear()
            self.nodes = 0
        elif kind == "AliasEvent":
            self._anchor_allowed(event, f"*{event.anchor}", "aliases")
            if event.anchor not in self.anchors:
                raise self._error(event, f"undefined alias *{event.anchor}")
            self._count(event, self.anchors[event.anchor])
            self._in_parent(event, None)
        elif kind == "ScalarEvent":
            if event.anchor is not None:
                self._anchor_allowed(event, f"&{event.anchor}", "anchors")
                self.anchors[event.anchor] = 1
            self._count(event, 1)
            self._in_parent(event, str(event.value))
        elif kind in ("MappingStartEvent", "SequenceStartEvent"):
            if event.anchor is not None:
                self._anchor_allowed(event, f"&{event.anchor}", "anchors")
            if len(self.stack) >= self.limits.max_depth:
                raise self._error(event, f"nested more than {self.limits.max_depth} levels deep")
            self._in_parent(event, None)
            self._count(event, 0)  # the collection counts itself in its own frame
            mapping = kind == "MappingStartEvent"
            self.stack.append(_Frame(mapping=mapping, anchor=event.anchor, keys={} if mapping else None))
        elif kind in ("MappingEndEvent", "SequenceEndEvent"):
            frame = self.stack.pop()
            if frame.anchor is not None:
                self.anchors[frame.anchor] = frame.nodes
            if self.stack:
                self.stack[-1].nodes += frame.nodes

    def _error(self, event: Any, problem: str) -> YamlLimitError:
        return YamlLimitError(f"{self.source}: line {_line(event)}: {problem}")

    def _anchor_allowed(self, event: Any, written: str, word: str) -> None:
        if not self.limits.aliases:
            raise self._error(
                event, f"YAML {word} ({written}) are not allowed in a {self.limits.what}; write the value out"
            )

    def _count(self, event: Any, nodes: int) -> None:
        """Count ``nodes`` (a scalar, or what an alias expands to) into the open collection."""
        if self.stack:
            self.stack[-1].nodes += nodes
        self.nodes += max(nodes, 1)
        if self.nodes > self.limits.max_nodes:
            raise self._error(
                event,
                f"the document expands to more than {self.limits.max_nodes} nodes "
                "(an alias counts as often as it is used)",
            )

    def _in_parent(self, event: Any, scalar: str | None) -> None:
        """A node was read inside the innermost collection: in a mapping, keys and values alternate;
        a scalar key is checked against the mapping's earlier keys."""
        if not self.stack or not self.stack[-1].mapping:
            return
        frame = self.stack[-1]
        if frame.expect_key and scalar is not None and frame.keys is not None:
            if scalar in frame.keys:
                raise self._error(
                    event,
                    f"duplicate key {excerpt(scalar)} (first at line {frame.keys[scalar]}); parsers "
                    "disagree on which one counts",
                )
            frame.keys[scalar] = _line(event)
        frame.expect_key = not frame.expect_key


def _too_deep(source: str, line: int, limits: Limits) -> YamlLimitError:
    return YamlLimitError(f"{source}: line {line}: nested more than {limits.max_depth} levels deep")


def _flow_run(text: str, source: str, limits: Limits) -> None:
    """Refuse more than ``max_depth`` flow collections opened and not closed, counted naively (quotes
    and comments included: only a text libyaml could not parse gets here, and no real file nests
    brackets in its strings that deep)."""
    depth = 0
    for index, char in enumerate(text):
        if char in "[{":
            depth += 1
            if depth > limits.max_depth:
                line = text.count("\n", 0, index) + 1
                raise YamlLimitError(
                    f"{source}: line {line}: nested more than {limits.max_depth} levels deep"
                )
        elif char in "]}" and depth:
            depth -= 1


def _libyaml_events(text: str) -> Iterator[Any]:
    loader = getattr(pyyaml, "CSafeLoader", None) if pyyaml.__with_libyaml__ else None
    yield from pyyaml.parse(text, Loader=loader or pyyaml.SafeLoader)


def check(text: str, source: str, limits: Limits) -> None:
    """Refuse ``text`` unless it fits ``limits`` (see the module docstring); one pass over the events.

    The pass runs on libyaml's events (C, about 50 times faster than a pure-Python parser). Where
    libyaml finds a syntax error (it reads YAML 1.1, ruamel 1.2), ruamel's own parser checks the
    text again, so a file ruamel would read is never refused for libyaml's sake.
    """
    if len(text) > limits.max_bytes or len(text.encode("utf-8")) > limits.max_bytes:
        raise _too_big(source, len(text.encode("utf-8")), limits)
    try:
        checker = _Checker(source, limits)
        for event in _libyaml_events(text):
            checker.event(event)
        return
    except pyyaml.MarkedYAMLError as exc:
        if "maximum nesting depth" in str(exc.problem):  # libyaml's own bound (1000), scanned ahead
            line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
            raise YamlLimitError(
                f"{source}: line {line}: nested more than {limits.max_depth} levels deep"
            ) from None
    except pyyaml.YAMLError:
        pass  # ruamel decides below
    # ruamel's scanner looks ahead over a run of flow openers in quadratic time: bound the run first.
    _flow_run(text, source, limits)
    checker = _Checker(source, limits)
    try:
        for event in YAML(typ="safe", pure=True).parse(text):
            checker.event(event)
    except YAMLError as exc:
        raise YamlLimitError(f"{source}: malformed YAML: {_one_line(str(exc))}") from None


def _one_line(message: str) -> str:
    text = " ".join(part.strip() for part in message.splitlines() if part.strip())
    return text if len(text) <= 400 else text[:397] + "..."


def load_all(text: str, source: str, limits: Limits) -> list[Any]:
    """The documents of ``text`` as plain Python data (ruamel's safe loader), empty ones dropped."""
    check(text, source, limits)
    try:
        return [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]
    except YAMLError as exc:
        raise YamlLimitError(f"{source}: malformed YAML: {_one_line(str(exc))}") from None


def compose_all(text: str, source: str, limits: Limits) -> list[Node]:
    """The node trees (with their text positions) of the documents of ``text``, empty ones dropped."""
    check(text, source, limits)
    try:
        return [d for d in YAML(typ="rt").compose_all(text) if d is not None]
    except YAMLError as exc:
        raise YamlLimitError(f"{source}: malformed YAML: {_one_line(str(exc))}") from None
