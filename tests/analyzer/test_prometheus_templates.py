"""Templates and escaping of analyzer.prometheus, without a server (the server-side checks of the
escaping are in tests/local/test_query.py, where Prometheus itself parses the escaped forms)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.prometheus import (
    ISTIO,
    PODINFO,
    QueryTemplate,
    Subset,
    TemplateError,
    label_matcher,
    load_templates,
    promql_string,
    regex_literal,
    template_from_mapping,
)
from analyzer.prometheus.templates import duration

GOOD = {
    "name": "mine",
    "selector": {"namespace": "kubernetes_namespace", "workload": "app"},
    "histogram": "sum by ({{ by }}, le) (increase(latency_bucket{ {{ selector }} }[{{ window }}]))",
    "requests": "sum by ({{by}}) (increase(latency_count{ {{selector}} }[{{window}}]))",
    "errors": 'sum by ({{ by }}) (increase(latency_count{ {{ selector }}, code=~"5.."}[{{ window }}]))',
}


def test_a_user_template_renders_batched_escaped_selectors():
    template = template_from_mapping(GOOD)
    subsets = [Subset("a", workload="x"), Subset("b", workload="y.z"), Subset("a", workload="x")]
    assert template.render("requests", subsets, 90) == (
        'sum by (kubernetes_namespace, app) (increase(latency_count{ kubernetes_namespace=~"a|b",'
        ' app=~"x|y\\\\.z" }[90s]))'
    )
    assert template.render("histogram", [Subset("a", workload="x")], 1.5).endswith(
        '{ kubernetes_namespace="a", app="x" }[1500ms]))'
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"errors": GOOD["errors"].replace("{{ window }}", "{{ interval }}")},
            r"errors: unknown variable \{\{ interval \}\}",
        ),
        (
            {"requests": GOOD["requests"].replace("{{by}}", "workload")},
            r"requests: missing variable \{\{ by \}\}",
        ),
        ({"histogram": GOOD["histogram"] + " {{ "}, "unbalanced"),
        ({"selector": {"namespace": "bad-label"}}, "not a valid Prometheus label name"),
        ({"selector": {"pod": "pod"}}, "selector.pod"),
        ({"unit": "us"}, "unit"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_templates_fail_at_load_time_naming_the_field(change, message):
    with pytest.raises(TemplateError, match=message) as info:
        template_from_mapping({**GOOD, **change}, "templates.yaml[0]")
    assert "templates.yaml[0]" in str(info.value) and "'mine'" in str(info.value)


def test_load_templates_from_yaml(tmp_path):
    path = tmp_path / "templates.yaml"
    path.write_text(
        "templates:\n- name: mine\n  selector: {namespace: ns}\n"
        "  histogram: 'sum by ({{ by }}, le) (increase(h_bucket{ {{ selector }} }[{{ window }}]))'\n"
        "  requests: 'sum by ({{ by }}) (increase(h_count{ {{ selector }} }[{{ window }}]))'\n"
        "  errors: 'sum by ({{ by }}) (increase(e{ {{ selector }} }[{{ window }}]))'\n"
    )
    assert list(load_templates(path)) == ["mine"]
    path.write_text(
        "- name: istio\n  selector: {namespace: ns}\n  histogram: x\n  requests: x\n  errors: x\n"
    )
    with pytest.raises(TemplateError, match=r"templates.yaml\[0\]"):
        load_templates(path)
    path.write_text("[unclosed")
    with pytest.raises(TemplateError, match="cannot read"):
        load_templates(path)


def test_a_template_needs_the_subset_fields_it_selects_on():
    with pytest.raises(TemplateError, match=r"subset\.workload"):
        ISTIO.key(Subset("test", version="canary"))
    assert PODINFO.key(Subset("test", version="canary", service="podinfo")) == ("test", "podinfo", "canary")


@pytest.mark.parametrize(("seconds", "text"), [(60, "60s"), (0.25, "250ms"), (90.0, "90s")])
def test_durations(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), 0.0001])
def test_bad_durations(seconds):
    with pytest.raises(ValueError, match="window"):
        duration(seconds)


# A double quote inside the literal is always escaped: the literal cannot end early.
_UNESCAPED_QUOTE = re.compile(r'(?<!\\)(?:\\\\)*"')


@given(st.text(st.characters(exclude_categories=["Cs"])))
def test_a_string_literal_ends_only_at_its_closing_quote(value):
    literal = promql_string(value)
    assert literal[0] == literal[-1] == '"'
    inner = literal[1:-1]
    assert not _UNESCAPED_QUOTE.search(inner)
    assert "\n" not in inner and "\r" not in inner


@given(st.text(st.characters(exclude_categories=["Cs"])))
def test_regex_literal_matches_exactly_the_value(value):
    # Python's re agrees with RE2 on escaped metacharacters: the pattern is the value, literally.
    assert re.fullmatch(regex_literal(value), value, flags=re.DOTALL)
    assert not re.fullmatch(regex_literal(value), value + "x", flags=re.DOTALL)


def test_matchers_use_equality_for_one_value_and_a_regex_for_several():
    assert label_matcher("ns", ["a"]) == 'ns="a"'
    assert label_matcher("ns", ["b", "a", "b"]) == 'ns=~"a|b"'
    assert label_matcher("ns", ['x"}']) == 'ns="x\\"}"'
    with pytest.raises(ValueError, match="surrogate"):
        promql_string("\ud800")


def test_builtin_templates_are_valid():
    for template in (ISTIO, PODINFO):
        assert QueryTemplate.model_validate(template.model_dump()) == template


def test_subset_metrics_become_the_judges_input():
    from analyzer import Histogram
    from analyzer.prometheus import SubsetMetrics

    hist = Histogram.from_cumulative([0.1, float("inf")], [3.0, 4.0])
    metrics = SubsetMetrics(Subset("test", workload="w"), "istio", 60.0, 0.0, hist, requests=4.0, errors=1.0)
    window = metrics.to_subset_window()
    assert (window.histogram, window.requests, window.errors) == (hist, 4.0, 1.0)


def test_builtin_istio_variants_are_named_base_grpc_4xx():
    from analyzer.prometheus import BUILTIN

    bases = (
        "istio",
        "istio-version",
        "istio-ambient",
        "istio-ambient-version",
        "istio-source",
        "istio-source-version",
    )
    names = {base + suffix for base in bases for suffix in ("", "-grpc", "-4xx", "-grpc-4xx")}
    assert set(BUILTIN) == names | {"podinfo", "podinfo-4xx"}
    for name in names:
        template = BUILTIN[name]
        reporter = "waypoint" if "ambient" in name else "source" if "source" in name else "destination"
        for query in (template.histogram, template.requests, template.errors):
            assert f'reporter="{reporter}"' in query
        assert ("grpc_response_status" in template.errors) == ("grpc" in name)
        assert ('"[45].."' in template.errors) == name.endswith("4xx")
    assert '"[45].."' in BUILTIN["podinfo-4xx"].errors


@pytest.mark.parametrize("name", ["istio-ambient-grpc-4xx", "istio-source", "podinfo-4xx"])
def test_a_spec_selects_a_new_template_by_name(tmp_path, name):
    from rollouts.spec import SpecError, load_spec

    spec = (
        "apiVersion: rollouts.dev/v1alpha1\nkind: Rollout\nmetadata: {name: podinfo, namespace: test}\n"
        "spec:\n  git: {url: 'git@github.com:org/cluster.git'}\n"
        "  route: {kind: VirtualService, path: vs.yaml, stable: ga, canary: canary}\n"
        "  canary: {path: canary.yaml}\n  steps: [10, 100]\n"
        f"  analysis: {{metrics: {name}}}\n"
    )
    path = tmp_path / "rollout.yaml"
    path.write_text(spec)
    assert load_spec(path).spec.analysis.metrics == name
    path.write_text(spec.replace(name, "istio-ambient-5xx"))
    with pytest.raises(SpecError, match="unknown template 'istio-ambient-5xx'"):
        load_spec(path)


def test_a_segmented_template_adds_the_segment_matcher_to_every_subset_selector():
    from analyzer.prometheus.templates import segmented

    narrowed = segmented(ISTIO, "request_segment", 'ma"tch')
    assert narrowed.name == 'istio@request_segment=ma"tch' and ISTIO.segment is None
    subsets = [Subset("test", workload="podinfo-ga"), Subset("test", workload="podinfo-canary")]
    for query in ("histogram", "requests", "errors"):
        plain, text = ISTIO.render(query, subsets, 5), narrowed.render(query, subsets, 5)
        selector = 'destination_workload=~"podinfo-canary|podinfo-ga"'
        assert text == plain.replace(selector, selector + ', request_segment="ma\\"tch"')
        assert text.count('request_segment="ma\\"tch"') == plain.count(selector) >= 1
    assert narrowed.key(subsets[0]) == ISTIO.key(subsets[0])  # results split back by the same labels
    mine = segmented(template_from_mapping(GOOD), "segment", "b")
    assert mine.render("requests", subsets[:1], 5).endswith('app="podinfo-ga", segment="b" }[5s]))')
    for label, message in (
        ("bad-label", "not a valid Prometheus label name"),
        ("destination_workload", "already used by template 'istio'"),
        ("le", "already used"),
    ):
        with pytest.raises(TemplateError, match=message):
            segmented(ISTIO, label, "match")
    with pytest.raises(TemplateError, match="segment"):
        template_from_mapping({**GOOD, "segment": ["bad-label", "x"]})
