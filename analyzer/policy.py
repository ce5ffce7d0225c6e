"""The judge's policy: error budget, margins, SLOs, data requirements and window caps.

Every field has a documented default chosen with ``analyzer simulate`` (see docs/analyzer.md and
docs/benchmarks/analyzer.md). Unknown keys are errors that name the key, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["HarmWeights", "Policy", "PolicyError"]


class PolicyError(ValueError):
    """A policy file or mapping that cannot be used; the message names the offending key."""


class HarmWeights(BaseModel):
    """Share of the false-rollback budget α given to each harm test (they must sum to 1).

    The rollback rule is ``Σ weight_i · e_i >= 1/α``: a weighted average of e-processes is an
    e-process, so the budget holds for the combination. Errors get most of it because error events
    are scarce (a few per window), while latency evidence comes from every request and crosses even
    a much higher bar within a window or two for regressions that matter.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    errors: float = Field(0.8, ge=0, le=1, description="Share of α for the error-rate harm test.")
    latency: float = Field(
        0.1, ge=0, le=1, description="Share of α for the latency (Mann-Whitney) harm test."
    )
    tail: float = Field(0.1, ge=0, le=1, description="Share of α for the tail-exceedance harm test.")

    @model_validator(mode="after")
    def _sum_to_one(self) -> HarmWeights:
        if not math.isclose(self.errors + self.latency + self.tail, 1.0, abs_tol=1e-9):
            raise ValueError(f"harm_weights must sum to 1, got {self.errors} + {self.latency} + {self.tail}")
        return self


class Policy(BaseModel):
    """How the judge decides. All rates are fractions (0.01 = 1 %), latencies seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="False-rollback budget per rollout: P(identical canary ever rolled back).",
    )
    promote_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="P(a canary worse than a margin on a test reaches 100 %) is at most this.",
    )
    step_promote_alpha: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="A step before the last is promoted at e >= 1/this (the harm watch goes on); "
        "the last step needs 1/promote_alpha. Only when the judge knows the steps.",
    )
    safety_carry: float = Field(
        0.75,
        ge=0,
        le=1,
        description="Share (as a power of the e-value) of a step's non-inferiority evidence carried "
        "into the next step of the same revision (0: every step starts afresh).",
    )
    harm_weights: HarmWeights = Field(default_factory=HarmWeights)
    harm_error_ratio: float = Field(
        1.1,
        ge=1,
        description="Harm null: canary error rate <= this × GA's + harm_error_abs; "
        "a smaller increase is never a reason to roll back.",
    )
    harm_error_abs: float = Field(
        0.0, ge=0, lt=1, description="Absolute part of the harm error margin (0.001 = 0.1 point)."
    )
    harm_latency_margin: float = Field(
        0.02,
        ge=0,
        lt=0.5,
        description="Harm null: θ = P(canary slower) + ½P(tie) <= 0.5 + this (0.02 ≈ 3.5 % slower at "
        "σ = 0.5, 7 % at σ = 1); a smaller difference is never a reason to roll back.",
    )
    harm_tail_ratio: float = Field(
        1.5,
        ge=1,
        description="Harm null: the canary's share above the tail bound <= this × GA's; "
        "a smaller increase is never a reason to roll back.",
    )
    window_latency_log_sd: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Prior floor: each subset's latency scale varies from window to window by this "
        "log-sd (0.05 ≈ 5 %); the windows' own variation is used when it is larger.",
    )
    window_error_cv: float = Field(
        0.5,
        ge=0,
        le=5,
        description="Prior floor: coefficient of variation of each subset's error rate from window to "
        "window; the windows' own variation is used when it is larger.",
    )
    history_windows: int = Field(
        60,
        ge=0,
        le=10_000,
        description="GA windows before the rollout that the controller reads (0: none). With at least "
        "history_min_windows of them the tail bounds are fixed from GA's history and the variation "
        "floors are measured on it instead of window_latency_log_sd / window_error_cv.",
    )
    history_min_windows: int = Field(
        10, ge=10, description="GA history windows (with requests) needed before the history is used."
    )
    history_confidence: float = Field(
        0.5,
        ge=0.5,
        le=0.95,
        description="Level of the upper confidence bound on GA's measured window-to-window variation "
        "that replaces the prior floors.",
    )
    error_margin_ratio: float = Field(
        1.5, ge=1, description="Non-inferiority: canary error rate < ratio × GA's + error_margin_abs."
    )
    error_margin_abs: float = Field(0.01, ge=0, lt=1, description="Absolute part of the error margin.")
    latency_margin: float = Field(
        0.06, gt=0, lt=0.5, description="Non-inferiority: θ < 0.5 + this (0.06 ≈ 10 % slower at σ = 0.5)."
    )
    tail_quantile: float = Field(
        0.99, gt=0, lt=1, description="The tail bound is the bucket bound nearest GA's quantile."
    )
    tail_bound: float | None = Field(
        None, gt=0, description="Fixed tail bound (seconds), one of the bucket bounds (both tail tests)."
    )
    harm_tail_quantile: float = Field(
        0.999,
        gt=0,
        lt=1,
        description="The harm tail test counts requests above the bucket bound nearest GA's quantile: "
        "far in the tail, where a slow share of requests stands out.",
    )
    tail_margin_ratio: float = Field(
        1.5, ge=1, description="Non-inferiority of the share above the tail bound."
    )
    tail_margin_abs: float = Field(0.01, ge=0, lt=1, description="Absolute part of the tail margin.")
    tail_min_baseline: int = Field(
        100, ge=1, description="GA requests needed in a window to fix the tail bound from GA's quantile."
    )
    slo_p99: float | None = Field(None, gt=0, description="Absolute ceiling on the canary's p99 (seconds).")
    slo_error_rate: float | None = Field(
        None, gt=0, lt=1, description="Absolute ceiling on the canary's error rate."
    )
    slo_min_requests: int = Field(
        50, ge=1, description="Canary requests in the step before an SLO ceiling is checked."
    )
    min_windows: int = Field(
        1,
        ge=1,
        description="Windows with data in a step before it can be promoted (the evidence thresholds "
        "and min_canary_requests still apply).",
    )
    min_canary_requests: int = Field(
        100, ge=1, description="Canary requests in a step before it can be promoted."
    )
    max_windows_per_step: int = Field(
        30, ge=1, description="Windows a step may hold before on_max_windows applies."
    )
    on_max_windows: Literal["pause", "rollback"] = Field(
        "pause",
        description="pause: a pause verdict, a human decides (the step expired); rollback: roll back.",
    )
    latency_min_batch: int = Field(
        20, ge=2, description="Requests per side before a latency comparison enters the evidence."
    )
    latency_tau: float = Field(
        0.1, gt=0, description="Scale of the normal mixture over latency effects (θ units)."
    )

    @property
    def harm_threshold(self) -> float:
        """Roll back when the combined harm e-value reaches this (1/α)."""
        return 1.0 / self.alpha

    @property
    def safety_threshold(self) -> float:
        """Each safety e-value must reach this (1/promote_alpha) before the last promotion."""
        return 1.0 / self.promote_alpha

    @property
    def step_safety_threshold(self) -> float:
        """Each safety e-value must reach this before a step other than the last is promoted."""
        return 1.0 / max(self.step_promote_alpha, self.promote_alpha)

    @classmethod
    def from_mapping(cls, data: Any, source: str = "policy") -> Policy:
        """Validate a mapping; errors name the key (``policy: unknown key 'alpah'``)."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise PolicyError(f"{source}: expected a mapping of policy keys, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PolicyError(_describe(exc, source)) from None

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Load a policy from a YAML or JSON file."""
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise PolicyError(f"{p}: cannot read policy file: {exc.strerror}") from None
        try:
            data = YAML(typ="safe", pure=True).load(text)
        except YAMLError as exc:
            raise PolicyError(f"{p}: not valid YAML/JSON: {exc}") from None
        return cls.from_mapping(data, source=str(p))


def _describe(exc: ValidationError, source: str) -> str:
    parts = []
    for error in exc.errors():
        key = ".".join(str(x) for x in error["loc"]) or "(root)"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown key '{key}'")
        else:
            parts.append(f"'{key}': {error['msg']}")
    return f"{source}: " + "; ".join(parts)
