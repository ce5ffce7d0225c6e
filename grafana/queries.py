"""The PromQL behind every panel, in one place, so that tests can run each one against Prometheus.

Istio's standard telemetry (``istio_requests_total``, ``istio_request_duration_milliseconds_bucket``,
``reporter="destination"``) is what the Istio sidecars report in a cluster and what the local mesh
emits on one machine, so the same queries work in both. GA and canary are told apart by
``destination_version``: the pods' ``version`` label, which is also what the DestinationRule's
subsets select. Controller metrics are those listed in docs/architecture.md.

Grafana substitutes the dashboard variables (``$namespace``, ``$service``, ``$rollout``, ``$pipeline``) and
``$__rate_interval`` before a query reaches Prometheus; :func:`render` does the same for tests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# The Istio series of the selected service, seen by the receiving side.
ISTIO = (
    'reporter="destination", destination_workload_namespace="$namespace", destination_service_name="$service"'
)
RATE = "$__rate_interval"
BY_VERSION = "destination_version"

REQUEST_RATE = f"sum by ({BY_VERSION}) (rate(istio_requests_total{{{ISTIO}}}[{RATE}]))"
ERROR_RATE = (
    f'sum by ({BY_VERSION}) (rate(istio_requests_total{{{ISTIO}, response_code=~"5.."}}[{RATE}]))'
    f"\n/\nsum by ({BY_VERSION}) (rate(istio_requests_total{{{ISTIO}}}[{RATE}]))"
)


def latency_quantile(quantile: float) -> str:
    """Latency at ``quantile`` per subset, exactly as Prometheus' ``histogram_quantile`` computes it."""
    return (
        f"histogram_quantile({quantile}, sum by ({BY_VERSION}, le) "
        f"(rate(istio_request_duration_milliseconds_bucket{{{ISTIO}}}[{RATE}])))"
    )


ROLLOUT = 'rollout="$rollout"'
CANARY_WEIGHT = f"rollouts_canary_weight{{{ROLLOUT}}}"
VERDICTS = f"sum by (action) (increase(rollouts_verdicts_total{{{ROLLOUT}}}[{RATE}]))"
EVIDENCE = f"rollouts_evidence{{{ROLLOUT}}}"
EVIDENCE_THRESHOLD = f"rollouts_evidence_threshold{{{ROLLOUT}}}"
PHASE = f"rollouts_phase{{{ROLLOUT}}} == 1"
# One annotation per commit the controller made (step, rollback, finalize): the commit counter
# went up in the interval. The verdict label says which kind of commit it was.
COMMITS = f"sum by (rollout, verdict) (increase(rollouts_commits_total{{{ROLLOUT}}}[{RATE}])) > 0"

# Custom metrics (docs/custom-metrics.md): the controller exports each one's last reading per subset
# and its evidence; the canary dashboard repeats one row per metric ($metric).
CUSTOM = 'rollout="$rollout", metric=~"$metric"'
CUSTOM_VALUES = f"rollouts_custom_value{{{CUSTOM}}}"
CUSTOM_EVIDENCE = f"rollouts_custom_evidence{{{CUSTOM}}}"
CUSTOM_METRICS = 'label_values(rollouts_custom_value{rollout="$rollout"}, metric)'

# Controller dashboard: all rollouts (or the selected ones: $rollout may be a multi-value regex).
ROLLOUTS = 'rollout=~"$rollout"'
ROLLOUTS_BY_PHASE = f"count by (phase) (rollouts_phase{{{ROLLOUTS}}} == 1)"
DECISIONS = f"sum by (action) (increase(rollouts_verdicts_total{{{ROLLOUTS}}}[{RATE}]))"
COMMITS_BY_VERDICT = f"sum by (verdict) (increase(rollouts_commits_total{{{ROLLOUTS}}}[{RATE}]))"
GIT_ERRORS = f"sum by (rollout) (increase(rollouts_git_errors_total{{{ROLLOUTS}}}[{RATE}]))"
GIT_PUSH_RETRIES = f"sum by (rollout) (increase(rollouts_git_push_retries_total{{{ROLLOUTS}}}[{RATE}]))"
PROMETHEUS_ERRORS = f"sum by (rollout) (increase(rollouts_prometheus_errors_total{{{ROLLOUTS}}}[{RATE}]))"
CANARY_WEIGHTS = f"rollouts_canary_weight{{{ROLLOUTS}}}"
GATE_WAITING = f"rollouts_gate_waiting_seconds{{{ROLLOUTS}}}"

# Pipelines (docs/pipeline.md): one series per environment, 1 for the revision its canary manifest
# names, ``state`` where the way into it stands (``source`` for the first environment).
PIPELINES = 'pipeline=~"$pipeline"'
PIPELINE_REVISIONS = (
    f"max by (pipeline, environment, revision, state) (rollouts_pipeline_revision{{{PIPELINES}}}) == 1"
)


def analysis_duration_quantile(quantile: float) -> str:
    """Quantile of the time one analysis round takes, over the selected rollouts."""
    return (
        f"histogram_quantile({quantile}, sum by (le) "
        f"(rate(rollouts_analysis_duration_seconds_bucket{{{ROLLOUTS}}}[{RATE}])))"
    )


# Variable queries use Grafana's label_values(); the selector inside is plain PromQL.
NAMESPACES = 'label_values(istio_requests_total{reporter="destination"}, destination_workload_namespace)'
SERVICES = (
    'label_values(istio_requests_total{reporter="destination", destination_workload_namespace="$namespace"}, '
    "destination_service_name)"
)
ROLLOUT_NAMES = 'label_values(rollouts_canary_weight{rollout=~"$namespace/.*"}, rollout)'
ALL_ROLLOUT_NAMES = "label_values(rollouts_canary_weight, rollout)"
PIPELINE_NAMES = "label_values(rollouts_pipeline_revision, pipeline)"

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$", re.DOTALL)


def render(expr: str, variables: Mapping[str, str]) -> str:
    """``expr`` with Grafana's variables replaced, as Grafana sends it; unknown variables raise."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(substitute, expr)


def promql_of(query: str) -> str:
    """The PromQL inside a variable query (``label_values(selector, label)``), or ``query`` itself."""
    match = _LABEL_VALUES.match(query.strip())
    return match.group("selector") if match else query
