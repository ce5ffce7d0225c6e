"""The same bucket bound spelled twice, and the monotonicity fix-up of each Prometheus version.

Prometheus' ``histogram_quantile`` adds up the buckets of one histogram whose ``le`` values are the
same number written differently (upstream checks this with its ``mixed_bucket`` cases in
``promql/promqltest/testdata/histograms.test``; the data here is our own). Checked three ways:
against ``promtool`` (the installed Prometheus 2.42), against a real Prometheus scraping such a
histogram through the query layer, and, for the fix-up of Prometheus >= 2.49 that no installed
binary runs here, against the documented semantics of ``ensureMonotonicAndIgnoreSmallDeltas``.
"""

from __future__ import annotations

import math
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.histogram import Histogram, Monotonicity
from analyzer.prometheus import MetricsReader, PrometheusClient, QueryTemplate, Subset
from analyzer.prometheus.query import SubsetMetrics
from tests.analyzer.promtool import write_series_test
from tests.support import require_binary

INF = math.inf

# (le as written, cumulative count) per series; one case per histogram. Our own data, in the spirit
# of upstream's mixed_bucket: the same bound in several spellings, +Inf in two.
SPELLED: dict[str, list[tuple[str, float]]] = {
    "three-spellings": [("0.05", 2), ("0.5", 2), ("5e-1", 3), ("5.0e-1", 1), ("1", 9), ("+Inf", 11)],
    "two-infs": [("0.25", 1), ("1", 3), ("+Inf", 4), ("+inf", 4)],
    "int-and-float": [("1", 3), ("1.0", 2), ("1e0", 0), ("10", 8), ("10.0", 1), ("+Inf", 20)],
    "merge-then-monotonic": [("0.1", 5), ("1", 2), ("1.0", 2), ("2", 4), ("+Inf", 7)],
    "all-zero": [("+inf", 0), ("+Inf", 0)],
}


def from_spelled(series: list[tuple[str, float]], **kwargs) -> Histogram:
    ordered = sorted(series, key=lambda s: float(s[0]))  # Prometheus sorts by the parsed bound
    return Histogram.from_cumulative([le for le, _ in ordered], [c for _, c in ordered], **kwargs)


def test_equal_bounds_are_one_bucket_with_the_counts_added():
    h = from_spelled(SPELLED["three-spellings"])
    assert h.bounds == (0.05, 0.5, 1.0, INF)
    assert h.cumulative == (2.0, 6.0, 9.0, 11.0)
    assert not h.forced_monotonic
    h = from_spelled(SPELLED["merge-then-monotonic"])
    assert h.bounds == (0.1, 1.0, 2.0, INF)
    assert h.cumulative == (5.0, 5.0, 5.0, 7.0) and h.forced_monotonic  # 4 after merging, then raised
    assert math.isnan(from_spelled(SPELLED["all-zero"]).quantile(0.5))


def write_spelled_rule_test(cases: list[tuple[list[tuple[str, float]], float]], path: Path) -> None:
    """A promtool rule test asserting our quantile of every (series, q) case."""
    write_series_test([(series, q, from_spelled(series).quantile(q)) for series, q in cases], path)


def promtool_agrees(cases, directory: Path) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool", "Debian package prometheus")
    path = directory / "spelled_test.yml"
    write_spelled_rule_test(cases, path)
    return subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def test_spelled_bounds_agree_with_promtool(tmp_path):
    cases = [(series, q) for series in SPELLED.values() for q in (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)]
    result = promtool_agrees(cases, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promtool_harness_can_fail(tmp_path):
    path = tmp_path / "wrong_test.yml"
    write_spelled_rule_test([(SPELLED["three-spellings"], 0.5)], path)
    text = path.read_text()
    right = repr(from_spelled(SPELLED["three-spellings"]).quantile(0.5))
    path.write_text(text.replace(f"value: {right}", "value: 0.123"))
    promtool = require_binary("promtool", "Debian package prometheus")
    out = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode != 0


def _spellings(bound: float) -> list[str]:
    if math.isinf(bound):
        return ["+Inf", "+inf", "Inf", "inf"]
    out = [repr(bound), f"{bound:e}", f"{bound:.4e}", f"{bound:E}"]
    if float(int(bound)) == bound:
        out.append(str(int(bound)))
    return out


@st.composite
def _spelled_case(draw: st.DrawFn) -> tuple[list[tuple[str, float]], float]:
    bounds = draw(st.sampled_from([(0.005, 0.25, 1.0, 10.0, INF), (0.1, 2.0, INF), (INF,)]))
    series: list[tuple[str, float]] = []
    for bound in bounds:
        spellings = draw(st.lists(st.sampled_from(_spellings(bound)), min_size=1, max_size=3, unique=True))
        for le in spellings:
            series.append((le, float(draw(st.integers(0, 30)))))
    q = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0]))
    return series, q


@settings(max_examples=5, deadline=None)
@given(cases=st.lists(_spelled_case(), min_size=40, max_size=40))
def test_random_spellings_agree_with_promtool(cases, tmp_path_factory):
    result = promtool_agrees(cases, tmp_path_factory.mktemp("spelled"))
    assert result.returncode == 0, result.stdout + result.stderr


# --- the fix-up of Prometheus >= 2.49 (3.x): the documented semantics, table-driven ----------------

BIG = 1e15  # at this size one observation is a relative difference of 5e-16 < 1e-12


@pytest.mark.parametrize(
    ("counts", "envelope", "small_deltas", "forced_small"),
    [
        # A float artefact upwards then back: kept equal to the first (not raised) in 3.x.
        ((BIG, BIG + 1, BIG, BIG + 5), (BIG, BIG + 1, BIG + 1, BIG + 5), (BIG, BIG, BIG, BIG), False),
        # A tiny decrease: 2.x raises it silently, 3.x treats it as equal (no forced monotonicity).
        ((10.0, 10.0 - 1e-13, 12.0), (10.0, 10.0, 12.0), (10.0, 10.0, 12.0), False),
        # A real decrease is removed by both; the last kept value stays the reference.
        ((5.0, 3.0, 6.0, 4.0), (5.0, 5.0, 6.0, 6.0), (5.0, 5.0, 6.0, 6.0), True),
        # Zero against a tiny value: almost.Equal compares against the smallest normal float.
        ((0.0, 1e-300, 1.0), (0.0, 1e-300, 1.0), (0.0, 1e-300, 1.0), False),
    ],
)
def test_small_deltas_follow_ensure_monotonic_and_ignore_small_deltas(
    counts, envelope, small_deltas, forced_small
):
    bounds = (*(float(i + 1) for i in range(len(counts) - 1)), INF)
    old = Histogram.from_cumulative(bounds, counts, monotonicity=Monotonicity.ENVELOPE)
    new = Histogram.from_cumulative(bounds, counts, monotonicity=Monotonicity.SMALL_DELTAS)
    assert old.cumulative == envelope
    assert new.cumulative == small_deltas
    assert new.forced_monotonic is forced_small


def test_the_p99_moves_with_the_fix_up_as_it_does_on_the_server():
    # 1e15 observations, 1 of them in a bucket above: 2.x puts a quantile there, 3.x does not.
    counts = (BIG, BIG + 1, BIG + 1)
    bounds = (0.1, 0.2, INF)
    old = Histogram.from_cumulative(bounds, counts, monotonicity=Monotonicity.ENVELOPE)
    new = Histogram.from_cumulative(bounds, counts, monotonicity=Monotonicity.SMALL_DELTAS)
    assert old.quantile(1.0) == 0.2
    assert new.quantile(1.0) == 0.1


@pytest.mark.parametrize(
    ("version", "mode"),
    [
        ("2.42.0+ds", Monotonicity.ENVELOPE),
        ("2.48.1", Monotonicity.ENVELOPE),
        ("2.49.0", Monotonicity.SMALL_DELTAS),
        ("v2.53.4", Monotonicity.SMALL_DELTAS),
        ("3.5.0", Monotonicity.SMALL_DELTAS),
        ("", Monotonicity.SMALL_DELTAS),
        (None, Monotonicity.SMALL_DELTAS),
        ("unknown", Monotonicity.SMALL_DELTAS),
    ],
)
def test_the_mode_follows_the_build_info_version(version, mode):
    assert Monotonicity.for_version(version) is mode


# --- the query layer against a real Prometheus scraping such a histogram --------------------------

EXPOSITION = """# TYPE lat untyped
lat_bucket{svc="a",le="0.1"} 1
lat_bucket{svc="a",le="0.2"} 1
lat_bucket{svc="a",le="2e-1"} 1
lat_bucket{svc="a",le="2.0e-1"} 1
lat_bucket{svc="a",le="+Inf"} 4
lat_count{svc="a"} 4
"""
TEMPLATE = QueryTemplate(
    name="spelled",
    selector={"service": "svc"},
    histogram="sum by ({{ by }}, le) (last_over_time(lat_bucket{ {{ selector }} }[{{ window }}]))",
    requests="sum by ({{ by }}) (last_over_time(lat_count{ {{ selector }} }[{{ window }}]))",
    errors='sum by ({{ by }}) (last_over_time(lat_count{ {{ selector }}, code="5xx" }[{{ window }}]))',
)


class _Exporter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = EXPOSITION.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass


@pytest.mark.integration
def test_the_query_layer_merges_what_a_real_prometheus_stores_apart():
    require_binary("prometheus", "apt-get install prometheus")
    from rollouts.local.prometheus import PrometheusServer, ScrapeTarget

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = ScrapeTarget("spelled", f"127.0.0.1:{server.server_address[1]}")
        with PrometheusServer([target], scrape_interval=0.5) as prom:
            client = PrometheusClient(prom.url)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(client.query('lat_bucket{svc="a"}', time.time())) < 5:
                time.sleep(0.2)
            now = time.time()
            stored = client.query('lat_bucket{svc="a"}', now)
            assert sorted(s.labels["le"] for s in stored) == ["+Inf", "0.1", "0.2", "2.0e-1", "2e-1"]
            server_p50 = client.query('histogram_quantile(0.5, sum by (le) (lat_bucket{svc="a"}))', now)
            reader = MetricsReader(client)
            result = reader.read_window(TEMPLATE, [Subset(namespace="", service="a")], 30, now)
            assert reader.monotonicity is Monotonicity.ENVELOPE  # the installed 2.42 said so
    finally:
        server.shutdown()
        server.server_close()
    metrics = result[Subset(namespace="", service="a")]
    assert isinstance(metrics, SubsetMetrics), metrics
    assert metrics.histogram.bounds == (0.1, 0.2, INF)
    assert metrics.histogram.cumulative == (1.0, 3.0, 4.0)
    assert metrics.histogram.quantile(0.5) == server_p50[0].value  # bit for bit (0.15000000000000002)
    assert math.isclose(server_p50[0].value, 0.15)


def test_the_build_version_is_asked_until_the_server_answers():
    import json

    from tests.support import free_port

    port = free_port()
    reader = MetricsReader(PrometheusClient(f"http://127.0.0.1:{port}", timeout=1))
    assert reader.monotonicity is Monotonicity.SMALL_DELTAS  # nothing answers: asked again next time

    class BuildInfo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "success", "data": {"version": "2.48.1"}}).encode()
            self.send_response(200 if self.path == "/api/v1/status/buildinfo" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), BuildInfo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert reader.monotonicity is Monotonicity.ENVELOPE
    finally:
        server.shutdown()
        server.server_close()
    assert reader.monotonicity is Monotonicity.ENVELOPE  # read once, kept
