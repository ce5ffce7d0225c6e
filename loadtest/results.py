"""What a run measured: bounded-size aggregates that merge across users, processes and workers.

Nothing here grows with the number of requests: latencies go into :class:`LatencyHistogram`,
phases into min/max/sum, status codes and error messages into counters (error messages are
normalised so that their number stays small).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadtest.histogram import LatencyHistogram

PHASES = ("dialup", "write", "wait", "read")
MAX_ERROR_KINDS = 100  # distinct error messages kept; the rest are counted under one key
OTHER_ERRORS = "(other errors)"


@dataclass
class PhaseStats:
    """Sum, min and max of one phase of a request (connect, write, wait for first byte, read)."""

    total: float = 0.0
    minimum: float = float("inf")
    maximum: float = 0.0

    def add(self, seconds: float) -> None:
        """Record one duration."""
        self.total += seconds
        self.minimum = min(self.minimum, seconds)
        self.maximum = max(self.maximum, seconds)

    def merge(self, other: PhaseStats) -> None:
        """Fold ``other`` into this one."""
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)


@dataclass
class Results:
    """Aggregates of one run, one user batch or one worker report.

    ``latency`` holds what hey reports: for the closed model (workers waiting for responses) the
    time from send to the end of the response; for the open model (``--rate``) the time from the
    *intended* send time, so that a stalled target shows up in every request it delayed.
    ``service`` holds send-to-end times of the open model (empty in the closed model, where it
    equals ``latency``).
    """

    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    service: LatencyHistogram = field(default_factory=LatencyHistogram)
    phases: list[PhaseStats] = field(default_factory=lambda: [PhaseStats() for _ in PHASES])
    status: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    body_bytes: int = 0
    failures: int = 0  # transport errors plus responses with status >= 400 (Locust's convention)

    @property
    def responses(self) -> int:
        """Requests that got a complete HTTP response (any status)."""
        return self.latency.count

    @property
    def error_count(self) -> int:
        """Requests that got no response."""
        return sum(self.errors.values())

    @property
    def requests(self) -> int:
        """Every request sent: responses plus transport errors."""
        return self.latency.count + self.error_count

    def record_error(self, message: str) -> None:
        """Count one request that got no response."""
        errors = self.errors
        if message not in errors and len(errors) >= MAX_ERROR_KINDS:
            message = OTHER_ERRORS
        errors[message] = errors.get(message, 0) + 1
        self.failures += 1

    def merge(self, other: Results) -> None:
        """Fold ``other`` into this one."""
        self.latency.merge(other.latency)
        self.service.merge(other.service)
        for mine, theirs in zip(self.phases, other.phases, strict=True):
            mine.merge(theirs)
        for code, n in other.status.items():
            self.status[code] = self.status.get(code, 0) + n
        for message, n in other.errors.items():
            key = (
                OTHER_ERRORS
                if message not in self.errors and len(self.errors) >= MAX_ERROR_KINDS
                else message
            )
            self.errors[key] = self.errors.get(key, 0) + n
        self.body_bytes += other.body_bytes
        self.failures += other.failures

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (msgpack/JSON friendly) for Locust worker reports."""
        return {
            "latency": self.latency.to_dict(),
            "service": self.service.to_dict(),
            "phases": [
                [p.total, p.minimum if p.minimum != float("inf") else None, p.maximum] for p in self.phases
            ],
            "status": {str(k): v for k, v in self.status.items()},
            "errors": dict(self.errors),
            "body_bytes": self.body_bytes,
            "failures": self.failures,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        """Inverse of :meth:`to_dict`."""
        return cls(
            latency=LatencyHistogram.from_dict(data["latency"]),
            service=LatencyHistogram.from_dict(data["service"]),
            phases=[
                PhaseStats(total, float("inf") if low is None else low, high)
                for total, low, high in data["phases"]
            ],
            status={int(k): int(v) for k, v in data["status"].items()},
            errors={str(k): int(v) for k, v in data["errors"].items()},
            body_bytes=int(data["body_bytes"]),
            failures=int(data["failures"]),
        )
