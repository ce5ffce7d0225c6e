"""The per-window value e-process: false rollbacks within α under an identical canary whose windows
vary, and power against a real regression."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from analyzer.values import ValueEProcess, log_difference


def run(d: np.ndarray, direction: str, null: float) -> list[float]:
    process = ValueEProcess(direction, null=null)  # type: ignore[arg-type]
    out = []
    for x in d:
        process = process.update(float(x))
        out.append(process.evalue)
    return out


@pytest.mark.parametrize(
    ("true_sd", "offset"),
    [(0.02, 0.0), (0.3, 0.0), (0.1, -0.05)],  # at the null's boundary (windows barely vary, a lot), below it
)
def test_identical_canary_rolls_back_at_most_alpha_of_the_time(true_sd, offset):
    rng = np.random.default_rng(7)
    alpha, rollouts, windows = 0.05, 400, 30
    null = math.log1p(0.1)
    crossed = 0
    for _ in range(rollouts):
        # GA and canary each drift from window to window; the canary is identical on average.
        ga = rng.normal(0, true_sd / math.sqrt(2), windows)
        canary = rng.normal(0, true_sd / math.sqrt(2), windows)
        e = run(canary - ga + null + offset, "harm", null)  # offset 0: the null's boundary, hardest
        crossed += max(e) >= 1 / alpha
    allowance = binom.ppf(0.999, rollouts, alpha) / rollouts
    assert crossed / rollouts <= allowance, crossed / rollouts


def test_a_real_regression_is_found_in_a_few_windows_and_safety_shows_an_identical_canary():
    rng = np.random.default_rng(3)
    null = math.log1p(0.1)
    worse = np.log(1.8) + rng.normal(0, 0.05, 8)  # canary 1.8x GA, windows vary by ~5 %
    e = run(worse, "harm", null)
    assert e[3] < 100 <= e[5]  # six windows; the first ones carry little (scale is unknown)
    assert run(worse, "safety", null)[-1] < 1
    same = rng.normal(0, 0.05, 12)
    safety = run(same, "safety", null)
    assert safety[-1] >= 20 and run(same, "harm", null)[-1] < 1


def test_log_difference_direction_floor_and_bad_values():
    assert log_difference(2.0, 1.0, floor=0, higher_is_worse=True) == pytest.approx(math.log(2))
    assert log_difference(2.0, 1.0, floor=0, higher_is_worse=False) == pytest.approx(-math.log(2))
    assert log_difference(0.0, 0.0, floor=1.0, higher_is_worse=True) == 0.0
    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(ValueError, match="canary value"):
            log_difference(bad, 1.0, floor=0, higher_is_worse=True)
    with pytest.raises(ValueError, match="set floor"):
        log_difference(1.0, 0.0, floor=0, higher_is_worse=True)
    with pytest.raises(ValueError, match="finite"):
        ValueEProcess("harm", null=0.0).update(math.nan)
    assert ValueEProcess("harm", null=0.0).evalue == 1.0
    # scale-free: the same windows in other units give the same evidence
    one = ValueEProcess("harm", null=0.0).update(0.3).update(0.5).update(0.2)
    ten = ValueEProcess("harm", null=0.0).update(3.0).update(5.0).update(2.0)
    assert one.evalue == pytest.approx(ten.evalue, rel=1e-9) and one.evalue > 1
