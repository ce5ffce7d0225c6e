"""Mann–Whitney U from bucket counts in O(buckets).

Every request in a bucket shares one value (ties within a bucket), so ranks are midranks per bucket
and the whole test needs only the two count vectors. The statistic and the p-value equal
``scipy.stats.mannwhitneyu(xs, ys, alternative=..., use_continuity=True, method="asymptotic")`` on
the expanded samples (tie-corrected variance, continuity correction), without expanding them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from analyzer import special  # the standard library's, not scipy's: see analyzer/special.py
from analyzer.histogram import Histogram

__all__ = [
    "Alternative",
    "MannWhitneyResult",
    "bucket_counts",
    "effect_variance",
    "mann_whitney",
    "null_effect_variance",
]

Alternative = Literal["two-sided", "less", "greater"]
Counts = Histogram | Sequence[float] | npt.NDArray[np.float64]


@dataclass(frozen=True)
class MannWhitneyResult:
    """Result of :func:`mann_whitney`.

    ``statistic`` is U of ``x`` (as scipy reports it), ``pvalue`` the asymptotic p-value.
    ``effect`` is θ = U / (n_x n_y) = P(X > Y) + ½ P(X = Y): 0.5 when neither sample tends to be
    larger; above 0.5 when ``x`` tends to be larger (slower, for latencies). ``effect_variance`` is the
    DeLong (unconditional, ties-aware) variance estimate of ``effect``, valid away from the null too.
    """

    statistic: float
    pvalue: float
    effect: float
    effect_variance: float
    zscore: float
    n_x: float
    n_y: float


def bucket_counts(value: Counts, name: str = "counts") -> npt.NDArray[np.float64]:
    """Per-bucket counts of a :class:`Histogram`, or a validated copy of a per-bucket count vector."""
    if isinstance(value, Histogram):
        return value.counts_array()
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d sequence of per-bucket counts")
    if np.isnan(arr).any():
        raise ValueError(f"{name}[{int(np.flatnonzero(np.isnan(arr))[0])}] is NaN")
    if (arr < 0).any():
        raise ValueError(f"{name}[{int(np.flatnonzero(arr < 0)[0])}] is negative")
    if np.isinf(arr).any():
        raise ValueError(f"{name}[{int(np.flatnonzero(np.isinf(arr))[0])}] is infinite")
    return arr


def _pair(x: Counts, y: Counts) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if isinstance(x, Histogram) and isinstance(y, Histogram) and x.bounds != y.bounds:
        raise ValueError(f"x and y have different bounds: {x.bounds} and {y.bounds}")
    a, b = bucket_counts(x, "x"), bucket_counts(y, "y")
    if a.shape != b.shape:
        raise ValueError(f"x has {a.size} buckets but y has {b.size}: they must share the bounds")
    return a, b


def mann_whitney(x: Counts, y: Counts, alternative: Alternative = "two-sided") -> MannWhitneyResult:
    """Mann–Whitney U test of ``x`` against ``y`` from their bucket counts, in O(buckets).

    ``x`` and ``y`` are :class:`Histogram` objects with the same bounds or per-bucket count vectors
    of equal length (counts may be non-integers). ``alternative="greater"`` tests whether ``x`` tends
    to be larger than ``y``. An empty side gives NaN statistic and p-value, as scipy does.
    """
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    a, b = _pair(x, y)
    n1, n2 = float(a.sum()), float(b.sum())
    if n1 == 0 or n2 == 0:
        return MannWhitneyResult(math.nan, math.nan, math.nan, math.nan, math.nan, n1, n2)
    b_below = np.cumsum(b) - b  # y observations in lower buckets
    # U1 counts, for each x, the y's below it plus half the y's tied with it (same bucket).
    u1 = float(np.dot(a, b_below + 0.5 * b))
    u2 = n1 * n2 - u1
    if alternative == "greater":
        u, factor = u1, 1.0
    elif alternative == "less":
        u, factor = u2, 1.0
    else:
        u, factor = max(u1, u2), 2.0
    n = n1 + n2
    t = a + b
    tie_term = float(np.sum(t**3 - t))
    s = math.sqrt(max(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))), 0.0)) if n > 1 else 0.0
    numerator = u - n1 * n2 / 2 - 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        z = float(np.float64(numerator) / np.float64(s))
    p = min(max(float(special.ndtr(-z)) * factor, 0.0), 1.0)
    effect = u1 / (n1 * n2)
    return MannWhitneyResult(
        statistic=u1,
        pvalue=p,
        effect=effect,
        effect_variance=effect_variance(a, b),
        zscore=z,
        n_x=n1,
        n_y=n2,
    )


def effect_variance(x: Counts, y: Counts) -> float:
    """DeLong variance estimate of θ̂ = P(X > Y) + ½ P(X = Y) from bucket counts, in O(buckets).

    θ̂ is a two-sample U-statistic; its variance is Var(ψ_x(X)) / n_x + Var(ψ_y(Y)) / n_y with the
    placement values ψ_x(v) = P(Y < v) + ½ P(Y = v) and ψ_y(v) = P(X > v) + ½ P(X = v), which are
    constant within a bucket. Sample variances use n - 1. NaN when a side has fewer than 2 values.
    """
    a, b = _pair(x, y)
    n1, n2 = float(a.sum()), float(b.sum())
    if n1 < 2 or n2 < 2:
        return math.nan
    p, g = a / n1, b / n2
    psi_x = (np.cumsum(g) - g) + 0.5 * g  # for an x in bucket k
    psi_y = (1.0 - np.cumsum(p)) + 0.5 * p  # for a y in bucket k
    theta = float(np.dot(p, psi_x))
    var_x = float(np.dot(a, (psi_x - theta) ** 2)) / (n1 - 1)
    var_y = float(np.dot(b, (psi_y - theta) ** 2)) / (n2 - 1)
    return var_x / n1 + var_y / n2


def null_effect_variance(x: Counts, y: Counts) -> float:
    """Variance of θ̂ = U / (n_x n_y) when x and y come from the same distribution (tie-corrected).

    The permutation variance of U with ties, n_x n_y / 12 · ((n + 1) − Σ(t³ − t) / (n (n − 1))),
    scaled by (n_x n_y)². NaN when a side is empty; 0 when every value falls in one bucket.
    """
    a, b = _pair(x, y)
    n1, n2 = float(a.sum()), float(b.sum())
    n = n1 + n2
    if n1 == 0 or n2 == 0 or n < 2:
        return math.nan
    t = a + b
    var_u = n1 * n2 / 12 * ((n + 1) - float(np.sum(t**3 - t)) / (n * (n - 1)))
    return max(var_u, 0.0) / (n1 * n2) ** 2
