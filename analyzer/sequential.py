"""Anytime-valid evidence across the windows of a rollout: e-processes.

An e-process ``E_t`` for a null hypothesis H0 is a non-negative process with ``E[E_τ] <= 1`` under H0
at every stopping time τ. Ville's inequality then gives ``P_H0(E_t >= 1/α for some t) <= α``: we may
look after every window, forever, and stop at the first crossing, and the chance of a false alarm
stays below α. Products of per-window likelihood ratios (each with conditional expectation <= 1
under H0) are test supermartingales; fixed mixtures and averages of e-processes are e-processes.

Two families live here, both as immutable values with a pure ``update`` (a window in, a new value
out), so a judge can be replayed and tested:

* :class:`CountEProcess` for event counts (errors; requests above the tail bound). Conditional on a
  window's total events, the canary's share is Binomial(m, π(r)) with π(r) = r·n_c / (r·n_c + n_g)
  where r is the canary/GA rate ratio (the conditional test for two Poisson rates). An absolute
  margin δ is handled exactly by adding virtual Poisson(n_g·δ/ρ) events to GA and averaging the
  e-value over them in closed form (the Poisson generating function), which turns the null
  ``p_c <= ρ·p_g + δ`` (or ``>=``) into the pure ratio null ``r <= ρ`` (or ``>=``).
  Exact for Poisson counts. For binomial counts (each request fails or not) with δ = 0 it stays
  valid (given the total, the canary's count is hypergeometric, which is smaller in convex order
  than the binomial, so the expectation of the convex likelihood ratio only drops); with δ > 0 it
  is the Poisson approximation, excellent at rates of a few percent.
* :class:`OrderEProcess` for stochastic order (latency): the per-window Mann–Whitney effect
  θ̂ = P(canary > GA) + ½ P(tie) with its variance from bucket counts, combined with a one-sided
  normal-mixture (Robbins) e-process. Valid as far as θ̂ is normal: asymptotically anytime-valid.

Windows vary (over-dispersion). When each subset's latency scale and error rate vary from window to
window, the per-request models above are too confident: the window, not the request, is the unit of
variation. Both processes therefore take a per-window dispersion, known before the window is seen
(predictable): :class:`OrderEProcess` a variance that already includes the between-window variance
τ², :class:`CountEProcess` the squared coefficients of variation of the two rates, from which the
quasi-likelihood dispersion φ ≥ 1 of the conditional binomial follows (:meth:`CountEProcess.dispersion`;
a gamma-mixed Poisson count has Var k = μ + c²μ², of which the binomial model knows only μ). Each window's log
likelihood ratio is divided by φ (McCullagh & Nelder 1989, ch. 9, quasi-likelihood): for a normal
statistic whose variance is φ times the model's, ``exp(log LR / φ)`` has expectation exactly 1 under
the null, which is the same thing as widening the normal model's variance by τ²; for counts it is
the normal approximation of the gamma-Poisson mixture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from analyzer import special  # the standard library's, not scipy's: see analyzer/special.py

__all__ = [
    "HARM_ALTERNATIVES",
    "HARM_WEIGHTS",
    "SAFETY_ALTERNATIVES",
    "CountEProcess",
    "CountWindow",
    "Direction",
    "OrderEProcess",
    "combine_average",
    "count_log_evalues",
]

Direction = Literal["harm", "safety"]

#: Harm alternatives: canary/GA rate ratios, weighted towards the 3-8x regressions that matter most;
#: small increases cannot be told from noise at a few errors per window anyway.
HARM_ALTERNATIVES: tuple[float, ...] = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
HARM_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 2.0, 1.0)
#: Safety alternatives: fractions of the margin ratio (the canary well inside the margin).
SAFETY_ALTERNATIVES: tuple[float, ...] = (0.9, 0.75, 0.6, 0.45, 0.3, 0.2, 0.1)


@dataclass(frozen=True)
class CountWindow:
    """Events and exposure (requests) of canary and baseline in one window."""

    canary_events: float
    canary_requests: float
    baseline_events: float
    baseline_requests: float


def count_log_evalues(
    window: CountWindow, alternatives: Sequence[float], *, ratio: float, offset: float
) -> list[float]:
    """Per-alternative log likelihood ratios of one window against the null boundary.

    The null boundary is ``p_c = ratio * p_g + offset``; each alternative is a rate ratio r1 of the
    canary to the virtually augmented GA rate ``p_g + offset / ratio`` (r1 > ``ratio`` tests for harm,
    r1 < ``ratio`` for safety). Returns zeros when either side has no requests (no information).
    Plain floats, not numpy: a handful of alternatives, called for every window of every rollout.
    """
    n_c, n_g = window.canary_requests, window.baseline_requests
    if n_c <= 0 or n_g <= 0:
        return [0.0] * len(alternatives)
    pi0 = ratio * n_c / (ratio * n_c + n_g)
    virtual = n_g * offset / ratio
    out = []
    for r1 in alternatives:
        pi1 = r1 * n_c / (r1 * n_c + n_g)
        c = (1.0 - pi1) / (1.0 - pi0)
        out.append(
            window.canary_events * math.log(pi1 / pi0)
            + window.baseline_events * math.log(c)
            + virtual * (c - 1.0)
        )
    return out


def _log_mean(log_values: Sequence[float], log_weights: Sequence[float]) -> float:
    """log Σ exp(v + w), computed stably."""
    x = [v + w for v, w in zip(log_values, log_weights, strict=True)]
    top = max(x)
    if not math.isfinite(top):
        return top
    return top + math.log(sum(math.exp(v - top) for v in x))


@dataclass(frozen=True)
class CountEProcess:
    """Mixture e-process on event counts for ``p_c <= ρ p_g + δ`` (harm) or ``>=`` (safety).

    ``direction="harm"`` is evidence that the canary's rate is ABOVE ``ratio * p_g + offset`` (its
    null is "no harm"); ``direction="safety"`` that it is BELOW (its null is "worse than the margin").
    ``alternatives`` are multiples of ``ratio`` (> 1 for harm, < 1 for safety), mixed with ``weights``
    (normalised; equal by default, :data:`HARM_WEIGHTS` for the default harm grid).

    ``plugin_weight`` > 0 adds one more track whose alternative is chosen before each window from the
    past (the ``plugin`` argument of :meth:`update`, e.g. "the canary is as good as GA has been"): a
    predictable plug-in alternative keeps each factor's conditional mean <= 1 under the null
    (Waudby-Smith & Ramdas 2024, JRSS-B, predictable plug-in), and costs no mixture penalty when it is
    right. The e-value is ``(1 - plugin_weight)·grid mixture + plugin_weight·plug-in track``.
    """

    direction: Direction
    ratio: float = 1.0
    offset: float = 0.0
    alternatives: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()
    log_products: tuple[float, ...] = ()
    windows: int = 0
    plugin_weight: float = 0.0
    plugin_log: float = 0.0

    def __post_init__(self) -> None:
        if self.ratio <= 0 or self.offset < 0 or math.isnan(self.ratio + self.offset):
            raise ValueError(f"ratio must be > 0 and offset >= 0, got {self.ratio!r}, {self.offset!r}")
        if not self.alternatives:
            harm = self.direction == "harm"
            object.__setattr__(self, "alternatives", HARM_ALTERNATIVES if harm else SAFETY_ALTERNATIVES)
            if not self.weights:
                object.__setattr__(self, "weights", HARM_WEIGHTS if harm else ())
        if not self.weights:
            object.__setattr__(self, "weights", (1.0,) * len(self.alternatives))
        if len(self.weights) != len(self.alternatives) or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ValueError("weights must be non-negative, not all zero, one per alternative")
        bad = [a for a in self.alternatives if (a <= 1 if self.direction == "harm" else not 0 < a < 1)]
        if bad:
            raise ValueError(f"alternatives {bad} point the wrong way for a {self.direction} e-process")
        if not self.log_products:
            object.__setattr__(self, "log_products", (0.0,) * len(self.alternatives))
        if not 0 <= self.plugin_weight < 1:
            raise ValueError(f"plugin_weight must be in [0, 1), got {self.plugin_weight!r}")

    def dispersion(self, window: CountWindow, canary_cv2: float, baseline_cv2: float) -> float:
        """φ >= 1 of this window when the two rates vary from window to window with these squared
        coefficients of variation (gamma-Poisson: Var k = μ + c²μ²).

        The statistic is the canary's count against the (virtually augmented) total m; under the
        null boundary μ_c = π0·m and μ_g = (1 − π0)·m − λ (λ the virtual events, which do not vary),
        so Var((1 − π0)k_c − π0 k_g) = m π0 (1 − π0) + (1 − π0)² c_c² μ_c² + π0² c_g² μ_g², and φ is its
        ratio to the binomial model's m π0 (1 − π0).
        """
        n_c, n_g = window.canary_requests, window.baseline_requests
        if (canary_cv2 <= 0 and baseline_cv2 <= 0) or n_c <= 0 or n_g <= 0:
            return 1.0
        pi0 = self.ratio * n_c / (self.ratio * n_c + n_g)
        virtual = n_g * self.offset / self.ratio
        m = window.canary_events + window.baseline_events + virtual
        if m <= 0:
            return 1.0
        mu_c, mu_g = pi0 * m, max((1.0 - pi0) * m - virtual, 0.0)
        extra = (1.0 - pi0) ** 2 * canary_cv2 * mu_c**2 + pi0**2 * baseline_cv2 * mu_g**2
        return 1.0 + extra / (m * pi0 * (1.0 - pi0))

    def update(
        self,
        window: CountWindow,
        cv2: tuple[float, float] = (0.0, 0.0),
        plugin: float | None = None,
    ) -> CountEProcess:
        """The e-process after one more window (pure: ``self`` is unchanged).

        ``cv2``: (c_c², c_g²), the window-to-window variation of the canary's and GA's rates known
        before this window ((0, 0): Poisson counts); each log likelihood ratio is divided by
        :meth:`dispersion`. ``plugin``: this window's plug-in alternative, a multiple of ``ratio``
        like the grid's.
        """
        phi = self.dispersion(window, *cv2)
        alts = [a * self.ratio for a in self.alternatives]
        step = count_log_evalues(window, alts, ratio=self.ratio, offset=self.offset)
        logs = tuple(a + b / phi for a, b in zip(self.log_products, step, strict=True))
        plugin_log = self.plugin_log
        if self.plugin_weight > 0 and plugin is not None:
            harm = self.direction == "harm"
            if (plugin > 1 if harm else 0 < plugin < 1) and math.isfinite(plugin):
                one = count_log_evalues(window, [plugin * self.ratio], ratio=self.ratio, offset=self.offset)
                plugin_log += one[0] / phi
        return replace(self, log_products=logs, plugin_log=plugin_log, windows=self.windows + 1)

    @property
    def log_evalue(self) -> float:
        """log of the e-value: the weighted mixture over the alternatives (and the plug-in track)."""
        total = sum(self.weights)
        grid = 1.0 - self.plugin_weight
        pairs = [
            (v, math.log(grid * w / total))
            for v, w in zip(self.log_products, self.weights, strict=True)
            if w > 0
        ]
        if self.plugin_weight > 0:
            pairs.append((self.plugin_log, math.log(self.plugin_weight)))
        return _log_mean([v for v, _ in pairs], [w for _, w in pairs])

    @property
    def evalue(self) -> float:
        """The e-value (capped at 1e300 to stay a finite float)."""
        return min(math.exp(min(self.log_evalue, 690.0)), 1e300)


@dataclass(frozen=True)
class OrderEProcess:
    """One-sided normal-mixture e-process on the Mann–Whitney effect θ across windows.

    ``direction="harm"``: evidence that θ > ``null`` (the canary tends to be slower; null θ <= 0.5 +
    margin). ``direction="safety"``: evidence that θ < ``null`` (null: θ >= 0.5 + margin). Each window
    contributes its estimate θ̂_t with variance σ_t²; with S = Σ ±(θ̂_t - null)/σ_t² and V = Σ 1/σ_t²
    the likelihood ratio for a drift μ is exp(μS - μ²V/2), mixed over a half-normal(τ) prior on μ >= 0:
    E = 2/√(1+τ²V) · exp(τ²S²/(2(1+τ²V))) · Φ(τS/√(1+τ²V)).

    ``center`` c > 0 mixes over N(c, τ²) truncated to μ >= 0 instead (the prior where the effect is
    expected, e.g. "an identical canary is ``margin`` inside the null"): with A = V + 1/τ² and
    B = S + c/τ², log E = -½ log(τ²A) + B²/(2A) - c²/(2τ²) + log Φ(B/√A) - log Φ(c/τ); c = 0 is the
    half-normal case. The variance given to :meth:`update` should include the between-window
    variance when windows vary (see the module docstring).
    """

    direction: Direction
    null: float = 0.5
    tau: float = 0.1
    s: float = 0.0
    v: float = 0.0
    windows: int = 0
    center: float = 0.0
    _sign: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.null < 1 or self.tau <= 0:
            raise ValueError(f"null must be in (0, 1) and tau > 0, got {self.null!r}, {self.tau!r}")
        if not (0 <= self.center < 1):
            raise ValueError(f"center must be in [0, 1), got {self.center!r}")
        object.__setattr__(self, "_sign", 1.0 if self.direction == "harm" else -1.0)

    def update(self, effect: float, variance: float) -> OrderEProcess:
        """The e-process after one more window's θ̂ and its variance; NaN or zero variance adds nothing."""
        if math.isnan(effect) or math.isnan(variance) or variance <= 0:
            return replace(self, windows=self.windows + 1)
        return replace(
            self,
            s=self.s + self._sign * (effect - self.null) / variance,
            v=self.v + 1.0 / variance,
            windows=self.windows + 1,
        )

    @property
    def log_evalue(self) -> float:
        """log of the e-value."""
        t2 = self.tau**2
        if self.center == 0.0:
            t2v = t2 * self.v
            root = math.sqrt(1.0 + t2v)
            return float(
                math.log(2.0)
                - math.log(root)
                + (self.tau * self.s) ** 2 / (2.0 * (1.0 + t2v))
                + special.log_ndtr(self.tau * self.s / root)
            )
        a = self.v + 1.0 / t2
        b = self.s + self.center / t2
        return float(
            -0.5 * math.log(t2 * a)
            + b * b / (2.0 * a)
            - self.center**2 / (2.0 * t2)
            + special.log_ndtr(b / math.sqrt(a))
            - special.log_ndtr(self.center / self.tau)
        )

    @property
    def evalue(self) -> float:
        """The e-value (capped at 1e300 to stay a finite float)."""
        return min(math.exp(min(self.log_evalue, 690.0)), 1e300)


def combine_average(log_evalues: list[float], weights: list[float]) -> float:
    """log of the weighted average of e-values (weights sum to 1): itself an e-process."""
    if len(log_evalues) != len(weights) or not math.isclose(sum(weights), 1.0) or min(weights) < 0:
        raise ValueError("weights must be non-negative, one per e-value, and sum to 1")
    pairs = [(v, math.log(w)) for v, w in zip(log_evalues, weights, strict=True) if w > 0]
    return _log_mean([v for v, _ in pairs], [w for _, w in pairs])
