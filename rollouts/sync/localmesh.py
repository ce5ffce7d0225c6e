"""The sync gate on one machine: the local mesh's ``GET /status`` shows which commit it applied."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from analyzer.redaction import redact
from rollouts.routes.base import Weights
from rollouts.routes.errors import RouteError
from rollouts.sync.base import Observation, PollingGate


class LocalMeshGate(PollingGate):
    """Open when the mesh has applied our commit (or a later one that contains it) with our weights.

    ``contains(newer, ours)`` answers whether commit ``newer`` has ``ours`` in its history (the Git
    workspace can say); without it only the exact revision opens the gate.
    """

    def __init__(
        self,
        url: str,
        *,
        contains: Callable[[str, str], bool] | None = None,
        request_timeout: float = 2.0,
        **polling: Any,
    ) -> None:
        super().__init__(**polling)
        self.url = url.rstrip("/") + "/status"
        self._contains = contains
        self._timeout = request_timeout
        self._session = requests.Session()

    def observe(self, expected_revision: str) -> Observation:
        """GET the mesh status; connection and format problems become ``error``."""
        try:
            answer = self._session.get(self.url, timeout=self._timeout)
            answer.raise_for_status()
            status = answer.json()
            raw = status["weights"]
            weights = Weights(stable=int(raw["stable"]), canary=int(raw["canary"]))
        except (requests.RequestException, ValueError, KeyError, TypeError, RouteError) as exc:
            return Observation(error=redact(f"local mesh status {self.url} unreadable: {exc}"))
        mesh_error = status.get("error")
        return Observation(
            weights=weights,
            revision=str(status.get("revision") or ""),
            detail=f"mesh cannot apply the newest revision: {mesh_error}" if mesh_error else "",
        )

    def matches(self, seen: Observation, weights: Weights, revision: str) -> str | None:
        """Same weights, and our revision or a descendant of it."""
        applied = seen.revision or ""
        ours = applied == revision or (
            bool(applied) and self._contains is not None and self._contains(applied, revision)
        )
        if not ours:
            return f"mesh runs revision {applied[:12] or 'none'}, not {revision[:12]}" + (
                f" ({seen.detail})" if seen.detail else ""
            )
        if seen.weights != weights:
            return (
                f"mesh weights are stable {seen.weights.stable}% / canary {seen.weights.canary}%"
                if (seen.weights)
                else "mesh reports no weights"
            )
        return None

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()
