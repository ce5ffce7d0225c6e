"""analyzer.prometheus against the real stack: what was sent is what is read back, per subset."""

from __future__ import annotations

import collections
import math
import socket
import time
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from analyzer.prometheus import (
    ISTIO,
    PODINFO,
    MetricsReader,
    NoData,
    PrometheusClient,
    PrometheusQueryError,
    PrometheusUnavailableError,
    QueryTemplate,
    Subset,
    SubsetMetrics,
    WindowRequest,
    promql_string,
    regex_literal,
)
from rollouts.local.process import free_port
from rollouts.local.stack import LocalStack
from tests.local.traffic import send

pytestmark = pytest.mark.integration

SUBSETS = {
    ISTIO.name: {
        "ga": Subset("test", workload="podinfo-ga"),
        "canary": Subset("test", workload="podinfo-canary"),
    },
    PODINFO.name: {
        "ga": Subset("test", service="podinfo", version="ga"),
        "canary": Subset("test", service="podinfo", version="canary"),
    },
}


def snapshot(stack: LocalStack) -> dict[tuple[str, str], dict[float, float]]:
    """Cumulative bucket counts straight from the mesh and the services: (template, subset) -> le -> n."""
    out: dict[tuple[str, str], dict[float, float]] = collections.defaultdict(
        lambda: collections.defaultdict(float)
    )
    sources = [(ISTIO.name, stack.mesh_admin_url, "istio_request_duration_milliseconds_bucket", None)]
    sources += [(PODINFO.name, url, "http_request_duration_seconds_bucket", name) for name, url in (
        ("ga", stack.ga_url), ("canary", stack.canary_url))]  # fmt: skip
    for template, url, metric, subset in sources:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name != metric or sample.labels.get("path") in {"metrics", "healthz", "readyz"}:
                    continue
                name = subset or sample.labels["destination_version"]
                le = float(sample.labels["le"]) / (1000.0 if template == ISTIO.name else 1.0)
                out[(template, name)][le] += sample.value
    return out


@pytest.fixture(scope="module")
def sent(stack):
    """Known traffic at a known weight inside a window with quiet edges: the window, what each subset
    served (by the mesh's response header) and the exact bucket counts the services recorded."""
    interval = stack.config.scrape_interval
    stack.wait_for_revision(stack.set_canary_weight(50, "warm-up"))
    # Warm-up: every series (200 and 500, both subsets) exists before the window opens, so that
    # increase() sees the whole traffic and no series is born inside the window.
    send(stack, ["/version", "/status/500"] * 40)
    stack.wait_for_revision(stack.set_canary_weight(25, "podinfo: canary 25%"))
    time.sleep(2 * interval)
    start = time.time()
    before = snapshot(stack)
    time.sleep(1.2 * interval)
    served = send(stack, ["/version"] * 300 + ["/status/500"] * 100)
    time.sleep(2.5 * interval)
    end = time.time()
    after = snapshot(stack)
    recorded = {key: {le: after[key][le] - before[key].get(le, 0.0) for le in after[key]} for key in after}
    return start, end, served, recorded


@pytest.mark.parametrize("template", [ISTIO, PODINFO], ids=lambda t: t.name)
def test_counts_and_histograms_match_what_was_sent(stack, sent, template):
    start, end, served, recorded = sent
    window = end - start
    reader = MetricsReader(PrometheusClient(stack.prometheus_url))
    subsets = SUBSETS[template.name]
    results = reader.read([WindowRequest(subsets[s], template, window, end) for s in ("ga", "canary")])
    assert reader.client.requests_sent == 3  # histogram, requests, errors: one query each for both
    # increase() extrapolates to the window's edges: with quiet edges it reads at least what was
    # sent and at most that times window / (window - 2.2 scrape intervals).
    factor = window / (window - 2.2 * stack.config.scrape_interval)
    canary_total = served[("canary", 200)] + served[("canary", 500)]
    assert 60 <= canary_total <= 140  # 25 % of 400, binomial sd ~8.7
    for name, result in zip(("ga", "canary"), results, strict=True):
        assert isinstance(result, SubsetMetrics), result
        ok, errors = served[(name, 200)], served[(name, 500)]
        assert ok + errors - 1e-6 <= result.requests <= (ok + errors) * factor + 1e-6, (name, result)
        assert errors - 1e-6 <= result.errors <= errors * factor + 1e-6, (name, result)
        hist = result.histogram
        assert math.isclose(hist.cumulative[-1], result.requests, rel_tol=1e-9), "+Inf bucket == requests"
        truth = recorded[(template.name, name)]
        assert truth[math.inf] == ok + errors
        for bound, count in zip(hist.bounds, hist.cumulative, strict=True):
            expected = truth[_closest(truth, bound)]
            assert expected - 1e-6 <= count <= expected * factor + 1e-6, (name, bound, count, expected)
        # GA sleeps 11-19 ms, the canary 30-44 ms: nothing can be faster than that.
        at = dict(zip(hist.bounds, hist.cumulative, strict=True))
        assert at[0.01] == 0.0
        if name == "canary":
            assert at[0.025] == 0.0


def _closest(truth: dict[float, float], bound: float) -> float:
    return min(truth, key=lambda le: abs(le - bound) if math.isfinite(le) else (0 if bound == le else 1e9))


def test_no_traffic_is_zero_but_no_series_is_nodata(stack, sent):
    start = sent[0]
    reader = MetricsReader(PrometheusClient(stack.prometheus_url))
    # The 2.8 s before start + 1 s saw no request (see ``sent``): series exist, increase() is 0.
    quiet = reader.read([WindowRequest(SUBSETS[ISTIO.name]["ga"], ISTIO, 2.8, start + 1.0)])[0]
    assert isinstance(quiet, SubsetMetrics)
    assert quiet.requests == 0.0 and quiet.errors == 0.0
    missing = reader.read([WindowRequest(Subset("test", workload="podinfo-blue"), ISTIO, 10.0, time.time())])[
        0
    ]
    assert isinstance(missing, NoData)
    assert "podinfo-blue" in missing.reason


def test_one_query_per_metric_for_many_rollouts(stack):
    reader = MetricsReader(PrometheusClient(stack.prometheus_url))
    now = time.time()
    subsets = [Subset(f"ns-{i}", workload=f"app-{i}") for i in range(200)] + list(
        SUBSETS[ISTIO.name].values()
    )
    results = reader.read([WindowRequest(s, ISTIO, 30.0, now) for s in subsets])
    assert reader.client.requests_sent == 3
    assert all(isinstance(r, NoData) for r in results[:200])
    assert all(isinstance(r, SubsetMetrics) for r in results[200:])


def test_prometheus_that_does_not_answer_is_a_distinct_error_within_the_timeout():
    refused = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=0.5, attempts=2, backoff=0.05)
    with pytest.raises(PrometheusUnavailableError, match="did not answer"):
        refused.query("up", time.time())
    assert refused.requests_sent == 2
    # A listener that never accepts: the connection opens, the answer never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        client = PrometheusClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3, attempts=1)
        began = time.monotonic()
        with pytest.raises(PrometheusUnavailableError):
            client.query("up", time.time())
        assert time.monotonic() - began < 2.0


def test_a_query_prometheus_rejects_fails_at_once(stack):
    broken = QueryTemplate(
        name="broken",
        selector={"namespace": "namespace"},
        histogram="sum by ({{ by }}, le) (rate(x{ {{ selector }} }[{{ window }}])))",
        requests="sum by ({{ by }}) (x{ {{ selector }} }[{{ window }}])",
        errors="sum by ({{ by }}) (x{ {{ selector }} }[{{ window }}])",
    )
    reader = MetricsReader(PrometheusClient(stack.prometheus_url))
    with pytest.raises(PrometheusQueryError, match="rejected"):
        reader.read([WindowRequest(Subset("test"), broken, 10, time.time())])
    assert reader.client.requests_sent == 1  # not retried


label_values = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=label_values, other=label_values)
def test_escaped_strings_and_regexes_mean_exactly_the_value_to_prometheus(stack, value, other):
    """Prometheus itself parses the escaped forms: a string literal comes back as the exact value,
    and the regex literal matches the value and nothing else."""
    client = PrometheusClient(stack.prometheus_url)
    # label_replace expands $-references in its replacement: $$ is a literal dollar.
    replacement = promql_string(value.replace("$", "$$"))
    labelled = f'label_replace(vector(1), "n", {replacement}, "", "")'
    result = client.query(labelled, time.time())
    assert result[0].labels.get("n", "") == value
    for candidate in (value, other):
        probe = f'label_replace({labelled}, "m", "yes", "n", {promql_string(regex_literal(candidate))})'
        matched = client.query(probe, time.time())[0].labels.get("m") == "yes"
        assert matched == (candidate == value)


def test_hostile_subset_names_give_a_valid_query_and_nodata(stack):
    reader = MetricsReader(PrometheusClient(stack.prometheus_url))
    hostile = Subset('test"} or vector(1) or {a="', workload='.*|x\\"')
    result = reader.read([WindowRequest(hostile, ISTIO, 10, time.time())])[0]
    assert isinstance(result, NoData)


def test_nan_from_prometheus_is_nodata_not_a_number(stack, sent):
    end = sent[1]
    nan = ISTIO.model_copy(update={"name": "istio-nan", "requests": f"({ISTIO.requests}) * (0/0)"})
    reader = MetricsReader(PrometheusClient(stack.prometheus_url))
    result = reader.read([WindowRequest(SUBSETS[ISTIO.name]["ga"], nan, end - sent[0], end)])[0]
    assert isinstance(result, NoData)
    assert "NaN" in result.reason
