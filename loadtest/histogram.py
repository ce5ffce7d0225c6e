"""A fixed-size log-linear latency histogram: O(1) memory and O(1) recording.

hey keeps every latency in a list (up to a million); a load generator that runs for hours cannot.
This is the HdrHistogram layout with two significant binary digits of mantissa: values are integer
microseconds, exact below 256 µs, and above that every power of two is split into 128 equal
sub-buckets, so a bucket is never wider than 1/128 (0.8 %) of its lower bound. 4096 buckets reach
2^37 µs (38 hours). Written here rather than taken from a library because the hot path needs a
two-line index computation on plain ints, and the structure must merge and serialise across Locust
workers as a plain dict (the ``hdrhistogram`` package's encoded form is neither lean nor readable).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

SUB_BITS = 7
SUB = 1 << SUB_BITS  # sub-buckets per power of two (128)
LINEAR_LIMIT = SUB << 1  # values below this (256 µs) have their own bucket
SIZE = 4096
MAX_US = ((SIZE // SUB) << (SIZE // SUB - 1)) - 1  # the largest value that still fits


def bucket_index(micros: int) -> int:
    """The bucket of a value in integer microseconds (clamped to the histogram's range)."""
    if micros < LINEAR_LIMIT:
        return micros if micros > 0 else 0
    shift = micros.bit_length() - (SUB_BITS + 1)
    index = (shift << SUB_BITS) + (micros >> shift)
    return index if index < SIZE else SIZE - 1


def bucket_bounds(index: int) -> tuple[int, int]:
    """``[low, high)`` of a bucket, in integer microseconds."""
    if index < LINEAR_LIMIT:
        return index, index + 1
    shift = (index >> SUB_BITS) - 1
    mantissa = index - (shift << SUB_BITS)
    return mantissa << shift, (mantissa + 1) << shift


def bucket_value(index: int) -> float:
    """The representative value of a bucket in seconds: its midpoint (exact below 256 µs)."""
    low, high = bucket_bounds(index)
    return (low + (high - 1)) / 2e6 if high - low > 1 else low / 1e6


@dataclass
class LatencyHistogram:
    """Counts of latencies in fixed log-linear buckets, with the exact count, sum, min and max.

    ``counts`` is sparse (bucket index → count) so that an idle or narrow histogram serialises
    small; it never holds more than :data:`SIZE` keys whatever the number of samples.
    """

    counts: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    minimum: float = float("inf")
    maximum: float = 0.0

    def record(self, seconds: float) -> None:
        """Add one latency (seconds)."""
        micros = int(seconds * 1e6)
        index = bucket_index(micros)
        counts = self.counts
        counts[index] = counts.get(index, 0) + 1
        self.count += 1
        self.total += seconds
        self.minimum = min(self.minimum, seconds)
        self.maximum = max(self.maximum, seconds)

    def merge(self, other: LatencyHistogram) -> None:
        """Add every sample of ``other`` to this histogram."""
        counts = self.counts
        for index, n in other.counts.items():
            counts[index] = counts.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    @property
    def mean(self) -> float:
        """Average latency in seconds (0 when empty)."""
        return self.total / self.count if self.count else 0.0

    def buckets(self) -> Iterator[tuple[int, int]]:
        """Non-empty buckets as ``(index, count)`` in increasing order."""
        for index in sorted(self.counts):
            yield index, self.counts[index]

    def _clamped(self, value: float) -> float:
        return min(max(value, self.minimum), self.maximum)

    def quantile(self, q: float) -> float:
        """The smallest recorded value (bucket midpoint, within min..max) with rank ≥ ``q``·count.

        ``q`` in ``[0, 1]``; 0 when empty. Like hey's, the rank is taken over sorted samples, so
        the relative error is at most half a bucket (0.4 %).
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within [0, 1], got {q}")
        if self.count == 0:
            return 0.0
        rank = q * self.count
        seen = 0
        for index, n in self.buckets():
            seen += n
            if seen >= rank and seen > 0:
                return self._clamped(bucket_value(index))
        return self.maximum

    def hey_percentile(self, percent: int) -> float:
        """The value hey prints for ``percent``: the first sorted sample ``i`` with ``i*100//n >= p``."""
        if self.count == 0:
            return 0.0
        # hey's index: smallest i with floor(i*100/n) >= p, i.e. i = ceil(p*n/100)
        target = -(-percent * self.count // 100)
        if target >= self.count:
            return 0.0  # hey's loop never reaches that index and prints nothing
        seen = 0
        for index, n in self.buckets():
            seen += n
            if seen > target:
                return self._clamped(bucket_value(index))
        return self.maximum

    def cumulative_at(self, bound_seconds: float) -> int:
        """How many samples are ≤ ``bound_seconds`` (by bucket: a bucket counts when its midpoint is)."""
        total = 0
        for index, n in self.buckets():
            if bucket_value(index) > bound_seconds:
                break
            total += n
        return total

    def to_dict(self) -> dict[str, Any]:
        """A JSON- and msgpack-friendly form (bucket keys as strings), for Locust reports and APIs."""
        return {
            "counts": {str(k): v for k, v in self.counts.items()},
            "count": self.count,
            "total": self.total,
            "min": self.minimum if self.count else None,
            "max": self.maximum,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyHistogram:
        """Inverse of :meth:`to_dict`."""
        minimum = data.get("min")
        return cls(
            counts={int(k): int(v) for k, v in data["counts"].items()},
            count=int(data["count"]),
            total=float(data["total"]),
            minimum=float("inf") if minimum is None else float(minimum),
            maximum=float(data["max"]),
        )
