"""The two dashboards, built with grafana-foundation-sdk: the canary of one rollout, and the controller.

Panels are laid out on Grafana's 24-column grid by the SDK (``span``/``height``). Every PromQL
expression comes from :mod:`grafana.queries`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import prometheus as prom_m

from grafana import queries as q

DATASOURCE = dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["gitops-rollouts"]
# Envoy's latency buckets are in milliseconds; Grafana's unit for that is "ms".
SUBSET_COLORS = {"ga": "green", "canary": "orange"}


def _target(expr: str, legend: str, ref_id: str = "A") -> prom_b.Dataquery:
    return prom_b.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).range()


def _legend() -> common_b.VizLegendOptions:
    return (
        common_b.VizLegendOptions()
        .display_mode(common_m.LegendDisplayMode.TABLE)
        .placement(common_m.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )


def _subset_colors(panel: ts_b.Panel) -> ts_b.Panel:
    """GA green, canary orange, in every panel, so that the eye pairs them across panels."""
    for name, color in SUBSET_COLORS.items():
        panel = panel.override_by_name(
            name, [dash_m.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color})]
        )
    return panel


def _timeseries(title: str, description: str, unit: str, span: int, height: int = 8) -> ts_b.Panel:
    return (
        ts_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(height)
        .legend(_legend())
        .line_width(2)
        .fill_opacity(8)
    )


def _by_subset(title: str, description: str, unit: str, span: int, expr: str) -> ts_b.Panel:
    """One Istio series per subset (``destination_version``), in the subsets' colours."""
    panel = _subset_colors(_timeseries(title, description, unit, span))
    return panel.with_target(_target(expr, "{{destination_version}}"))


def _weight_panel(title: str, description: str, span: int) -> ts_b.Panel:
    """A committed weight over time: 0 to 100 %, a step at each commit (weights change in jumps)."""
    return (
        _timeseries(title, description, "percent", span)
        .min(0)
        .max(100)
        .line_interpolation(common_m.LineInterpolation.STEP_AFTER)
    )


def _stacked_bars(title: str, description: str, span: int) -> ts_b.Panel:
    """Counts per label as stacked bars: how many of each, per interval."""
    return (
        _timeseries(title, description, "short", span)
        .draw_style(common_m.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(common_b.StackingConfig().mode(common_m.StackingMode.NORMAL))
    )


def _stat(title: str, description: str) -> stat_b.Panel:
    return (
        stat_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(8)
        .height(8)
        .graph_mode(common_m.BigValueGraphMode.NONE)
    )


def _dashboard(title: str, uid: str, description: str, since: str) -> dash_b.Dashboard:
    """What both dashboards share: tags, crosshair, 30 s refresh, the last ``since`` of time."""
    return (
        dash_b.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time(since, "now")
        .timezone("browser")
    )


def _datasource_variable() -> dash_b.DatasourceVariable:
    return dash_b.DatasourceVariable("datasource").label("Prometheus").type("prometheus")


def _query_variable(name: str, label: str, query: str, *, multi: bool = False) -> dash_b.QueryVariable:
    variable = (
        dash_b.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        variable = variable.multi(True).include_all(True).all_value(".*")
    return variable


def canary_dashboard() -> dash_b.Dashboard:
    """One rollout: GA and canary side by side, the weight, the verdicts, and the commits."""
    latency = [
        (
            f"Latency p{int(quantile * 100)}",
            q.latency_quantile(quantile),
        )
        for quantile in (0.5, 0.9, 0.99)
    ]
    board = (
        _dashboard(
            "Rollout: canary vs GA",
            "gitops-rollouts-canary",
            "Istio telemetry of GA and canary side by side, with the controller's weights and verdicts.",
            "now-1h",
        )
        .with_variable(_datasource_variable())
        .with_variable(_query_variable("namespace", "Namespace", q.NAMESPACES))
        .with_variable(_query_variable("service", "Service", q.SERVICES))
        .with_variable(_query_variable("rollout", "Rollout", q.ROLLOUT_NAMES))
        .with_variable(_query_variable("metric", "Custom metric", q.CUSTOM_METRICS, multi=True))
        .annotation(
            dash_b.AnnotationQuery()
            .name("Rollout commits")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("purple")
            .expr(q.COMMITS)
        )
        .with_row(dash_b.Row("Traffic: GA and canary"))
        .with_panel(
            _by_subset(
                "Request rate", "Requests per second received by each subset.", "reqps", 12, q.REQUEST_RATE
            )
        )
        .with_panel(
            _by_subset("Error rate", "Share of 5xx responses per subset.", "percentunit", 12, q.ERROR_RATE)
        )
    )
    for title, expr in latency:
        board = board.with_panel(
            _by_subset(title, "From Istio's histogram, as histogram_quantile computes it.", "ms", 8, expr)
        )
    return (
        board.with_row(dash_b.Row("Rollout: weight and verdicts"))
        .with_panel(
            _weight_panel("Canary weight", "The weight committed to Git by the controller.", 12).with_target(
                _target(q.CANARY_WEIGHT, "canary weight")
            )
        )
        .with_panel(
            _stacked_bars("Verdicts", "Verdicts of the judge per analysis window.", 12).with_target(
                _target(q.VERDICTS, "{{action}}")
            )
        )
        .with_panel(
            _timeseries(
                "Evidence",
                "The judge's anytime-valid evidence per test (e-values), window by window, against its "
                "threshold: combined harm crossing the harm threshold (1/alpha) means rollback; every "
                "safety e-value above the safety threshold (this step's) means promote.",
                "short",
                16,
            )
            .scale_distribution(
                common_b.ScaleDistributionConfig().type(common_m.ScaleDistribution.LOG).log(10)
            )
            .with_target(_target(q.EVIDENCE, "{{test}} {{kind}}"))
            .with_target(_target(q.EVIDENCE_THRESHOLD, "{{kind}} threshold", "B"))
        )
        .with_panel(
            _stat("Phase", "The rollout's current phase.")
            .text_mode(common_m.BigValueTextMode.NAME)
            .with_target(_target(q.PHASE, "{{phase}}"))
        )
        # One row per custom metric (Grafana repeats it for each value of $metric).
        .with_row(dash_b.Row("Custom metric: $metric").repeat("metric"))
        .with_panel(
            _subset_colors(
                _timeseries(
                    "$metric: GA and canary",
                    "The custom metric's value per subset in each window the controller judged.",
                    "short",
                    12,
                )
            ).with_target(_target(q.CUSTOM_VALUES, "{{subset}}"))
        )
        .with_panel(
            _timeseries(
                "$metric: evidence",
                "Harm and safety e-values of the custom metric and their thresholds (this metric's "
                "share of the false-rollback budget).",
                "short",
                12,
            )
            .scale_distribution(
                common_b.ScaleDistributionConfig().type(common_m.ScaleDistribution.LOG).log(10)
            )
            .with_target(_target(q.CUSTOM_EVIDENCE, "{{kind}}"))
        )
    )


def _pipeline_table() -> table_b.Panel:
    """Where each revision is: per pipeline and environment, the revision and its state, now."""
    target = (
        prom_b.Dataquery()
        .expr(q.PIPELINE_REVISIONS)
        .ref_id("A")
        .instant()
        .format(prom_m.PromQueryFormat.TABLE)
    )
    columns = ["pipeline", "environment", "revision", "state"]
    organize = dash_m.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": {"Time": True, "Value": True},
            "indexByName": {name: i for i, name in enumerate(columns)},
            "renameByName": {},
        },
    )
    return (
        table_b.Panel()
        .title("Pipelines: where each revision is")
        .description(
            "Per pipeline and environment (in the pipeline's order of hand-overs): the revision its "
            "canary manifest names now, and where the way into it stands (source, done, soaking, "
            "awaiting-approval, outside-window, pinned, blocked, ready, idle)."
        )
        .datasource(DATASOURCE)
        .span(24)
        .height(8)
        .with_target(target)
        .with_transformation(organize)
    )


def controller_dashboard() -> dash_b.Dashboard:
    """The controller across rollouts: phases, decisions, Git and Prometheus errors, analysis time,
    and where each pipeline's revisions are."""
    return (
        _dashboard(
            "Rollouts controller",
            "gitops-rollouts-controller",
            "Health and decisions of the rollouts controller across all rollouts.",
            "now-6h",
        )
        .with_variable(_datasource_variable())
        .with_variable(_query_variable("rollout", "Rollout", q.ALL_ROLLOUT_NAMES, multi=True))
        .with_variable(_query_variable("pipeline", "Pipeline", q.PIPELINE_NAMES, multi=True))
        .with_row(dash_b.Row("Rollouts"))
        .with_panel(
            _stat("Rollouts by phase", "How many rollouts are in each phase now.").with_target(
                _target(q.ROLLOUTS_BY_PHASE, "{{phase}}")
            )
        )
        .with_panel(
            _weight_panel("Canary weights", "The committed canary weight of each rollout.", 16).with_target(
                _target(q.CANARY_WEIGHTS, "{{rollout}}")
            )
        )
        .with_panel(
            _stacked_bars("Decisions", "Verdicts of the judge by action.", 12).with_target(
                _target(q.DECISIONS, "{{action}}")
            )
        )
        .with_panel(
            _stacked_bars("Commits", "Commits pushed by the controller, by verdict.", 12).with_target(
                _target(q.COMMITS_BY_VERDICT, "{{verdict}}")
            )
        )
        .with_panel(
            _timeseries(
                "Waiting for a gate",
                "How long an approval merge or a webhook has held each rollout's next step (0: none).",
                "s",
                24,
            ).with_target(_target(q.GATE_WAITING, "{{rollout}}"))
        )
        .with_row(dash_b.Row("Errors and timing"))
        .with_panel(
            _timeseries(
                "Git errors and push retries", "Failed Git operations and rejected pushes.", "short", 8
            )
            .with_target(_target(q.GIT_ERRORS, "errors {{rollout}}", "A"))
            .with_target(_target(q.GIT_PUSH_RETRIES, "push retries {{rollout}}", "B"))
        )
        .with_panel(
            _timeseries("Prometheus errors", "Queries that failed or timed out.", "short", 8).with_target(
                _target(q.PROMETHEUS_ERRORS, "{{rollout}}")
            )
        )
        .with_panel(
            _timeseries("Analysis duration", "Time one analysis round takes.", "s", 8)
            .with_target(_target(q.analysis_duration_quantile(0.5), "p50", "A"))
            .with_target(_target(q.analysis_duration_quantile(0.99), "p99", "B"))
        )
        .with_row(dash_b.Row("Pipelines"))
        .with_panel(_pipeline_table())
    )


def _finish(board: dict[str, Any]) -> dict[str, Any]:
    """What the SDK leaves out: unique panel ids and the Prometheus fields of annotations."""
    # Grafana links to a panel by id (viewPanel=N); the SDK leaves ids unset or 0.
    for number, panel in enumerate(board.get("panels", []), start=1):
        panel["id"] = number
    # The SDK's AnnotationQuery model has no Prometheus-specific fields; Grafana's Prometheus
    # annotation reads these to title and tag each commit marker.
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            annotation.setdefault("titleFormat", "{{rollout}}: {{verdict}}")
            annotation.setdefault("tagKeys", "rollout,verdict")
            annotation.setdefault("useValueForTime", False)
    return board


DASHBOARDS: dict[str, Callable[[], dash_b.Dashboard]] = {
    "canary": canary_dashboard,
    "controller": controller_dashboard,
}


def render_json(builder: dash_b.Dashboard) -> str:
    """The dashboard's JSON as committed: sorted keys, two-space indent, trailing newline."""
    raw = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return json.dumps(_finish(raw), indent=2, sort_keys=True) + "\n"
