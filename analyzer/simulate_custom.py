"""The planner for a custom metric: how many windows until it is shown within its margin (or rolls back).

``analyzer simulate --custom 'queue-lag:ga=0.40/0.04,canary=0.42/0.04,margin=0.1'`` draws each
window's value per subset from a lognormal with the given mean/sd (window-to-window variation,
independent for GA and canary), runs :class:`analyzer.custom.CustomJudge` over ``rollouts``
simulated rollouts of at most ``max_windows`` windows, at the metric's share of α (as the
controller gives it, α / 2 with the built-in judge beside one metric), and reports how often and
how fast the metric passes (safety shown, ``min_windows`` reached) or rolls back. Pure and seeded:
the same inputs give the same plan.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from analyzer.custom import CustomJudge, CustomSide, alpha_share, custom_metric_from_mapping
from analyzer.policy import Policy

_SPEC = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]*):(?P<fields>.+)$")


@dataclass(frozen=True)
class CustomScenario:
    """One custom metric's per-window distributions (lognormal mean and sd) and how it is judged."""

    name: str
    ga_mean: float
    ga_sd: float
    canary_mean: float
    canary_sd: float
    margin: float = 0.1
    direction: str = "higher-is-worse"

    @classmethod
    def parse(cls, text: str) -> CustomScenario:
        """``NAME:ga=MEAN/SD,canary=MEAN/SD[,margin=M][,direction=lower-is-worse]``."""
        match = _SPEC.match(text.strip())
        if match is None:
            raise ValueError(f"--custom {text!r}: expected NAME:ga=MEAN/SD,canary=MEAN/SD[,margin=M]")
        fields = dict(part.split("=", 1) for part in match["fields"].split(",") if "=" in part)
        try:
            ga_mean, ga_sd = (float(x) for x in fields["ga"].split("/"))
            canary_mean, canary_sd = (float(x) for x in fields["canary"].split("/"))
            margin = float(fields.get("margin", 0.1))
        except (KeyError, ValueError):
            raise ValueError(f"--custom {text!r}: ga=MEAN/SD and canary=MEAN/SD are required") from None
        direction = fields.get("direction", "higher-is-worse")
        if direction not in ("higher-is-worse", "lower-is-worse"):
            raise ValueError(f"--custom {text!r}: direction is higher-is-worse or lower-is-worse")
        for label, value in (("ga mean", ga_mean), ("canary mean", canary_mean)):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"--custom {text!r}: {label} must be > 0")
        for label, value in (("ga sd", ga_sd), ("canary sd", canary_sd)):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"--custom {text!r}: {label} must be >= 0")
        return cls(match["name"], ga_mean, ga_sd, canary_mean, canary_sd, margin, direction)


@dataclass(frozen=True)
class CustomPlan:
    """How the rollouts ended for one scenario: shares and windows to a pass (median, p90)."""

    name: str
    rollouts: int
    passed: float
    rolled_back: float
    undecided: float
    median_windows: float
    p90_windows: float
    alpha: float


def _draw(rng: np.random.Generator, mean: float, sd: float, n: int) -> np.ndarray:
    if sd == 0:
        return np.full(n, mean)
    s2 = math.log1p((sd / mean) ** 2)  # lognormal with this mean and sd
    return np.asarray(rng.lognormal(math.log(mean) - s2 / 2, math.sqrt(s2), n))


def plan(
    scenario: CustomScenario, policy: Policy, *, rollouts: int = 500, max_windows: int = 60, seed: int = 1
) -> CustomPlan:
    """Simulate ``rollouts`` rollouts of one step for ``scenario`` (see the module docs)."""
    metric = custom_metric_from_mapping(
        {
            "name": scenario.name,
            "kind": "value",
            "selector": {"namespace": "namespace"},
            "query": "x{ {{ selector }} } by ({{ by }})",
            "direction": scenario.direction,
            "margin": scenario.margin,
        }
    )
    share = alpha_share(policy.alpha, [metric])
    rng = np.random.default_rng(seed)
    passed, rolled, windows_to_pass = 0, 0, []
    for _ in range(rollouts):
        judge = CustomJudge(
            metric, alpha=share, promote_alpha=policy.promote_alpha, min_windows=policy.min_windows
        )
        ga = _draw(rng, scenario.ga_mean, scenario.ga_sd, max_windows)
        canary = _draw(rng, scenario.canary_mean, scenario.canary_sd, max_windows)
        for t in range(max_windows):
            judge, evidence = judge.observe(CustomSide(float(canary[t])), CustomSide(float(ga[t])))
            if evidence.action == "rollback":
                rolled += 1
                break
            if evidence.action == "pass":
                passed += 1
                windows_to_pass.append(t + 1)
                break
    done = np.asarray(windows_to_pass, dtype=float)
    return CustomPlan(
        name=scenario.name,
        rollouts=rollouts,
        passed=passed / rollouts,
        rolled_back=rolled / rollouts,
        undecided=(rollouts - passed - rolled) / rollouts,
        median_windows=float(np.median(done)) if done.size else math.nan,
        p90_windows=float(np.quantile(done, 0.9)) if done.size else math.nan,
        alpha=share,
    )


def format_plans(plans: list[CustomPlan], interval: float, max_windows: int) -> str:
    """A table: per scenario, shares passed / rolled back / undecided and the time to pass."""
    lines = [
        f"custom metrics: at most {max_windows} windows of {interval:g}s; each metric at its share of α",
        f"{'metric':<20} {'alpha':>7} {'passed':>7} {'rolled back':>12} {'undecided':>10} "
        f"{'windows to pass (median, p90)':>30} {'time (median)':>14}",
    ]
    for p in plans:
        median = "-" if math.isnan(p.median_windows) else f"{p.median_windows:.0f}"
        p90 = "-" if math.isnan(p.p90_windows) else f"{p.p90_windows:.0f}"
        time = "-" if math.isnan(p.median_windows) else f"{p.median_windows * interval / 60:.1f} min"
        lines.append(
            f"{p.name:<20} {p.alpha:>7.4f} {p.passed:>7.1%} {p.rolled_back:>12.1%} {p.undecided:>10.1%} "
            f"{median + ', ' + p90:>30} {time:>14}"
        )
    return "\n".join(lines)
