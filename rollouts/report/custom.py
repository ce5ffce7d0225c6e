"""The custom metrics of a rollout as the report shows them: from the commits' evidence, no queries.

Every verdict commit carries, per custom metric, ``custom.<name>.ga_mean``, ``canary_mean``,
``ratio``, ``harm_e``, ``safety_e`` and ``alpha`` (see docs/custom-metrics.md). The report shows
the latest commit's figures per metric, GA and canary side by side. Evidence is parsed from Git,
i.e. user input: a value that is not a number is shown as missing, never trusted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rollouts.report.history import Event

_KEY = re.compile(r"^custom\.(?P<metric>[a-z0-9][a-z0-9._-]*)\.(?P<field>[a-z_]+)$")
FIELDS = ("ga_mean", "canary_mean", "ratio", "harm_e", "safety_e", "alpha")


@dataclass(frozen=True)
class CustomRow:
    """One custom metric in the latest commit that carries it (NaN: not in the evidence)."""

    metric: str
    sha: str
    ga_mean: float
    canary_mean: float
    ratio: float
    harm_e: float
    safety_e: float
    alpha: float

    @property
    def harm_threshold(self) -> float:
        """1/α of this metric's share (NaN when its α is unknown)."""
        return 1.0 / self.alpha if self.alpha > 0 else math.nan


def _number(text: str | None) -> float:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def custom_rows(events: Sequence[Event]) -> list[CustomRow]:
    """Per custom metric, its figures in the newest event that has them; sorted by name."""
    rows: dict[str, CustomRow] = {}
    for event in events:  # oldest first: later commits replace earlier figures
        found: dict[str, dict[str, str]] = {}
        for key, value in event.evidence.items():
            match = _KEY.match(key)
            if match and match["field"] in FIELDS:
                found.setdefault(match["metric"], {})[match["field"]] = value
        for metric, values in found.items():
            rows[metric] = CustomRow(metric, event.sha, *(_number(values.get(f)) for f in FIELDS))
    return [rows[name] for name in sorted(rows)]
