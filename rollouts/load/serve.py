"""Client of the ``loadtest serve`` control API (the load-test pod; contract in docs/architecture.md)."""

from __future__ import annotations

from typing import Any

import requests

from rollouts.load.base import LoadRequest, LoadStats, ensure_running
from rollouts.load.errors import LoadRejectedError, LoadUnavailableError

_REJECTIONS = {
    400: "malformed job",
    401: "wrong or missing token",
    403: "target outside the allowlist",
    429: "too many jobs",
}


class ServeLoad:
    """Starts, reads and stops jobs on one ``loadtest serve`` endpoint."""

    def __init__(self, endpoint: str, token: str, *, timeout: float = 5.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.endpoint}{path}"
        try:
            answer = self._session.request(method, url, json=body, timeout=self._timeout)
        except requests.RequestException as exc:
            raise LoadUnavailableError(f"load endpoint {self.endpoint} unreachable: {exc}") from exc
        if answer.status_code >= 500:
            raise LoadUnavailableError(
                f"load endpoint {self.endpoint} answered {answer.status_code} to {method} {path}"
            )
        if answer.status_code >= 400:
            what = _REJECTIONS.get(answer.status_code, "request refused")
            detail = answer.text.strip()[:200]
            raise LoadRejectedError(
                f"load endpoint {self.endpoint} refused {method} {path}: {answer.status_code} {what}"
                + (f" ({detail})" if detail else ""),
                answer.status_code,
            )
        try:
            data = answer.json()
        except ValueError as exc:
            raise LoadUnavailableError(
                f"load endpoint {self.endpoint} answered non-JSON to {method} {path}"
            ) from exc
        if not isinstance(data, dict):
            raise LoadUnavailableError(
                f"load endpoint {self.endpoint} answered {type(data).__name__} to {method} {path}"
            )
        return data

    def healthy(self) -> bool:
        """``GET /healthz`` answers 2xx."""
        try:
            return self._session.get(f"{self.endpoint}/healthz", timeout=self._timeout).ok
        except requests.RequestException:
            return False

    def start(self, request: LoadRequest) -> str | None:
        """``POST /jobs``; the new job's id."""
        return self._stats(self._call("POST", "/jobs", request.body())).id

    def status(self, job: str | None) -> LoadStats | None:
        """``GET /jobs/{id}``."""
        return None if job is None else self._stats(self._call("GET", f"/jobs/{job}"))

    def ensure_running(
        self, job: str | None, request: LoadRequest, *, renew_within: float = 0.0
    ) -> str | None:
        """``job`` while it runs, else a new job (``GET /jobs/{id}``, then ``POST /jobs``)."""
        return ensure_running(self, job, request, renew_within=renew_within)

    def stop(self, job: str | None) -> LoadStats | None:
        """``DELETE /jobs/{id}``; the final figures. A job that is already gone is not an error."""
        if job is None:
            return None
        try:
            return self._stats(self._call("DELETE", f"/jobs/{job}"))
        except LoadRejectedError as exc:
            if exc.status == 404:
                return None
            raise

    def _stats(self, data: dict[str, Any]) -> LoadStats:
        try:
            return LoadStats.from_json(data)
        except ValueError as exc:
            raise LoadUnavailableError(f"load endpoint {self.endpoint}: {exc}") from exc

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()
