"""The log-linear histogram: bounded error, exact counts, lossless merge and serialisation."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from loadtest.histogram import SIZE, LatencyHistogram, bucket_bounds, bucket_index

latencies = st.lists(st.floats(min_value=0.0, max_value=100.0, allow_nan=False), min_size=1, max_size=300)


@given(st.integers(min_value=0, max_value=10**11))
def test_bucket_contains_its_value_and_is_narrow(micros: int) -> None:
    index = bucket_index(micros)
    assert 0 <= index < SIZE
    low, high = bucket_bounds(index)
    assert low <= micros < high
    assert high - low <= max(1, low / 128)


def test_buckets_tile_the_range_without_gaps() -> None:
    previous_high = 0
    for index in range(SIZE):
        low, high = bucket_bounds(index)
        assert low == previous_high
        previous_high = high


def hey_value(values: list[float], p: int) -> float:
    """hey's own percentile: first sorted sample i with i*100//n >= p."""
    ordered = sorted(values)
    for i, v in enumerate(ordered):
        if i * 100 // len(ordered) >= p:
            return v
    return 0.0


@given(latencies)
def test_percentiles_match_hey_within_half_a_bucket(values: list[float]) -> None:
    hist = LatencyHistogram()
    for v in values:
        hist.record(v)
    assert hist.count == len(values)
    assert hist.minimum == min(values) and hist.maximum == max(values)
    assert math.isclose(hist.total, sum(values), rel_tol=1e-9, abs_tol=1e-9)
    for p in (10, 50, 90, 99):
        exact = hey_value(values, p)
        approx = hist.hey_percentile(p)
        if exact == 0.0:
            assert approx == 0.0 or approx <= 1e-6
        else:
            assert abs(approx - exact) <= exact / 128 + 1e-6


@given(latencies, latencies)
def test_merge_equals_recording_everything(a: list[float], b: list[float]) -> None:
    left, right, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for v in a:
        left.record(v)
        both.record(v)
    for v in b:
        right.record(v)
        both.record(v)
    left.merge(right)
    assert left.counts == both.counts
    assert left.count == both.count
    assert LatencyHistogram.from_dict(left.to_dict()) == left


def test_memory_is_bounded_whatever_the_number_of_samples() -> None:
    hist = LatencyHistogram()
    for i in range(200_000):
        hist.record((i % 5000) * 1e-5 + (i % 7) * 3.0)
    assert len(hist.counts) < SIZE
    assert hist.count == 200_000
