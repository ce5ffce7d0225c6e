"""One self-contained HTML page per rollout, with its charts as PNG images.

The page has no external resources: inline CSS, charts embedded as ``data:`` PNGs (the same PNGs are
also written beside the page), and a Content-Security-Policy that allows nothing else (no scripts at
all). Everything that comes from Git -- commit messages, authors, reasons, evidence, even the
rollout's name -- is user input: the markup is a Jinja2 template (``templates/report.html.j2``, as
Locust renders its report) with autoescape on, so no value is ever written into the page unescaped.
This module never builds markup in Python strings; it draws the charts and hands values to the
template.

Charts are drawn with matplotlib's object API (``Figure`` + Agg canvas, no ``pyplot``): no global
figure state, no display needed.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from matplotlib.dates import date2num
from matplotlib.figure import Figure

from analyzer import Histogram
from analyzer.prometheus import redact_url
from rollouts.report.history import Timeline
from rollouts.report.metrics import StepMetricsReport
from rollouts.routes import Weights

GA_COLOR = "#1f77b4"
CANARY_COLOR = "#ff7f0e"
VERDICT_COLORS = {
    "promote": "#2ca02c",
    "rollback": "#d62728",
    "abort": "#8c1c13",
    "manual": "#9467bd",
    "finalize": "#17becf",
    "pause": "#7f7f7f",
    "resume": "#7f7f7f",
    "human": "#e377c2",
}
#: Latency panels drawn at most (the newest steps); the table below lists every step.
MAX_LATENCY_PANELS = 12
DPI = 100
QUANTILES = (0.5, 0.9, 0.99)
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
#: The page's template (in ``rollouts/report/templates/``, shipped as package data).
TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class Chart:
    """A PNG chart: file name beside the page, alt text, pixel size."""

    name: str
    alt: str
    png: bytes
    width: int
    height: int


@dataclass(frozen=True)
class RenderedReport:
    """The page and its charts, in memory (written out by :func:`rollouts.report.write_report`)."""

    html: str
    charts: tuple[Chart, ...] = field(default_factory=tuple)


def _when(ts: int | float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _dt(ts: int | float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "–"
    ms = seconds * 1000
    return f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"


def _datenums(timestamps: Sequence[int]) -> list[float]:
    """Unix seconds as matplotlib date numbers (the axis then formats them as UTC dates)."""
    days = date2num([_dt(t) for t in timestamps])  # type: ignore[no-untyped-call]  # untyped in matplotlib
    return [float(d) for d in days]


def _png(figure: Figure) -> tuple[bytes, int, int]:
    buffer = io.BytesIO()
    # No timestamp or version in the file: the same data gives the same bytes.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    width, height = (round(v * DPI) for v in figure.get_size_inches())
    return buffer.getvalue(), width, height


def weights_chart(timeline: Timeline, end: int) -> Chart | None:
    """Canary and stable weight over time (step chart), a marker per commit coloured by verdict."""
    points = [(e.timestamp, e.after.canary) for e in timeline.events if e.after is not None]
    if not points:
        return None
    figure = Figure(figsize=(11, 3.2), layout="constrained")
    ax = figure.add_subplot()
    xs = _datenums([t for t, _ in points] + [max(end, points[-1][0])])
    canary = [w for _, w in points] + [points[-1][1]]
    ax.step(xs, canary, where="post", color=CANARY_COLOR, linewidth=2, label=f"canary ({timeline.canary})")
    ax.step(xs, [100 - w for w in canary], where="post", color=GA_COLOR, linewidth=1.5, linestyle="--",
            label=f"stable ({timeline.stable})")  # fmt: skip
    seen: set[str] = set()
    for event in timeline.events:
        if event.after is None:
            continue
        kind = event.kind
        ax.scatter(
            _datenums([event.timestamp]),
            [event.after.canary],
            color=VERDICT_COLORS.get(kind, "#333333"),
            zorder=6 if event.weight_change else 7,
            # Records (pause, resume) sit on a weight commit's point: a cross keeps both visible.
            marker="o" if event.weight_change else "x",
            s=40 if event.weight_change else 70,
            label=kind if kind not in seen else None,
        )
        seen.add(kind)
    ax.xaxis_date(UTC)
    ax.set_ylim(-5, 105)
    ax.set_ylabel("weight (%)")
    ax.set_title(f"{timeline.rollout}: weights over time (UTC)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    png, width, height = _png(figure)
    return Chart("weights.png", "canary and stable weights over time", png, width, height)


def _cdf(histogram: Histogram) -> tuple[list[float], list[float]]:
    total = histogram.total
    pairs = [
        (bound * 1000, count / total)
        for bound, count in zip(histogram.bounds, histogram.cumulative, strict=True)
        if math.isfinite(bound) and bound > 0
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _latency_range(histograms: Sequence[Histogram]) -> tuple[float, float]:
    """The x range (ms) where the distributions change: from the bound below the first non-empty
    bucket to the bound above the last one (Envoy's buckets reach an hour; the data rarely does)."""
    lows: list[float] = []
    highs: list[float] = []
    for histogram in histograms:
        finite = [
            (b * 1000, c)
            for b, c in zip(histogram.bounds, histogram.cumulative, strict=True)
            if math.isfinite(b) and b > 0
        ]
        if histogram.total <= 0 or not finite:
            continue
        first = next((i for i, (_, c) in enumerate(finite) if c > 0), 0)
        last = next((i for i, (_, c) in enumerate(finite) if c >= histogram.total), len(finite) - 1)
        lows.append(finite[max(0, first - 1)][0])
        highs.append(finite[min(len(finite) - 1, last + 1)][0])
    if not lows:
        return 0.1, 1000.0
    return min(lows) / 1.5, max(highs) * 1.5


def latency_chart(metrics: StepMetricsReport) -> Chart | None:
    """Per step, the latency CDF of GA and canary at the bucket bounds, with p50 and p99 marks."""
    steps = [
        m
        for m in metrics.steps
        if (m.stable and m.stable.histogram.total > 0) or (m.canary and m.canary.histogram.total > 0)
    ][-MAX_LATENCY_PANELS:]
    if not steps:
        return None
    columns = min(3, len(steps))
    rows = math.ceil(len(steps) / columns)
    figure = Figure(figsize=(11, 0.4 + 3.0 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(steps):
            ax.set_visible(False)
            continue
        item = steps[index]
        for name, data, color in (("GA", item.stable, GA_COLOR), ("canary", item.canary, CANARY_COLOR)):
            if data is None or data.histogram.total <= 0:
                continue
            xs, ys = _cdf(data.histogram)
            p50, p99 = data.histogram.quantile(0.5), data.histogram.quantile(0.99)
            ax.plot(xs, ys, color=color, marker="o", markersize=3, linewidth=1.5,
                    label=f"{name} p50 {_ms(p50)}, p99 {_ms(p99)}")  # fmt: skip
            for q, style in ((p50, "--"), (p99, ":")):
                if math.isfinite(q) and q > 0:
                    ax.axvline(q * 1000, color=color, linestyle=style, linewidth=1.2)
        step = item.step
        ax.set_xscale("log")
        histograms = [d.histogram for d in (item.stable, item.canary) if d is not None]
        low, high = _latency_range(histograms)
        ax.set_xlim(low, high)
        # Ticks at the bucket bounds: the only places where the data says anything.
        ticks = sorted(
            {b * 1000 for h in histograms for b in h.bounds if math.isfinite(b) and low <= b * 1000 <= high}
        )
        ticks = ticks[:: max(1, math.ceil(len(ticks) / 7))]
        ax.minorticks_off()
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_ylim(0, 1.02)
        ax.set_title(
            f"step {step.index}: canary {step.weights.canary}%, {_duration(step.duration)}", fontsize=10
        )
        ax.set_xlabel("latency (ms, bucket bounds)", fontsize=8)
        ax.set_ylabel("fraction ≤ bound", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="lower right")
    figure.suptitle("latency distribution per step (CDF; dashed p50, dotted p99)", fontsize=11)
    png, width, height = _png(figure)
    return Chart("latency.png", "latency distributions of GA and canary per step", png, width, height)


def errors_chart(metrics: StepMetricsReport) -> Chart | None:
    """Error rate (5xx / requests) of GA and canary per step, with the counts on the bars."""
    steps = list(metrics.steps)
    if not steps or all(m.stable is None and m.canary is None for m in steps):
        return None
    figure = Figure(figsize=(11, 3.2), layout="constrained")
    ax = figure.add_subplot()
    width = 0.38
    top = 0.0
    for offset, name, color in ((-width / 2, "GA", GA_COLOR), (width / 2, "canary", CANARY_COLOR)):
        for i, item in enumerate(steps):
            data = item.stable if name == "GA" else item.canary
            if data is None or data.requests <= 0:
                ax.text(i + offset, 0, "no data", ha="center", va="bottom", fontsize=7, rotation=90)
                continue
            rate = 100 * data.error_rate
            top = max(top, rate)
            ax.bar(i + offset, rate, width, color=color, label=name)
            ax.text(i + offset, rate, f"{data.errors:.0f}/{data.requests:.0f}", ha="center", va="bottom",
                    fontsize=7)  # fmt: skip
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize="small")
    ax.set_xticks(
        range(len(steps)), [f"step {m.step.index}\n{m.step.weights.canary}%" for m in steps], fontsize=8
    )
    ax.set_ylim(0, max(1.0, top * 1.25))
    ax.set_ylabel("errors (%)")
    ax.set_title("error rate per step (5xx / requests; labels: errors/requests)")
    ax.grid(True, axis="y", alpha=0.3)
    png, width_px, height_px = _png(figure)
    return Chart("errors.png", "error rates of GA and canary per step", png, width_px, height_px)


def _canary(weights: Weights | None) -> str:
    return "–" if weights is None else f"{weights.canary}%"


def _percent(rate: float) -> str:
    return "–" if math.isnan(rate) else f"{100 * rate:.2f}%"


def _escape(value: object) -> object:
    """Autoescape's finalizer: every ``{{ value }}`` goes through :func:`html.escape`.

    markupsafe (Jinja2's default) would write quotes as ``&#34;``/``&#39;`` where the standard
    library writes ``&quot;``/``&#x27;``; both are correct, and keeping one spelling keeps the pages
    (and the checks on them) byte-stable. Values that are already markup (macro output) pass as they
    are; anything this does not see is still escaped by autoescape.
    """
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value), quote=True))


def _environment() -> Environment:
    """A fresh environment per page (no module-level state); templates ship as package data."""
    environment = Environment(
        loader=PackageLoader("rollouts.report", "templates"),
        autoescape=True,
        finalize=_escape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        when=_when,
        duration=_duration,
        ms=_ms,
        percent=_percent,
        count=lambda value: f"{value:.0f}",
        canary=_canary,
        b64=lambda data: base64.b64encode(data).decode("ascii"),
    )
    return environment


def _range(timeline: Timeline) -> str:
    since = f" since {_when(timeline.since)}" if timeline.since is not None else ""
    until = f" until {_when(timeline.until)}" if timeline.until is not None else ""
    return since + until + (" UTC" if since or until else "")


def render(timeline: Timeline, metrics: StepMetricsReport, *, generated: int, end: int) -> RenderedReport:
    """The page for ``timeline`` and ``metrics``; ``generated`` and ``end`` are unix seconds."""
    weights = weights_chart(timeline, end)
    latency = latency_chart(metrics) if metrics.available else None
    errors = errors_chart(metrics) if metrics.available else None
    charts = [chart for chart in (weights, latency, errors) if chart is not None]
    page = (
        _environment()
        .get_template(TEMPLATE)
        .render(
            title=f"Rollout {timeline.rollout}",
            csp=Markup(CSP),  # our constant, not input: quoted as written
            timeline=timeline,
            metrics=metrics,
            # Never a password on the page.
            prometheus=redact_url(metrics.url or "", metrics.url or ""),
            notes=(*timeline.notes, *metrics.notes),
            span=_range(timeline),
            generated=generated,
            charts={"weights": weights, "latency": latency, "errors": errors},
            quantiles=QUANTILES,
            colors=VERDICT_COLORS,
        )
    )
    return RenderedReport(html=page, charts=tuple(charts))
