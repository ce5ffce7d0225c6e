"""The sync gate: no analysis window starts before the cluster runs the weights that were committed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rollouts.routes.base import Weights


@dataclass(frozen=True)
class Observation:
    """What one look at the cluster showed; ``error`` says why it could not be read."""

    weights: Weights | None = None
    shape: object | None = None  # the route's strategy blocks, compared by equality (a RouteShape)
    revision: str | None = None
    ready: bool = True
    detail: str = ""
    error: str | None = None


@dataclass(frozen=True)
class GateResult:
    """The gate opened (the cluster runs the commit) or timed out, with what it last saw."""

    opened: bool
    reason: str
    waited: float
    looks: int
    observed: Observation

    def __bool__(self) -> bool:
        return self.opened


class SyncGate(Protocol):
    """Waits until the cluster serves ``expected_weights`` from commit ``expected_revision``."""

    def wait(self, expected_weights: Weights, expected_revision: str, timeout: float) -> GateResult:
        """Poll until the cluster runs the commit or ``timeout`` seconds pass (never longer)."""
        ...


class PollingGate:
    """A gate that looks at the cluster every ``interval`` seconds; subclasses say how to look."""

    def __init__(
        self,
        *,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep

    def observe(self, expected_revision: str) -> Observation:
        """One look at the cluster."""
        raise NotImplementedError

    def matches(self, seen: Observation, weights: Weights, revision: str) -> str | None:
        """None when ``seen`` shows the commit; otherwise what is still missing, in words."""
        raise NotImplementedError

    def wait(self, expected_weights: Weights, expected_revision: str, timeout: float) -> GateResult:
        """Poll until the commit is live or ``timeout`` seconds pass."""
        start = self._clock()
        looks = 0
        while True:
            seen = self.observe(expected_revision)
            looks += 1
            missing = seen.error or self.matches(seen, expected_weights, expected_revision)
            waited = self._clock() - start
            if missing is None:
                return GateResult(
                    True,
                    f"cluster runs {_fmt(expected_weights)} of {expected_revision[:12]}",
                    waited,
                    looks,
                    seen,
                )
            if waited + self.interval > timeout:
                reason = (
                    f"sync gate timed out after {waited:.0f}s waiting for {_fmt(expected_weights)}: {missing}"
                )
                return GateResult(False, reason, waited, looks, seen)
            self._sleep(self.interval)


def _fmt(weights: Weights) -> str:
    return f"stable {weights.stable}% / canary {weights.canary}%"
