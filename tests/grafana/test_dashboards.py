"""The committed dashboards are what the code generates, and they hang together."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from grafana import build
from grafana.queries import render
from tests.grafana.panels import DASHBOARDS, dashboard_names, dashboard_queries, load

REPO = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\b(rollouts_[a-z_]+|istio_[a-z_]+)\b")


def test_committed_json_is_exactly_what_the_code_generates() -> None:
    generated = build.generated()
    assert sorted(p.stem for p in generated) == dashboard_names()
    for path, text in generated.items():
        assert path.read_text() == text, f"{path.name} is stale: run `python -m grafana.build`"


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "OUTPUT", tmp_path)
    assert build.main([]) == 0
    assert build.main(["--check"]) == 0
    (tmp_path / "canary.json").write_text(
        (tmp_path / "canary.json").read_text().replace("Latency p99", "p99")
    )
    assert build.main(["--check"]) == 1


@pytest.mark.parametrize("name", ["canary", "controller"])
def test_panels_have_unique_ids_a_datasource_and_fit_the_grid(name: str) -> None:
    panels = load(name)["panels"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])


def test_the_canary_dashboard_compares_ga_and_canary() -> None:
    board = load("canary")
    variables = [v["name"] for v in board["templating"]["list"]]
    assert {"namespace", "rollout"} <= set(variables)
    titles = {p["title"]: p for p in board["panels"]}
    for title in ("Request rate", "Error rate", "Latency p50", "Latency p90", "Latency p99"):
        (target,) = titles[title]["targets"]
        assert "by (destination_version" in target["expr"], title
        assert target["legendFormat"] == "{{destination_version}}"
    for quantile, title in (("0.5", "Latency p50"), ("0.9", "Latency p90"), ("0.99", "Latency p99")):
        assert titles[title]["targets"][0]["expr"].startswith(f"histogram_quantile({quantile},")
    assert "rollouts_canary_weight" in titles["Canary weight"]["targets"][0]["expr"]
    assert "rollouts_verdicts_total" in titles["Verdicts"]["targets"][0]["expr"]
    (annotation,) = board["annotations"]["list"]
    assert "rollouts_commits_total" in annotation["expr"]
    assert annotation["titleFormat"] == "{{rollout}}: {{verdict}}"


def test_the_controller_dashboard_covers_phases_decisions_errors_and_duration() -> None:
    exprs = " ".join(t["expr"] for p in load("controller")["panels"] for t in p.get("targets", []))
    for metric in (
        "rollouts_phase",
        "rollouts_verdicts_total",
        "rollouts_git_errors_total",
        "rollouts_prometheus_errors_total",
        "rollouts_analysis_duration_seconds_bucket",
    ):
        assert metric in exprs


def test_controller_metrics_used_are_the_documented_ones() -> None:
    documented = set(re.findall(r"`(rollouts_[a-z_]+)`", (REPO / "docs" / "architecture.md").read_text()))
    assert "rollouts_canary_weight" in documented
    used = {m for q in dashboard_queries() for m in METRIC.findall(q.expr) if m.startswith("rollouts_")}
    # A histogram's series are <name>_bucket/_sum/_count.
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in used}
    assert used <= documented, f"not in docs/architecture.md: {sorted(used - documented)}"


def test_istio_queries_use_the_reporter_and_labels_of_the_local_mesh() -> None:
    for query in dashboard_queries():
        if "istio_" in query.expr:
            assert 'reporter="destination"' in query.expr, query
            assert METRIC.findall(query.expr)[0] in {
                "istio_requests_total",
                "istio_request_duration_milliseconds_bucket",
            }


def test_render_refuses_an_unknown_variable() -> None:
    with pytest.raises(KeyError, match=r"\$cluster"):
        render('up{cluster="$cluster"}', {"namespace": "test"})
    assert render('x{a="${namespace}", b="$namespace"}', {"namespace": "t"}) == 'x{a="t", b="t"}'


def test_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    yaml = YAML(typ="safe", pure=True)
    provisioning = REPO / "grafana" / "provisioning"
    (provider,) = yaml.load((provisioning / "dashboards" / "gitops-rollouts.yaml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    (source,) = yaml.load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "${PROMETHEUS_URL}"
    # Every dashboard's datasource variable offers Prometheus datasources, this one among them.
    for name in dashboard_names():
        (variable,) = [v for v in load(name)["templating"]["list"] if v["type"] == "datasource"]
        assert variable["query"] == "prometheus"
    assert DASHBOARDS.is_dir()
