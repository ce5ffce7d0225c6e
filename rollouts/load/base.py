"""What the controller asks of a load driver, and the two ways a driver can fail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from rollouts.load.errors import (
    LoadError,
    LoadRejectedError,
    LoadUnavailableError,
)


@dataclass(frozen=True)
class LoadRequest:
    """One load job: the body of ``POST /jobs`` of ``loadtest serve``."""

    target: str
    duration: float
    rate: float | None = 20.0
    concurrency: int | None = None
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON body of ``POST /jobs``."""
        return {
            "target": self.target,
            "rate": self.rate,
            "concurrency": self.concurrency,
            "duration": self.duration,
            "method": self.method,
            "headers": dict(self.headers),
        }


@dataclass(frozen=True)
class LoadStats:
    """A job's figures as the control API reports them."""

    id: str
    state: str  # running | finished | stopped | failed
    target: str = ""
    requests: int = 0
    errors: int = 0
    rps: float = 0.0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    elapsed: float = 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadStats:
        """Parse a job object; ``ValueError`` when it is not one."""
        try:
            latency = data.get("latency") or {}
            return cls(
                id=str(data["id"]),
                state=str(data["state"]),
                target=str(data.get("target", "")),
                requests=int(data.get("requests", 0)),
                errors=int(data.get("errors", 0)),
                rps=float(data.get("rps", 0.0)),
                p50=_opt(latency.get("p50")),
                p90=_opt(latency.get("p90")),
                p99=_opt(latency.get("p99")),
                elapsed=float(data.get("elapsed", 0.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a load job object: {exc!r} in {data!r}") from exc

    def describe(self) -> str:
        """One line for logs and notifications."""
        p99 = f", p99 {self.p99:g}" if self.p99 is not None else ""
        counts = f"{self.requests} requests, {self.errors} errors, {self.rps:.1f} rps"
        return f"load job {self.id} {self.state}: {counts}{p99}"


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


class LoadDriver(Protocol):
    """Starts and stops load for one analysis step. ``start`` raises ``LoadUnavailableError`` or
    ``LoadRejectedError``; ``None`` job ids mean "no load of our own" (the service has real traffic)."""

    def start(self, request: LoadRequest) -> str | None:
        """Start a job; its id."""
        ...

    def status(self, job: str | None) -> LoadStats | None:
        """The job's current figures."""
        ...

    def ensure_running(
        self, job: str | None, request: LoadRequest, *, renew_within: float = 0.0
    ) -> str | None:
        """The id of a running job for ``request``: ``job`` while it runs with more than
        ``renew_within`` seconds left, else a fresh one (see :func:`ensure_running`)."""
        ...

    def stop(self, job: str | None) -> LoadStats | None:
        """Stop the job; its final figures."""
        ...

    def close(self) -> None:
        """Release what the driver holds (sessions, subprocesses)."""
        ...


class _Jobs(Protocol):
    def start(self, request: LoadRequest) -> str | None: ...
    def status(self, job: str | None) -> LoadStats | None: ...
    def stop(self, job: str | None) -> LoadStats | None: ...


def ensure_running(
    driver: _Jobs, job: str | None, request: LoadRequest, *, renew_within: float = 0.0
) -> str | None:
    """Keep load on for as long as a step lasts, whatever the job's fixed ``duration``.

    ``job`` is kept while it runs with more than ``renew_within`` seconds of its duration left
    (pass about two ticks, so the hand-over happens before the job ends, not after a gap); a job
    that finished, stopped, failed or is unknown to the endpoint (it restarted) is replaced by a new
    one from ``request``. A step may hold for more windows than one job lasts; no job duration has
    to know the policy's window cap.
    """
    if job is not None:
        try:
            stats = driver.status(job)
        except LoadRejectedError as exc:
            if exc.status != 404:
                raise
            stats = None  # the endpoint lost it (restarted): start afresh
        if stats is not None and stats.state == "running":
            if stats.elapsed + renew_within < request.duration:
                return job
            driver.stop(job)  # about to end: hand over now rather than leave a gap
    return driver.start(request)


class NoLoad:
    """The service has real traffic: the controller drives none."""

    def start(self, request: LoadRequest) -> str | None:
        """Nothing to start."""
        return None

    def status(self, job: str | None) -> LoadStats | None:
        """No figures: the traffic is not ours."""
        return None

    def stop(self, job: str | None) -> LoadStats | None:
        """Nothing to stop."""
        return None

    def ensure_running(
        self, job: str | None, request: LoadRequest, *, renew_within: float = 0.0
    ) -> str | None:
        """Nothing to keep running."""
        return None

    def close(self) -> None:
        """Nothing held."""


# The errors are defined in errors.py and raised here: importable from here too.
__all__ = [
    "LoadDriver",
    "LoadError",
    "LoadRejectedError",
    "LoadRequest",
    "LoadStats",
    "LoadUnavailableError",
    "NoLoad",
    "ensure_running",
]
