"""Classic Prometheus histograms, with quantiles exactly as PromQL's ``histogram_quantile``.

A classic histogram is a list of ``le`` upper bounds (ascending, the last one ``+Inf``) with a
cumulative count per bound. :meth:`Histogram.quantile` reproduces the arithmetic of Prometheus
(``promql/quantile.go``: ``bucketQuantile``) operation for operation, so the floats are bit-identical
to what Prometheus returns; the test suite checks that against ``promtool``. It is written here
rather than borrowed because no Python library reproduces those edge cases.

Two steps come before the quantile arithmetic, as in ``bucketQuantile``:

- ``coalesceBuckets``: buckets whose ``le`` values are the same number written differently
  (``"0.2"``, ``"2e-1"``, ``"2.0e-1"``; ``"+Inf"``, ``"+inf"``) are one bucket, their counts added.
  A Prometheus 2.x scraping two exporters that spell a bound differently (``le="1"`` and
  ``le="1.0"``) stores two series; ``histogram_quantile`` adds them, so :meth:`from_cumulative` does.
- the monotonicity fix-up, which changed in Prometheus 2.49.0 (prometheus/prometheus#13153,
  ``ensureMonotonicAndIgnoreSmallDeltas``): before, counts that decrease are raised to the running
  maximum (:attr:`Monotonicity.ENVELOPE`); since, a count whose relative difference from the last
  kept one is below 1e-12 (``almost.Equal``) is first set equal to it, in both directions, and then
  decreases are removed (:attr:`Monotonicity.SMALL_DELTAS`). :meth:`Monotonicity.for_version` picks
  the server's, from ``/api/v1/status/buildinfo``.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Histogram", "Monotonicity"]

# promql/quantile.go: smallDeltaTolerance (Prometheus >= 2.49.0).
SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = sys.float_info.min  # math.Float64frombits(0x0010000000000000), util/almost


class Monotonicity(StrEnum):
    """How non-monotonic cumulative counts are repaired, by Prometheus version."""

    #: Prometheus < 2.49: every decrease is raised to the running maximum (``ensureMonotonic``).
    ENVELOPE = "envelope"
    #: Prometheus >= 2.49 (3.x included): relative differences below 1e-12 are equal in both
    #: directions, then decreases are removed (``ensureMonotonicAndIgnoreSmallDeltas``).
    SMALL_DELTAS = "small-deltas"

    @classmethod
    def for_version(cls, version: str | None) -> Monotonicity:
        """The fix-up of the Prometheus whose build info says ``version`` (``"2.42.0+ds"``,
        ``"3.5.0"``); an unknown or unreadable version gets the current one, :attr:`SMALL_DELTAS`."""
        match = re.match(r"^v?(\d+)\.(\d+)", (version or "").strip())
        if match is None:
            return cls.SMALL_DELTAS
        major, minor = int(match[1]), int(match[2])
        return cls.ENVELOPE if (major, minor) < (2, 49) else cls.SMALL_DELTAS


def _almost_equal(a: float, b: float, epsilon: float) -> bool:
    """Prometheus' ``util/almost.Equal`` for finite, non-negative counts."""
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, sys.float_info.max) < epsilon


Numbers = Sequence[float | int | str] | npt.NDArray[Any]


def _as_floats(values: Iterable[float | int | str] | npt.NDArray[Any], name: str) -> tuple[float, ...]:
    out: list[float] = []
    for i, value in enumerate(values):
        try:
            out.append(float(value))
        except (TypeError, ValueError):
            raise ValueError(f"{name}[{i}] is not a number: {value!r}") from None
    return tuple(out)


def _check_bounds(bounds: tuple[float, ...], *, allow_equal: bool = False) -> None:
    if not bounds:
        raise ValueError("bounds is empty: a histogram needs at least the +Inf bound")
    for i, bound in enumerate(bounds):
        if math.isnan(bound):
            raise ValueError(f"bounds[{i}] is NaN")
    for i in range(1, len(bounds)):
        if bounds[i] < bounds[i - 1] or (bounds[i] == bounds[i - 1] and not allow_equal):
            raise ValueError(
                f"bounds must be {'ascending' if allow_equal else 'strictly ascending'}: "
                f"bounds[{i - 1}]={bounds[i - 1]!r} is followed by bounds[{i}]={bounds[i]!r}"
            )
    if bounds[-1] != math.inf:
        raise ValueError(f"the last bound must be +Inf, got {bounds[-1]!r}")


def _coalesce(
    bounds: tuple[float, ...], counts: tuple[float, ...]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Prometheus' ``coalesceBuckets``: equal (ascending) bounds become one bucket, counts added."""
    out_bounds: list[float] = []
    out_counts: list[float] = []
    for bound, count in zip(bounds, counts, strict=True):
        if out_bounds and bound == out_bounds[-1]:
            out_counts[-1] += count
        else:
            out_bounds.append(bound)
            out_counts.append(count)
    return tuple(out_bounds), tuple(out_counts)


def _check_counts(counts: tuple[float, ...], bounds: tuple[float, ...], name: str) -> None:
    if len(counts) != len(bounds):
        raise ValueError(f"{name} has {len(counts)} values but bounds has {len(bounds)}: lengths must match")
    for i, count in enumerate(counts):
        if math.isnan(count):
            raise ValueError(f"{name}[{i}] (le={bounds[i]!r}) is NaN")
        if count < 0:
            raise ValueError(f"{name}[{i}] (le={bounds[i]!r}) is negative: {count!r}")
        if math.isinf(count):
            raise ValueError(f"{name}[{i}] (le={bounds[i]!r}) is infinite")


@dataclass(frozen=True)
class Histogram:
    """A classic histogram: ``bounds`` (the ``le`` values) and their ``cumulative`` counts.

    ``cumulative`` is always monotonic: counts that decrease with a growing bound are raised to the
    running maximum, as Prometheus' ``ensureMonotonic`` does before computing a quantile;
    ``forced_monotonic`` records that it happened. Counts may be non-integers (``increase()``
    extrapolates). Build instances with :meth:`from_cumulative` or :meth:`from_counts`.
    """

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    forced_monotonic: bool = False

    def __post_init__(self) -> None:
        _check_bounds(self.bounds)
        _check_counts(self.cumulative, self.bounds, "cumulative")
        if any(b < a for a, b in zip(self.cumulative, self.cumulative[1:], strict=False)):
            raise ValueError("cumulative counts must be monotonic; use Histogram.from_cumulative")

    @classmethod
    def from_cumulative(
        cls, bounds: Numbers, counts: Numbers, *, monotonicity: Monotonicity = Monotonicity.ENVELOPE
    ) -> Histogram:
        """Histogram from ``le`` bounds and cumulative counts as Prometheus exposes them.

        ``bounds`` ascend and end with ``math.inf`` (strings such as ``"+Inf"``, ``"2e-1"`` are
        parsed as numbers). Equal bounds (the same number spelled differently) are one bucket whose
        count is their sum, as ``histogram_quantile`` coalesces them. Raises ``ValueError`` naming the
        problem for unsorted bounds, a missing +Inf bound, a length mismatch, or negative, infinite or
        NaN counts. Non-monotonic counts are repaired as the Prometheus of ``monotonicity`` does
        (default: the running maximum of Prometheus < 2.49, the installed 2.42's).
        """
        b = _as_floats(bounds, "bounds")
        c = _as_floats(counts, "counts")
        _check_bounds(b, allow_equal=True)
        _check_counts(c, b, "counts")
        b, c = _coalesce(b, c)
        if monotonicity is Monotonicity.SMALL_DELTAS:
            return cls._small_deltas(b, c)
        envelope: list[float] = []
        running = -math.inf
        forced = False
        for count in c:
            if count < running:
                forced = True
            running = max(running, count)
            envelope.append(running)
        return cls(bounds=b, cumulative=tuple(envelope), forced_monotonic=forced)

    @classmethod
    def _small_deltas(cls, bounds: tuple[float, ...], counts: tuple[float, ...]) -> Histogram:
        """``ensureMonotonicAndIgnoreSmallDeltas`` (Prometheus >= 2.49), step for step."""
        out = [counts[0]]
        prev = counts[0]
        forced = False
        for curr in counts[1:]:
            if curr == prev:
                out.append(curr)
            elif _almost_equal(prev, curr, SMALL_DELTA_TOLERANCE):
                out.append(prev)  # a float artefact, either direction: 'prev' is kept
            elif curr < prev:
                out.append(prev)
                forced = True
            else:
                out.append(curr)
                prev = curr
        return cls(bounds=bounds, cumulative=tuple(out), forced_monotonic=forced)

    @classmethod
    def from_counts(cls, bounds: Numbers, counts: Numbers) -> Histogram:
        """Histogram from per-bucket (non-cumulative) counts: ``counts[i]`` observations in bucket ``i``."""
        b = _as_floats(bounds, "bounds")
        c = _as_floats(counts, "counts")
        _check_bounds(b)
        _check_counts(c, b, "counts")
        return cls(bounds=b, cumulative=tuple(float(x) for x in np.cumsum(c)))

    @classmethod
    def empty(cls, bounds: Numbers) -> Histogram:
        """A histogram with the given bounds and no observations."""
        b = _as_floats(bounds, "bounds")
        return cls(bounds=b, cumulative=(0.0,) * len(b))

    @property
    def counts(self) -> tuple[float, ...]:
        """Observations per bucket: bucket ``i`` holds values in ``(bounds[i-1], bounds[i]]``."""
        c = self.cumulative
        return (c[0], *(c[i] - c[i - 1] for i in range(1, len(c))))

    def counts_array(self) -> npt.NDArray[np.float64]:
        """:attr:`counts` as a numpy array."""
        return np.asarray(self.counts, dtype=np.float64)

    @property
    def total(self) -> float:
        """Number of observations (the +Inf bucket's cumulative count)."""
        return self.cumulative[-1]

    def count_at_most(self, bound: float) -> float:
        """Observations ``<= bound``; ``bound`` must be one of :attr:`bounds`."""
        return self.cumulative[self._index(bound)]

    def exceedance(self, bound: float) -> float:
        """Observations ``> bound``; ``bound`` must be one of :attr:`bounds`."""
        return self.total - self.count_at_most(bound)

    def _index(self, bound: float) -> int:
        try:
            return self.bounds.index(float(bound))
        except ValueError:
            raise ValueError(f"bound {bound!r} is not one of the histogram's bounds {self.bounds}") from None

    def nearest_bound(self, value: float) -> float:
        """The finite bound closest to ``value`` (ties go to the larger bound)."""
        finite = [b for b in self.bounds if math.isfinite(b)]
        if not finite:
            raise ValueError("the histogram has no finite bound")
        if math.isnan(value):
            raise ValueError("value is NaN")
        return min(finite, key=lambda b: (abs(b - value), -b))

    def __add__(self, other: object) -> Histogram:
        """Merge two windows with the same bounds (counts add up)."""
        if not isinstance(other, Histogram):
            return NotImplemented
        if other.bounds != self.bounds:
            raise ValueError(f"cannot add histograms with different bounds: {self.bounds} and {other.bounds}")
        return Histogram(
            bounds=self.bounds,
            cumulative=tuple(a + b for a, b in zip(self.cumulative, other.cumulative, strict=True)),
            forced_monotonic=self.forced_monotonic or other.forced_monotonic,
        )

    def quantile(self, q: float) -> float:
        """The ``q``-quantile exactly as Prometheus 2.42 ``histogram_quantile(q, ...)`` computes it.

        Linear interpolation inside the bucket holding rank ``q * total``, with a lower edge of 0 for
        the first bucket when its bound is positive (its bound itself when it is <= 0); a rank in the
        +Inf bucket returns the largest finite bound. Special cases, as in PromQL: ``q`` NaN -> NaN,
        ``q < 0`` -> -Inf, ``q > 1`` -> +Inf (even for an empty histogram), no observations or no
        finite bound -> NaN, and ``q = 0`` with an empty first bucket -> NaN (Prometheus divides 0/0).
        """
        if math.isnan(q):
            return math.nan
        if q < 0:
            return -math.inf
        if q > 1:
            return math.inf
        bounds, cum = self.bounds, self.cumulative
        if len(bounds) < 2:
            return math.nan
        observations = cum[-1]
        if observations == 0:
            return math.nan
        rank = q * observations
        # sort.Search over all but the +Inf bucket: the first bucket whose cumulative count reaches rank.
        b = next((i for i in range(len(bounds) - 1) if cum[i] >= rank), len(bounds) - 1)
        if b == len(bounds) - 1:
            return bounds[-2]
        if b == 0 and bounds[0] <= 0:
            return bounds[0]
        bucket_start = 0.0
        bucket_end = bounds[b]
        count = cum[b]
        if b > 0:
            bucket_start = bounds[b - 1]
            count -= cum[b - 1]
            rank -= cum[b - 1]
        if count == 0:  # only when rank == 0: Go's 0/0 is NaN, Python would raise
            return math.nan
        return bucket_start + (bucket_end - bucket_start) * (rank / count)
