"""Ask Prometheus itself: run ``promtool test rules`` on histogram_quantile cases in one batch.

Each case becomes one set of ``h_bucket{case="i", le=...}`` series and one ``promql_expr_test`` whose
expected sample is the value our :class:`Histogram` computed, so promtool does the asserting. Values are
written with ``repr`` (round-trip exact); NaN cannot be compared by promtool (NaN != NaN), so a NaN
expectation is checked as ``x != bool x`` == 1 instead.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from analyzer.histogram import Histogram


@dataclass(frozen=True)
class QuantileCase:
    bounds: tuple[float, ...]
    counts: tuple[float, ...]  # cumulative, as written to the series (may be non-monotonic)
    q: float


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _yaml_float(value: float) -> str:
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return repr(value)


def _promql_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return f"({value!r})"


def write_series_test(cases: list[tuple[list[tuple[str, float]], float, float]], path: Path) -> None:
    """A promtool rule test: for each ``(series, q, expected)``, series ``h_bucket{case="i", le=...}``
    with the cumulative counts of ``series`` (``le`` as written: ``"2e-1"`` and ``"0.2"`` stay two
    series, as two exporters would write them) and the assertion that
    ``histogram_quantile(q, h_bucket{case="i"})`` is ``expected``."""
    lines = ["rule_files: []", "evaluation_interval: 1m", "tests:", "  - interval: 1m", "    input_series:"]
    for i, (series, _q, _expected) in enumerate(cases):
        for le, count in series:
            lines.append(f'      - series: \'h_bucket{{case="{i}",le="{le}"}}\'')
            lines.append(f"        values: '{_num(count)}'")
    lines.append("    promql_expr_test:")
    for i, (_series, q, expected) in enumerate(cases):
        expr = f'histogram_quantile({_promql_number(q)}, h_bucket{{case="{i}"}})'
        if math.isnan(expected):
            expr, value = f"{expr} != bool {expr}", "1"
        else:
            value = _yaml_float(expected)
        lines += [
            f"      - expr: '{expr}'",
            "        eval_time: 0m",
            "        exp_samples:",
            f"          - labels: '{{case=\"{i}\"}}'",
            f"            value: {value}",
        ]
    path.write_text("\n".join(lines) + "\n")


def write_rule_test(cases: list[QuantileCase], path: Path) -> None:
    """Write a promtool rule-test file asserting ``Histogram.quantile`` for every case."""
    write_series_test(
        [
            (
                [(_num(b), c) for b, c in zip(case.bounds, case.counts, strict=True)],
                case.q,
                Histogram.from_cumulative(case.bounds, case.counts).quantile(case.q),
            )
            for case in cases
        ],
        path,
    )


def run_promtool(
    promtool: str, cases: list[QuantileCase], directory: Path
) -> subprocess.CompletedProcess[str]:
    """Run promtool on the cases; returncode 0 means Prometheus agreed with every value."""
    path = directory / "quantile_test.yml"
    write_rule_test(cases, path)
    return subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
