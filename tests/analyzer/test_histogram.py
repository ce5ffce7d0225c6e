"""Histogram: validation, bucket arithmetic, and quantiles checked against Prometheus (promtool)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.histogram import Histogram
from tests.analyzer.promtool import QuantileCase, run_promtool, write_rule_test
from tests.support import require_binary

INF = math.inf
PODINFO = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, INF)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bounds", "counts", "message"),
    [
        ((0.1, 0.05, INF), (1, 2, 3), "ascending"),
        ((0.2, 0.1, 0.1, INF), (1, 2, 2, 3), "ascending"),
        ((0.1, 1.0), (1, 2), r"last bound must be \+Inf"),
        ((0.1, 1.0, INF), (1, 2), "lengths must match"),
        ((0.1, 1.0, INF), (1, -2, 3), r"counts\[1\] \(le=1.0\) is negative"),
        ((0.1, 1.0, INF), (1, math.nan, 3), r"counts\[1\] \(le=1.0\) is NaN"),
        ((0.1, 1.0, INF), (1, 2, INF), "infinite"),
        ((), (), "bounds is empty"),
        ((0.1, "x", INF), (1, 2, 3), r"bounds\[1\] is not a number"),
        ((0.1, math.nan, INF), (1, 2, 3), r"bounds\[1\] is NaN"),
    ],
)
def test_from_cumulative_rejects_bad_input(bounds, counts, message) -> None:
    with pytest.raises(ValueError, match=message):
        Histogram.from_cumulative(bounds, counts)


def test_inf_as_string_and_bucket_arithmetic() -> None:
    h = Histogram.from_cumulative([0.1, 1, "+Inf"], [2, 5, 9])
    assert h.bounds == (0.1, 1.0, INF)
    assert h.counts == (2.0, 3.0, 4.0)
    assert h.total == 9.0
    assert h.exceedance(0.1) == 7.0
    assert h.count_at_most(1) == 5.0
    assert not h.forced_monotonic
    assert h.nearest_bound(0.4) == 0.1
    assert h.nearest_bound(0.7) == 1.0
    with pytest.raises(ValueError, match=r"bound 0\.3 is not one of"):
        h.exceedance(0.3)


def test_non_monotonic_counts_take_the_running_maximum() -> None:
    h = Histogram.from_cumulative([0.1, 1, 2, INF], [5, 3, 6, 4])
    assert h.cumulative == (5.0, 5.0, 6.0, 6.0)
    assert h.counts == (5.0, 0.0, 1.0, 0.0)
    assert h.forced_monotonic


def test_add_merges_windows_and_rejects_other_bounds() -> None:
    a = Histogram.from_counts(PODINFO, [1] * 12)
    b = Histogram.from_counts(PODINFO, [2] * 12)
    assert (a + b).counts == (3.0,) * 12
    assert (a + b).total == 36.0
    with pytest.raises(ValueError, match="different bounds"):
        _ = a + Histogram.empty((1.0, INF))


def test_direct_construction_rejects_non_monotonic() -> None:
    with pytest.raises(ValueError, match="monotonic"):
        Histogram(bounds=(1.0, INF), cumulative=(3.0, 2.0))


# --- quantiles: named edge cases, checked by hand and by promtool -------------------------------

EDGE_CASES: dict[str, tuple[QuantileCase, float]] = {
    "interpolation": (QuantileCase((0.1, 1.0, INF), (0, 5, 7), 0.3), 0.1 + 0.9 * (2.1 / 5)),
    "lower edge 0": (QuantileCase((0.1, 1.0, INF), (4, 5, 7), 0.25), 0.1 * (1.75 / 4)),
    "rank in +Inf bucket": (QuantileCase((0.1, 1.0, INF), (1, 2, 10), 0.9), 1.0),
    "q = 1 in +Inf bucket": (QuantileCase((0.1, 1.0, INF), (1, 2, 10), 1.0), 1.0),
    "q = 1 all finite": (QuantileCase((0.1, 1.0, INF), (1, 10, 10), 1.0), 1.0),
    "empty": (QuantileCase((0.1, 1.0, INF), (0, 0, 0), 0.5), math.nan),
    "only +Inf bucket": (QuantileCase((INF,), (5,), 0.5), math.nan),
    "q < 0": (QuantileCase((0.1, 1.0, INF), (1, 2, 3), -0.5), -INF),
    "q > 1": (QuantileCase((0.1, 1.0, INF), (1, 2, 3), 1.5), INF),
    "q > 1 on empty": (QuantileCase((0.1, 1.0, INF), (0, 0, 0), 2.0), INF),
    "q NaN": (QuantileCase((0.1, 1.0, INF), (1, 2, 3), math.nan), math.nan),
    "q = 0 with empty first bucket (0/0)": (QuantileCase((0.1, 1.0, INF), (0, 2, 3), 0.0), math.nan),
    "q = 0 with full first bucket": (QuantileCase((0.1, 1.0, INF), (2, 2, 3), 0.0), 0.0),
    "non-monotonic": (QuantileCase((0.1, 1.0, 2.0, INF), (5, 3, 8, 6), 0.7), 1.0 + 1.0 * ((5.6 - 5) / 3)),
    "non-integer counts": (QuantileCase((0.1, 1.0, INF), (0.5, 2.25, 2.75), 0.5), 0.1 + 0.9 * (0.875 / 1.75)),
    "negative first bound": (QuantileCase((-1.0, 1.0, INF), (3, 5, 6), 0.2), -1.0),
    "zero first bound": (QuantileCase((0.0, 1.0, INF), (3, 5, 6), 0.2), 0.0),
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_quantile_edge_cases_by_hand(name: str) -> None:
    case, expected = EDGE_CASES[name]
    got = Histogram.from_cumulative(case.bounds, case.counts).quantile(case.q)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-12, abs=0)


def test_quantile_edge_cases_agree_with_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "Debian package prometheus")
    result = run_promtool(promtool, [case for case, _ in EDGE_CASES.values()], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_catches_a_wrong_value(tmp_path: Path) -> None:
    """The harness can fail: a deliberately wrong expectation is reported by promtool."""
    promtool = require_binary("promtool", "Debian package prometheus")
    case = QuantileCase((0.1, 1.0, INF), (0, 5, 7), 0.3)
    path = tmp_path / "t.yml"
    write_rule_test([case], path)
    right = repr(Histogram.from_cumulative(case.bounds, case.counts).quantile(case.q))
    path.write_text(path.read_text().replace(f"value: {right}", "value: 0.47800000000000004"))
    import subprocess

    out = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "4.780000000000001E-01" in out.stdout + out.stderr


# --- property test: many random histograms, one promtool run per hypothesis example -------------

_bound_sets = st.sampled_from(
    [PODINFO, (0.1, 1.0, INF), (-2.0, -0.5, 0.0, 0.5, 3.0, INF), (1e-06, 0.003, 7.5, 1e6, INF), (INF,)]
)
_count = st.one_of(
    st.integers(0, 50).map(float),
    st.floats(0, 1e4, allow_nan=False, allow_infinity=False),
    st.just(0.0),
)
_q = st.one_of(
    st.floats(0, 1),
    st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0, -0.1, 1.1, math.nan]),
)


@st.composite
def _cases(draw: st.DrawFn) -> QuantileCase:
    bounds = draw(_bound_sets)
    raw = draw(st.lists(_count, min_size=len(bounds), max_size=len(bounds)))
    # Mostly proper cumulative counts; sometimes raw (non-monotonic) ones as broken exporters send.
    counts = raw if draw(st.booleans()) and draw(st.booleans()) else list(_cumsum(raw))
    return QuantileCase(bounds, tuple(counts), draw(_q))


def _cumsum(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


@settings(max_examples=4, deadline=None)
@given(cases=st.lists(_cases(), min_size=60, max_size=60))
def test_quantile_equals_prometheus_histogram_quantile(cases: list[QuantileCase], tmp_path_factory) -> None:
    promtool = require_binary("promtool", "Debian package prometheus")
    result = run_promtool(promtool, cases, tmp_path_factory.mktemp("promtool"))
    assert result.returncode == 0, result.stdout + result.stderr
