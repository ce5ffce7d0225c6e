"""docs/reference.md is what ``python -m rollouts.docs`` generates from the spec's schema, and it
documents every field of every model of the spec."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, create_model

from rollouts import docs
from rollouts.pipeline.spec import Pipeline
from rollouts.spec import Rollout, json_schema

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(
    r"^\| `(?P<field>[^`]+)` \| (?P<type>.*?) \| (?P<default>.*?) \| (?P<allowed>.*?) \| (?P<text>.*) \|$"
)


def rows(text: str) -> dict[str, dict[str, dict[str, str]]]:
    """Section heading -> field -> its cells, parsed back from the Markdown."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:]
            out[heading] = {}
        elif (match := ROW.match(line)) is not None:
            out[heading][match["field"]] = match.groupdict()
    return {heading: fields for heading, fields in out.items() if fields}


def models_and_fields(model: type[BaseModel]) -> dict[str, set[str]]:
    """Every model reachable from ``model`` through its fields' annotations -> its keys in YAML.

    Walks the Python types, not the JSON schema the generator reads, so it checks the generator.
    """
    found: dict[str, set[str]] = {}

    def annotations(tp: Any) -> typing.Iterator[Any]:
        yield tp
        for arg in typing.get_args(tp):
            yield from annotations(arg)

    def visit(current: type[BaseModel]) -> None:
        if current.__name__ in found:
            return
        found[current.__name__] = {f.alias or name for name, f in current.model_fields.items()}
        for info in current.model_fields.values():
            for tp in annotations(info.annotation):
                if isinstance(tp, type) and issubclass(tp, BaseModel):
                    visit(tp)

    visit(model)
    return found


def test_committed_reference_is_what_the_code_generates() -> None:
    committed = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert committed == docs.generated(), "docs/reference.md is stale: run `python -m rollouts.docs`"


def test_every_field_of_every_spec_model_is_in_the_reference_with_a_description() -> None:
    tables = rows(docs.generated())
    documented = [set(fields) for fields in tables.values()]
    for model, fields in {**models_and_fields(Rollout), **models_and_fields(Pipeline)}.items():
        assert any(fields == keys for keys in documented), f"{model}: {sorted(fields)} not one section"
    for heading, fields in tables.items():
        for name, cells in fields.items():
            assert cells["text"].strip(), f"{heading} {name}: no description (add Field(description=...))"
            assert cells["type"].strip() and cells["default"].strip(), (heading, name)


def test_the_reference_says_what_the_schema_says() -> None:
    tables = rows(docs.generated())
    spec = tables["`spec`"]
    assert spec["steps"]["type"] == "list of integer"
    assert spec["steps"]["default"] == "required"
    assert spec["steps"]["allowed"] == "at least 1 item"
    assert spec["git"]["type"] == "[GitSpec](#spec-git)"
    assert spec["notify"]["type"] == "list of string or [UrlFile](#spec-notify)"
    assert spec["notify"]["default"] == "empty"
    route = tables["`spec.route`"]
    assert route["kind"]["allowed"] == '`"VirtualService"`, `"HTTPRoute"`, `"TrafficSplit"`'
    assert route["name"]["type"] == "string or null" and route["name"]["default"] == "`null`"
    analysis = tables["`spec.analysis`"]
    assert analysis["onError"]["default"] == '`"pause"`'
    assert analysis["threshold"]["allowed"] == "≥ 1"
    assert tables["`spec.git`"]["branch"]["default"] == '`"main"`'
    # One model used in two places is one section naming both paths.
    assert "`spec.analysis.subsets.stable`, `spec.analysis.subsets.canary`" in tables
    # The free-form policy mapping is documented from the analyzer's Policy.
    assert tables["`spec.analysis.policy`"]["alpha"]["allowed"] == "> 0, < 1"
    # The Pipeline spec follows, its sections and anchors apart from the Rollout's.
    promotion = tables["Pipeline `spec.environments[].promotion`"]
    assert promotion["approval"]["allowed"] == '`"none"`, `"command"`, `"merge"`'
    assert "spec.approval.forge" in promotion["approval"]["text"]
    assert (
        tables["Pipeline `spec`"]["environments"]["type"]
        == "list of [Environment](#pipeline-spec-environments)"
    )


def test_every_link_points_at_a_section() -> None:
    text = docs.generated()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= anchors, sorted(links - anchors)
    assert len(anchors) == text.count('<a id="')


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Leaf(_Strict):
    """A leaf.

    Second paragraph: only in the section, not in the field's row."""

    size: int = Field(default=3, ge=1, le=9, description="How big.")


class Root(_Strict):
    """The root."""

    first: Leaf = Field(description="One leaf.")
    second: Leaf = Leaf()
    mode: Literal["a", "b|c"] = "a"
    leaves: list[Leaf] = Field(default_factory=list, min_length=0)
    ratio: Annotated[float, Field(gt=0, lt=1)] | None = Field(default=None, alias="theRatio")


def test_generic_over_any_model_and_picks_up_a_new_field() -> None:
    text = docs.reference(Root.model_json_schema(by_alias=True), header="# test\n")
    tables = rows(text)
    assert set(tables) == {"Rollout document", "`first`, `second`, `leaves[]`"}
    root = tables["Rollout document"]
    assert root["first"] == {
        "field": "first",
        "type": "[Leaf](#first)",
        "default": "required",
        "allowed": "",
        "text": "One leaf.",
    }
    assert root["second"]["default"] == "see its section"
    assert root["second"]["text"] == "A leaf."  # the model's first paragraph
    assert root["mode"]["allowed"] == '`"a"`, `"b\\|c"`'  # a | inside a cell is escaped
    assert root["leaves"]["type"] == "list of [Leaf](#first)"
    assert root["theRatio"]["type"] == "number or null" and root["theRatio"]["allowed"] == "> 0, < 1"
    assert tables["`first`, `second`, `leaves[]`"]["size"]["allowed"] == "≥ 1, ≤ 9"
    assert "Second paragraph: only in the section" in text
    grown = create_model("Grown", __base__=Root, extra=(str, Field(default="x", description="New.")))
    assert (
        rows(docs.reference(grown.model_json_schema(by_alias=True)))["Rollout document"]["extra"]["text"]
        == "New."
    )


def test_check_mode_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reference.md"
    assert docs.main(["--check", "--output", str(out)]) == 1
    assert docs.main(["--output", str(out)]) == 0
    assert docs.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text().replace("| `steps` |", "| `stepz` |"))
    assert docs.main(["--check", "--output", str(out)]) == 1
    assert "stale" in capsys.readouterr().err


def test_schema_definitions_of_embedded_models_may_not_clash() -> None:
    schema = json_schema()
    clash = {"spec.analysis.policy": {"$defs": {"GitSpec": {"type": "object"}}, "properties": {}}}
    with pytest.raises(ValueError, match="GitSpec"):
        docs.sections(schema, clash)


def test_rollouts_schema_markdown_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    from rollouts.cli import main

    assert main(["schema", "--markdown"]) == 0
    assert capsys.readouterr().out == (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
