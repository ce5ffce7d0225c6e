"""The five special functions the judge needs, from the standard library: ``ndtr``, ``ndtri``,
``log_ndtr``, ``xlogy`` and ``xlog1py``, with :mod:`scipy.special`'s names and meaning.

Why not scipy here: ``import scipy.special`` costs about 0.3 s of CPU (it loads scipy's array-API
layer, which imports most of numpy's submodules), three quarters of ``analyzer judge``'s start-up
before its first answer, for five scalar functions. The standard library has what they are built
from: :func:`math.erfc` (correctly rounded to within an ulp or two) and
:meth:`statistics.NormalDist.inv_cdf` (Wichura's AS241 algorithm, relative error about 1e-16).
``tests/analyzer/test_special.py`` checks every function against scipy.special over its range.
Scalars only; the simulations (``analyzer simulate``) keep using scipy.

References: M. Abramowitz and I. A. Stegun, *Handbook of Mathematical Functions* (1964), 7.1.2 and
26.2.29 (the normal CDF through erfc), 26.2.12 (the asymptotic series of the normal tail);
M. J. Wichura, "Algorithm AS 241: The percentage points of the normal distribution", *Applied
Statistics* 37 (1988) 477-484.

This module never imports scipy or numpy.
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["log_ndtr", "ndtr", "ndtri", "xlog1py", "xlogy"]

_SQRT_HALF = math.sqrt(0.5)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_STANDARD = NormalDist()
# Below this, log(ndtr(x)) comes from the asymptotic series: erfc's result is still a normal float
# there, but the series needs no subtraction and holds to x = -inf.
_ASYMPTOTIC_BELOW = -20.0
_SERIES_TERMS = 12


def ndtr(x: float) -> float:
    """P(Z <= x) for a standard normal Z."""
    return 0.5 * math.erfc(-x * _SQRT_HALF)


def ndtri(p: float) -> float:
    """The x with ``ndtr(x) == p``: -inf at 0, +inf at 1, NaN outside [0, 1]."""
    if math.isnan(p) or not 0.0 <= p <= 1.0:
        return math.nan
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    return _STANDARD.inv_cdf(p)


def log_ndtr(x: float) -> float:
    """log P(Z <= x), accurate far into the lower tail (where ``ndtr`` underflows)."""
    if math.isnan(x):
        return math.nan
    if x > 0.0:
        return math.log1p(-0.5 * math.erfc(x * _SQRT_HALF))  # log(1 - P(Z > x)), P kept exact
    if x > _ASYMPTOTIC_BELOW:
        return math.log(0.5 * math.erfc(-x * _SQRT_HALF))
    if math.isinf(x):
        return -math.inf
    # log φ(x) - log(-x) + log(1 - 1/x² + 3/x⁴ - 15/x⁶ + ...)  (A&S 26.2.12)
    inverse_square = 1.0 / (x * x)
    term, total = 1.0, 1.0
    for k in range(1, _SERIES_TERMS + 1):
        term *= -(2 * k - 1) * inverse_square
        total += term
    return -0.5 * x * x - _LOG_SQRT_2PI - math.log(-x) + math.log(total)


def xlogy(x: float, y: float) -> float:
    """``x * log(y)``, and 0 when ``x == 0`` (unless ``y`` is NaN)."""
    if math.isnan(y):
        return math.nan
    if x == 0:
        return 0.0
    if y == 0:
        return -math.inf * math.copysign(1.0, x)
    if y < 0:
        return math.nan
    return x * math.log(y)


def xlog1py(x: float, y: float) -> float:
    """``x * log1p(y)``, and 0 when ``x == 0`` (unless ``y`` is NaN)."""
    if math.isnan(y):
        return math.nan
    if x == 0:
        return 0.0
    if y == -1:
        return -math.inf * math.copysign(1.0, x)
    if y < -1:
        return math.nan
    return x * math.log1p(y)
