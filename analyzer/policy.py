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
        description="Per step: P(promoting a canary that is worse than a margin on a test) is at most this.",
    )
    harm_weights: HarmWeights = Field(default_factory=HarmWeights)
    harm_error_ratio: float = Field(
        1.0, ge=1, description="Harm null: canary error rate <= this × GA's (1 = any increase is harm)."
    )
    harm_latency_margin: float = Field(
        0.0, ge=0, lt=0.5, description="Harm null: θ = P(canary slower) + ½P(tie) <= 0.5 + this."
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
        None, gt=0, description="Fixed tail bound (seconds), one of the bucket bounds."
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
    min_windows: int = Field(2, ge=1, description="Windows with data in a step before it can be promoted.")
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
        """Each safety e-value must reach this (1/promote_alpha) before a promotion."""
        return 1.0 / self.promote_alpha

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
