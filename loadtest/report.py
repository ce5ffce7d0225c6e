"""hey's summary format, its CSV header, and the JSON report.

The text layout follows hey 0.1.4 (the Debian package) byte for byte where the data allow, so that
people and scripts that read hey's output keep working: the same sections, tabs, ``%4.4f`` numbers
and blank lines. Status codes are sorted (hey prints Go map order). Percentiles come from the
log-linear histogram (within 0.4 % of the exact sample).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from loadtest.histogram import LatencyHistogram, bucket_value
from loadtest.results import PHASES, Results

BAR = "■"
PERCENTILES = (10, 25, 50, 75, 90, 95, 99)
CSV_HEADER = "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset"


def _f(value: float) -> str:
    """Go's ``%4.4f`` (NaN prints as `` NaN``)."""
    if math.isnan(value):
        return " NaN"
    return f"{value:4.4f}"


def hey_histogram(hist: LatencyHistogram, marks: int = 10) -> list[tuple[float, int]]:
    """hey's response time histogram: 11 marks from fastest to slowest, counts of samples ≤ mark."""
    if hist.count == 0:
        return []
    fastest, slowest = hist.minimum, hist.maximum
    step = (slowest - fastest) / marks
    bounds = [fastest + step * i for i in range(marks)] + [slowest]
    counts = [0] * len(bounds)
    position = 0
    for index, n in hist.buckets():
        value = min(max(bucket_value(index), fastest), slowest)
        while position < len(bounds) - 1 and value > bounds[position]:
            position += 1
        counts[position] += n
    return list(zip(bounds, counts, strict=True))


@dataclass(frozen=True)
class Report:
    """A finished (or in-flight) run: the aggregates plus how long it took and what it was."""

    results: Results
    elapsed: float
    url: str
    open_model: bool = False
    rate: float | None = None

    @property
    def rps(self) -> float:
        """Requests (responses and errors, as hey counts) per second."""
        return self.results.requests / self.elapsed if self.elapsed > 0 else 0.0

    def text(self) -> str:
        """hey's summary text."""
        r = self.results
        lat = r.latency
        n = lat.count
        nan = float("nan")
        out: list[str] = ["\nSummary:\n"]
        out.append(f"  Total:\t{_f(self.elapsed)} secs\n")
        out.append(f"  Slowest:\t{_f(lat.maximum if n else 0.0)} secs\n")
        out.append(f"  Fastest:\t{_f(lat.minimum if n else 0.0)} secs\n")
        out.append(f"  Average:\t{_f(lat.mean if n else nan)} secs\n")
        out.append(f"  Requests/sec:\t{_f(self.rps)}\n  ")
        if r.body_bytes > 0:
            out.append(
                f"\n  Total data:\t{r.body_bytes} bytes\n  Size/request:\t{r.body_bytes // max(n, 1)} bytes"
            )
        out.append("\n\nResponse time histogram:\n")
        buckets = hey_histogram(lat)
        peak = max((c for _, c in buckets), default=0)
        for mark, count in buckets:
            bar = BAR * ((count * 40 + peak // 2) // peak if peak else 0)
            out.append(f"  {mark:4.3f} [{count}]\t|{bar}\n")
        out.append("\n\nLatency distribution:")
        out.extend(self._distribution(lat))
        if self.open_model:
            out.append("\n\nService time distribution (from actual send, without queueing):")
            out.extend(self._distribution(r.service))
        out.append("\n\nDetails (average, fastest, slowest):")
        labels = {"dialup": "DNS+dialup", "write": "req write", "wait": "resp wait", "read": "resp read"}
        for name, phase in zip(PHASES, r.phases, strict=True):
            avg = phase.total / n if n else nan
            low = phase.minimum if n else 0.0
            out.append(f"\n  {labels[name]}:\t{_f(avg)} secs, {_f(low)} secs, {_f(phase.maximum)} secs")
            if name == "dialup":
                # name resolution is part of dial-up here (one lookup per connection)
                out.append(f"\n  DNS-lookup:\t{_f(0.0 if n else nan)} secs, {_f(0.0)} secs, {_f(0.0)} secs")
        out.append("\n\nStatus code distribution:")
        for code in sorted(r.status):
            out.append(f"\n  [{code}]\t{r.status[code]} responses")
        out.append("\n\n")
        if r.errors:
            out.append("Error distribution:")
            for message, count in sorted(r.errors.items(), key=lambda kv: (-kv[1], kv[0])):
                out.append(f"\n  [{count}]\t{message}")
        out.append("\n\n")
        return "".join(out)

    @staticmethod
    def _distribution(hist: LatencyHistogram) -> list[str]:
        lines = []
        for p in PERCENTILES:
            value = hist.hey_percentile(p)
            if value > 0:
                lines.append(f"\n  {p}% in {_f(value)} secs")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable report (``--json``)."""
        r = self.results
        lat = r.latency

        def dist(hist: LatencyHistogram) -> dict[str, float | None]:
            if hist.count == 0:
                return {"min": None, "mean": None, "max": None, **{f"p{p}": None for p in (50, 90, 95, 99)}}
            return {
                "min": hist.minimum,
                "mean": hist.mean,
                "max": hist.maximum,
                **{f"p{p}": hist.quantile(p / 100) for p in (50, 90, 95, 99)},
            }

        return {
            "url": self.url,
            "model": "open" if self.open_model else "closed",
            "target_rate": self.rate,
            "total_seconds": self.elapsed,
            "requests": r.requests,
            "responses": lat.count,
            "errors": r.error_count,
            "failures": r.failures,
            "requests_per_second": self.rps,
            "bytes": r.body_bytes,
            "latency": dist(lat),
            "service_time": dist(r.service) if self.open_model else dist(lat),
            "status_codes": {str(k): v for k, v in sorted(r.status.items())},
            "error_distribution": dict(sorted(r.errors.items(), key=lambda kv: (-kv[1], kv[0]))),
            "histogram": {"buckets": [[bucket_value(i), c] for i, c in lat.buckets()]},
        }

    def json(self) -> str:
        """:meth:`as_dict` as indented JSON."""
        return json.dumps(self.as_dict(), indent=2)


def csv_row(latency: float, phases: tuple[float, float, float, float], status: int, offset: float) -> str:
    """One CSV line as hey prints it (DNS is part of dial-up here, so its column is 0)."""
    dialup, write, wait, read = phases
    return f"{latency:4.4f},{dialup:4.4f},0.0000,{write:4.4f},{wait:4.4f},{read:4.4f},{status},{offset:4.4f}"
