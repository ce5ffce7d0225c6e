"""E-processes: closed forms, validity under the null (Ville), and power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from analyzer.sequential import (
    CountEProcess,
    CountWindow,
    OrderEProcess,
    combine_average,
    count_log_evalues,
)


def test_virtual_events_closed_form_equals_explicit_average() -> None:
    """The absolute margin's virtual GA events are averaged in closed form; check against the sum."""
    window = CountWindow(3, 150, 7, 900)
    ratio, offset, alt = 1.5, 0.01, np.array([0.6])
    got = count_log_evalues(window, list(alt), ratio=ratio, offset=offset)[0]
    pi = lambda r: r * 150 / (r * 150 + 900)  # noqa: E731
    pi0, pi1 = pi(ratio), pi(0.6)
    lam = 900 * offset / ratio
    v = np.arange(0, 200)
    lr = (pi1 / pi0) ** 3 * ((1 - pi1) / (1 - pi0)) ** (7 + v)
    explicit = float(np.sum(stats.poisson.pmf(v, lam) * lr))
    assert got == pytest.approx(math.log(explicit), rel=1e-10)


def test_no_requests_is_no_evidence() -> None:
    e = CountEProcess("harm").update(CountWindow(0, 0, 5, 100)).update(CountWindow(3, 10, 0, 0))
    assert e.evalue == 1.0
    assert e.windows == 2


def test_wrong_direction_alternatives_are_rejected() -> None:
    with pytest.raises(ValueError, match="wrong way"):
        CountEProcess("harm", alternatives=(0.5, 2.0))
    with pytest.raises(ValueError, match="weights"):
        CountEProcess("harm", alternatives=(2.0,), weights=(1.0, 1.0))


def _crossing_rate(make, draw, *, windows: int, reps: int, threshold: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    crossed = 0
    for _ in range(reps):
        e = make()
        for _ in range(windows):
            e = draw(rng, e)
            if e.log_evalue >= math.log(threshold):
                crossed += 1
                break
    return crossed / reps


@pytest.mark.parametrize(("p", "weight"), [(0.005, 0.1), (0.02, 0.6), (0.2, 0.3)])
def test_harm_count_eprocess_keeps_alpha_under_identical_rates(p: float, weight: float) -> None:
    """Binomial (not Poisson) data, identical rates, 25 looks: P(ever >= 1/α) stays <= α."""

    def draw(rng, e):
        n = rng.poisson(1200)
        nc = rng.binomial(n, weight)
        return e.update(CountWindow(rng.binomial(nc, p), nc, rng.binomial(n - nc, p), n - nc))

    rate = _crossing_rate(lambda: CountEProcess("harm"), draw, windows=20, reps=400, threshold=10, seed=1)
    assert rate <= 0.1 + 3 * math.sqrt(0.1 * 0.9 / 400)


def test_safety_count_eprocess_keeps_alpha_at_the_margin() -> None:
    """Poisson data exactly at the null boundary p_c = ρ p_g + δ: P(ever >= 1/α) <= α."""
    ratio, offset, pg = 1.5, 0.01, 0.005
    pc = ratio * pg + offset

    def draw(rng, e):
        nc, ng = 300, 900
        return e.update(CountWindow(rng.poisson(nc * pc), nc, rng.poisson(ng * pg), ng))

    make = lambda: CountEProcess("safety", ratio=ratio, offset=offset)  # noqa: E731
    rate = _crossing_rate(make, draw, windows=30, reps=400, threshold=10, seed=2)
    assert rate <= 0.1 + 3 * math.sqrt(0.1 * 0.9 / 400)


def test_harm_count_eprocess_detects_six_times_the_error_rate() -> None:
    rng = np.random.default_rng(3)
    caught = 0
    for _ in range(200):
        e = CountEProcess("harm")
        for _ in range(8):
            e = e.update(CountWindow(rng.binomial(120, 0.03), 120, rng.binomial(1080, 0.005), 1080))
            if e.evalue >= 100:
                caught += 1
                break
    assert caught / 200 >= 0.9


def test_order_eprocess_closed_form_matches_the_mixture_integral() -> None:
    e = OrderEProcess("harm", tau=0.1).update(0.53, 0.0004).update(0.55, 0.0009)
    s, v, tau = e.s, e.v, 0.1
    integrand = lambda mu: math.exp(mu * s - mu * mu * v / 2) * 2 * stats.norm.pdf(mu, scale=tau)  # noqa: E731
    numeric = integrate.quad(integrand, 0, 2)[0]
    assert e.evalue == pytest.approx(numeric, rel=1e-6)


def test_order_eprocess_null_validity_and_direction() -> None:
    rng = np.random.default_rng(4)
    crossings = 0
    for _ in range(2000):
        e = OrderEProcess("harm")
        for _ in range(30):
            e = e.update(0.5 + rng.normal(0, 0.03), 0.03**2)
            if e.evalue >= 10:
                crossings += 1
                break
    assert crossings / 2000 <= 0.1 + 3 * math.sqrt(0.09 / 2000)
    slow = OrderEProcess("harm").update(0.65, 0.03**2)
    assert slow.evalue > 1e3
    assert OrderEProcess("safety", null=0.56).update(0.65, 0.03**2).evalue < 1
    assert OrderEProcess("safety", null=0.56).update(0.5, 0.01**2).evalue > 1e3
    assert OrderEProcess("harm").update(math.nan, 1.0).evalue == 1.0


def test_combine_average() -> None:
    got = combine_average([math.log(200.0), math.log(1.0), 0.0], [0.5, 0.25, 0.25])
    assert math.exp(got) == pytest.approx(100.5)
    with pytest.raises(ValueError, match="sum to 1"):
        combine_average([0.0], [0.5])


def test_centred_prior_closed_form_matches_the_mixture_integral() -> None:
    """center c > 0: the truncated N(c, τ²) mixture; c -> 0 is the half-normal case."""
    e = OrderEProcess("safety", null=0.56, tau=0.03, center=0.06).update(0.51, 0.002).update(0.5, 0.003)
    s, v = e.s, e.v

    def integrand(mu: float) -> float:
        return (
            math.exp(mu * s - mu * mu * v / 2) * stats.norm.pdf(mu, 0.06, 0.03) / stats.norm.sf(0, 0.06, 0.03)
        )

    assert e.log_evalue == pytest.approx(math.log(integrate.quad(integrand, 0, 2)[0]), rel=1e-9)
    half = OrderEProcess("harm").update(0.56, 0.002)
    assert OrderEProcess("harm", center=1e-9).update(0.56, 0.002).log_evalue == pytest.approx(half.log_evalue)
    with pytest.raises(ValueError, match="center"):
        OrderEProcess("harm", center=-0.1)


def _gamma_poisson_window(rng: np.random.Generator, pc: float, pg: float, cv: float) -> CountWindow:
    """One window whose two rates vary independently (gamma, mean 1, this CV): over-dispersed counts."""
    shape = 1 / cv**2
    n = rng.poisson(12000)
    nc = rng.binomial(n, 0.1)
    gc, gg = rng.gamma(shape, 1 / shape, 2)
    return CountWindow(rng.poisson(nc * pc * gc), nc, rng.poisson((n - nc) * pg * gg), n - nc)


def test_dispersion_keeps_the_harm_count_eprocess_valid_when_rates_vary() -> None:
    """Rates varying with CV 0.5 per window (200 req/s at 10 %): the Poisson e-process crosses 1/α
    far too often; divided by the dispersion (capped per window as the judge does) it stays <= α."""
    cv, reps, threshold = 0.5, 400, 10.0

    def plain(rng, e):
        return e.update(_gamma_poisson_window(rng, 0.005, 0.005, cv))

    def widened(rng, e):
        return e.update(
            _gamma_poisson_window(rng, 0.005, 0.005, cv),
            cv2=(cv**2, cv**2),
            max_log=0.7 * math.log(threshold),
        )

    naive = _crossing_rate(
        lambda: CountEProcess("harm"), plain, windows=20, reps=reps, threshold=threshold, seed=5
    )
    robust = _crossing_rate(
        lambda: CountEProcess("harm"), widened, windows=20, reps=reps, threshold=threshold, seed=5
    )
    bar = 1 / threshold + 3 * math.sqrt(0.1 * 0.9 / reps)
    assert naive > bar  # the check can fail: per-request evidence reads the variation as harm
    assert robust <= bar


def test_dispersion_is_one_without_variation_and_grows_with_events() -> None:
    e = CountEProcess("harm", ratio=1.25)
    w = CountWindow(6, 1200, 54, 10800)
    assert e.dispersion(w, 0.0, 0.0) == 1.0
    small, large = e.dispersion(w, 0.25, 0.25), e.dispersion(CountWindow(60, 12000, 540, 108000), 0.25, 0.25)
    assert 1 < small < large
    assert e.dispersion(CountWindow(0, 0, 5, 100), 0.25, 0.25) == 1.0


def test_plugin_track_is_predictable_and_mixed_in() -> None:
    """The plug-in track moves the e-value only through its weight; a wrong-way plug-in is ignored."""
    w = CountWindow(0, 300, 4, 900)
    grid = CountEProcess("safety", ratio=1.5, offset=0.01).update(w)
    mixed = CountEProcess("safety", ratio=1.5, offset=0.01, plugin_weight=0.8).update(w, plugin=0.3)
    alone = count_log_evalues(w, [0.3 * 1.5], ratio=1.5, offset=0.01)[0]
    expected = math.log(0.2 * math.exp(grid.log_evalue) + 0.8 * math.exp(alone))
    assert mixed.log_evalue == pytest.approx(expected)
    ignored = CountEProcess("safety", ratio=1.5, offset=0.01, plugin_weight=0.8).update(w, plugin=2.0)
    assert ignored.plugin_log == 0.0
    with pytest.raises(ValueError, match="plugin_weight"):
        CountEProcess("harm", plugin_weight=1.0)
