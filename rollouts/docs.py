"""``python -m rollouts.docs``: write docs/reference.md, the configuration reference of the Rollout
spec, generated from its JSON schema; ``--check`` only compares with the committed file.

The reference is derived from the schema alone (:func:`rollouts.spec.json_schema`, keys as written
in YAML), walking every object from the document root through ``$ref``, ``anyOf`` and ``items``, so
a field added to any pydantic model of the spec shows up without touching this module. Each model
becomes one section (a table: field, type, default, allowed values, description); a model used in
several places (GA and canary subsets) is one section listing every path. Models the spec embeds
from other packages (``spec.analysis.policy`` is the analyzer's ``Policy``) are fields like any
other, so they are documented the same way; :func:`reference` can still document a free-form
mapping from a schema given for its path (``embedded``).

No library renders a JSON schema as Markdown tables the way a reference page needs them (paths
instead of model names, pydantic's defaults and constraints in their own columns), so it is here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference.md"
ROOT = "Rollout"

_CONSTRAINTS: tuple[tuple[str, Callable[[Any], str]], ...] = (
    ("minimum", lambda v: f"≥ {_number(v)}"),
    ("exclusiveMinimum", lambda v: f"> {_number(v)}"),
    ("maximum", lambda v: f"≤ {_number(v)}"),
    ("exclusiveMaximum", lambda v: f"< {_number(v)}"),
    ("minLength", lambda v: f"at least {v} characters"),
    ("maxLength", lambda v: f"at most {v} characters"),
    ("minItems", lambda v: f"at least {v} item{'s' if v != 1 else ''}"),
    ("maxItems", lambda v: f"at most {v} items"),
    ("pattern", lambda v: f"matches `{v}`"),
)


@dataclass
class Section:
    """One object schema of the reference and every path where it is used."""

    key: str
    schema: dict[str, Any]
    paths: list[str] = field(default_factory=list)
    root: str = ROOT  # the document kind (another kind's anchors start with its name)

    @property
    def anchor(self) -> str:
        """HTML id of the section: its first path with dots and brackets as dashes."""
        anchor = re.sub(r"[^a-z0-9]+", "-", self.paths[0].lower()).strip("-")
        if self.root != ROOT:
            return f"{self.root.lower()}-{anchor}" if anchor else self.root.lower()
        return anchor or ROOT.lower()

    @property
    def title(self) -> str:
        """The heading: every path, or the document itself."""
        prefix = "" if self.root == ROOT else f"{self.root} "
        return ", ".join(f"{prefix}`{p}`" if p else f"{self.root} document" for p in self.paths)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _branches(prop: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The alternatives of a property (``anyOf``/``oneOf``), or the property itself."""
    for key in ("anyOf", "oneOf"):
        if key in prop:
            return list(prop[key])
    return [prop]


def _children(prop: Mapping[str, Any], path: str) -> Iterator[tuple[str, str]]:
    """(model name, path) of every object schema that ``prop`` at ``path`` refers to."""
    for branch in _branches(prop):
        if "$ref" in branch:
            yield _ref_name(branch["$ref"]), path
        if branch.get("type") == "array" and isinstance(branch.get("items"), dict):
            yield from _children(branch["items"], f"{path}[]")
        extra = branch.get("additionalProperties")
        if isinstance(extra, dict):
            yield from _children(extra, f"{path}.*")


def sections(
    schema: Mapping[str, Any],
    embedded: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    root: str = ROOT,
) -> list[Section]:
    """Every object schema reachable from the root, depth first in field order."""
    defs: dict[str, Any] = dict(schema.get("$defs", {}))
    embedded = dict(embedded or {})
    for path, sub in embedded.items():
        for name, definition in sub.get("$defs", {}).items():
            if defs.setdefault(name, definition) != definition:
                raise ValueError(f"{path}: schema definition {name!r} clashes with the spec's")
    found: dict[str, Section] = {}

    def visit(key: str, node: Mapping[str, Any], path: str) -> None:
        if key in found:
            found[key].paths.append(path)
            return
        found[key] = Section(key, dict(node), [path], root)
        for name, prop in node.get("properties", {}).items():
            child = f"{path}.{name}" if path else name
            for ref, where in _children(prop, child):
                visit(ref, defs[ref], where)
            if child in embedded:
                sub = embedded[child]
                visit(f"{child}:{sub.get('title', 'embedded')}", sub, child)

    visit(root, schema, "")
    return list(found.values())


class _Renderer:
    def __init__(self, found: list[Section]) -> None:
        self.anchors = {s.key: s.anchor for s in found}
        self.defs = {s.key: s.schema for s in found}

    def type_of(self, prop: Mapping[str, Any]) -> str:
        names: list[str] = []
        for branch in _branches(prop):
            if "$ref" in branch:
                name = _ref_name(branch["$ref"])
                names.append(f"[{name}](#{self.anchors[name]})")
            elif "const" in branch:
                names.append(type(branch["const"]).__name__.replace("str", "string"))
            else:
                kinds = branch.get("type", "string" if "enum" in branch else "any")
                for kind in kinds if isinstance(kinds, list) else [kinds]:
                    if kind == "array" and isinstance(branch.get("items"), dict):
                        names.append(f"list of {self.type_of(branch['items'])}")
                    elif kind == "object" and isinstance(branch.get("additionalProperties"), dict):
                        names.append(f"mapping of string to {self.type_of(branch['additionalProperties'])}")
                    elif kind == "object":
                        names.append("mapping")
                    else:
                        names.append(str(kind))
        unique = list(dict.fromkeys(names))
        if "null" in unique and len(unique) > 1:  # optional: null last
            unique = [n for n in unique if n != "null"] + ["null"]
        return " or ".join(unique)

    def allowed(self, prop: Mapping[str, Any]) -> str:
        found: list[str] = []
        for branch in _branches(prop):
            if "enum" in branch:
                found.extend(f"`{json.dumps(v)}`" for v in branch["enum"])
            if "const" in branch:
                found.append(f"`{json.dumps(branch['const'])}`")
            found.extend(render(branch[key]) for key, render in _CONSTRAINTS if key in branch)
            if isinstance(branch.get("items"), dict):
                inner = self.allowed(branch["items"])
                if inner:
                    found.append(f"items: {inner}")
        return ", ".join(dict.fromkeys(found))

    def default(self, name: str, prop: Mapping[str, Any], required: bool) -> str:
        if required:
            return "required"
        model = any("$ref" in b for b in _branches(prop))
        if "default" not in prop:  # a default_factory: pydantic leaves it out of the schema
            if model:
                return "see its section"
            return "empty" if self.type_of(prop).startswith(("list", "mapping")) else "—"
        value = prop["default"]
        if isinstance(value, dict) and value and model:
            return "see its section"
        return f"`{json.dumps(value, ensure_ascii=False)}`"

    def description(self, prop: Mapping[str, Any]) -> str:
        text = prop.get("description")
        if not text:
            for branch in _branches(prop):
                if "$ref" in branch:
                    text = self.defs[_ref_name(branch["$ref"])].get("description")
                    break
        return _markdown(text or "", first_paragraph=True)

    def section(self, section: Section) -> str:
        node = section.schema
        lines = [f'<a id="{section.anchor}"></a>', "", f"## {section.title}", ""]
        if node.get("description"):
            lines += [_markdown(node["description"]), ""]
        properties: dict[str, Any] = node.get("properties", {})
        if not properties:
            return "\n".join([*lines, "No fields.", ""])
        required = set(node.get("required", []))
        lines += [
            "| field | type | default | allowed values | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, prop in properties.items():
            cells = [
                f"`{name}`",
                self.type_of(prop),
                self.default(name, prop, name in required),
                self.allowed(prop),
                self.description(prop),
            ]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join([*lines, ""])


def _markdown(text: str, *, first_paragraph: bool = False) -> str:
    """Docstring text as Markdown: RST literals become code spans; one paragraph per line."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    if first_paragraph:
        paragraphs = paragraphs[:1]
    return "\n\n".join(p.replace("``", "`") for p in paragraphs)


HEADER = """\
# Configuration reference: the Rollout spec

<!-- Generated by `python -m rollouts.docs` (or `rollouts schema --markdown`) from the spec's JSON
schema: do not edit by hand. -->

A Rollout is one YAML document (in the GitOps repo or beside it). Unknown keys are errors, values
are strict (`"10"` is not a number), and every error names the file and the field path. Durations
are written `30s`, `1m`, `1m30s`, `500ms` or as a number of seconds. The same schema is published as
`deploy/schema/rollout.schema.json` (`rollouts schema`) for editors and CI.
"""


def reference(
    schema: Mapping[str, Any],
    embedded: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    header: str = HEADER,
) -> str:
    """The Markdown reference of ``schema`` (with ``embedded`` schemas at their paths)."""
    found = sections(schema, embedded)
    renderer = _Renderer(found)
    contents = [f"- [{s.title}](#{s.anchor})" for s in found]
    body = [renderer.section(s) for s in found]
    return "\n".join([header, "## Contents", "", *contents, "", *body]).rstrip("\n") + "\n"


PIPELINE_HEADER = """\
# The Pipeline spec

A Pipeline is one YAML document naming environments in order, each an ordinary Rollout spec file
(relative to the pipeline file), and what a revision needs to enter each one (see
[pipeline.md](pipeline.md)). The same rules as the Rollout spec: unknown keys are errors, values
are strict, errors name the file and the field.
"""


def pipeline_reference() -> str:
    """The Pipeline part of the reference (its own sections and anchors, ``pipeline-...``)."""
    from rollouts.pipeline.spec import Pipeline

    found = sections(Pipeline.model_json_schema(by_alias=True, mode="validation"), root="Pipeline")
    renderer = _Renderer(found)
    contents = [f"- [{s.title}](#{s.anchor})" for s in found]
    body = [renderer.section(s) for s in found]
    return "\n".join([PIPELINE_HEADER, *contents, "", *body]).rstrip("\n") + "\n"


def generated() -> str:
    """docs/reference.md as the code generates it now: the Rollout spec, then the Pipeline spec."""
    from rollouts.spec import json_schema

    return reference(json_schema()) + "\n" + pipeline_reference()


def main(argv: list[str] | None = None) -> int:
    """Write docs/reference.md (or with ``--check``, report whether it is stale); the exit code."""
    parser = argparse.ArgumentParser(prog="python -m rollouts.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file, write nothing")
    parser.add_argument(
        "--output", type=Path, default=REFERENCE, help=f"where to write (default {REFERENCE})"
    )
    args = parser.parse_args(argv)
    text = generated()
    current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale: run `python -m rollouts.docs`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
