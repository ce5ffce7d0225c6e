"""The Datadog provider: the metrics query API (``GET /api/v1/query``) as an instant vector.

Datadog answers a time range (``from``, ``to``, unix seconds) with series of points; the window
ending at ``at`` is asked for, and each series becomes one :class:`~analyzer.providers.Sample`:

* labels: the series' ``tag_set`` (``["version:canary", "service:podinfo"]``; ``scope`` when the
  tag set is empty), each ``key:value`` tag a label; a tag without ``:`` is a label with an empty
  value;
* value: the **last non-null point** of the window, as Flagger's and Argo Rollouts' Datadog
  providers take it. Write queries that leave one point per window, with
  ``.rollup(sum, {{ window }})`` for counts or ``.rollup(avg, {{ window }})`` for gauges: the
  controller's windows lie on a grid of the analysis interval, and Datadog aligns rollups the same
  way. A series without any non-null point is left out (no data, never zero).

The API and application keys are read from files at every request (``DD-API-KEY``,
``DD-APPLICATION-KEY`` headers). 429 (rate limited) and 5xx are retried with backoff, 401/403 are
:class:`~analyzer.providers.CredentialsError`, 400 a :class:`~analyzer.providers.ProviderQueryError`
with Datadog's own message.

Must never: put a key into a message, a log line or a ``repr``; treat a missing series as zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import requests

from analyzer.providers.base import (
    CredentialsError,
    ProviderConfigError,
    ProviderQueryError,
    ProviderUnavailableError,
    Sample,
    read_secret,
    retrying_call,
)

#: Datadog's US1 site; other sites: ``https://api.datadoghq.eu``, ``https://api.us3.datadoghq.com`` ...
DEFAULT_SITE = "https://api.datadoghq.com"
_MAX_ERROR = 300  # characters of Datadog's error text kept in a message


@dataclass(frozen=True)
class DatadogConfig:
    """Where the Datadog API is and the files holding its keys."""

    api_key_file: str
    application_key_file: str
    url: str = DEFAULT_SITE
    timeout: float = 10.0
    attempts: int = 3
    backoff: float = 0.5
    ca_file: str | None = None


class DatadogClient:
    """Datadog's metrics query API behind the :class:`~analyzer.providers.Provider` interface."""

    dialect = "datadog"

    def __init__(self, config: DatadogConfig) -> None:
        if config.timeout <= 0 or config.attempts < 1:
            raise ProviderConfigError("timeout must be > 0 and attempts >= 1")
        self.config = config
        self.url = config.url.rstrip("/")
        self.display_url = self.url
        self.requests_sent = 0
        self._session = requests.Session()
        self._session.verify = config.ca_file or True

    def __repr__(self) -> str:
        return f"DatadogClient({self.url!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._session.close()

    def query(self, query: str, at: float, *, window: float | None = None) -> list[Sample]:
        """The series of ``query`` over ``[at - window, at]``, each reduced to its last point."""
        if window is None or not (window > 0 and math.isfinite(window)):
            raise ProviderQueryError("a Datadog query needs a positive window")
        return retrying_call(
            self.config.attempts, self.config.backoff, lambda: self._query_once(query, at, window)
        )

    def _headers(self) -> dict[str, str]:
        return {
            "DD-API-KEY": read_secret(self.config.api_key_file, "Datadog API key"),
            "DD-APPLICATION-KEY": read_secret(self.config.application_key_file, "Datadog application key"),
            "Accept": "application/json",
        }

    def _query_once(self, query: str, at: float, window: float) -> list[Sample]:
        headers = self._headers()
        params = {"from": str(math.floor(at - window)), "to": str(math.floor(at)), "query": query}
        self.requests_sent += 1
        where = f"Datadog at {self.display_url}"
        try:
            response = self._session.get(
                f"{self.url}/api/v1/query", params=params, headers=headers, timeout=self.config.timeout
            )
        except requests.exceptions.SSLError as exc:
            raise ProviderConfigError(f"TLS with {where} failed: {type(exc).__name__}") from None
        except requests.exceptions.RequestException as exc:
            raise ProviderUnavailableError(f"{where} did not answer: {type(exc).__name__}") from None
        status = response.status_code
        if status in (401, 403):
            raise CredentialsError(f"{where} refused the API or application key (HTTP {status})")
        if status == 429 or status >= 500:
            raise ProviderUnavailableError(f"{where} answered HTTP {status}")
        body = _json(response, where)
        if status != 200:
            raise ProviderQueryError(f"{where} rejected the query (HTTP {status}): {_errors(body)}\n{query}")
        if not isinstance(body, dict) or body.get("status") == "error":
            detail = body.get("error") if isinstance(body, dict) else "not a query response"
            raise ProviderQueryError(f"{where} could not run the query: {str(detail)[:_MAX_ERROR]}\n{query}")
        return samples(body, query)


def _json(response: requests.Response, where: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProviderQueryError(
            f"{where} answered HTTP {response.status_code} with something that is not JSON"
        ) from None


def _errors(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return "; ".join(str(e) for e in body["errors"])[:_MAX_ERROR]
    return str(body)[:_MAX_ERROR]


def samples(body: dict[str, Any], query: str) -> list[Sample]:
    """One :class:`Sample` per series of a ``/api/v1/query`` response (see the module docs)."""
    series = body.get("series")
    if series is None:
        return []
    if not isinstance(series, list):
        raise ProviderQueryError(f"Datadog answered series that are not a list for {query}")
    out = []
    for item in series:
        if not isinstance(item, dict) or not isinstance(item.get("pointlist", []), list):
            raise ProviderQueryError(f"malformed Datadog series {str(item)[:_MAX_ERROR]} for {query}")
        value = _last_point(item.get("pointlist") or [], query)
        if value is None:
            continue
        out.append(Sample(labels=_labels(item), value=value))
    return out


def _last_point(points: list[Any], query: str) -> float | None:
    for point in reversed(points):
        if not isinstance(point, list | tuple) or len(point) != 2:
            raise ProviderQueryError(f"malformed Datadog point {point!r} for {query}")
        if point[1] is None:
            continue
        try:
            return float(point[1])
        except (TypeError, ValueError):
            raise ProviderQueryError(f"malformed Datadog point {point!r} for {query}") from None
    return None


def _labels(series: dict[str, Any]) -> dict[str, str]:
    tags = series.get("tag_set") or []
    if not tags and isinstance(series.get("scope"), str) and series["scope"] not in ("", "*"):
        tags = series["scope"].split(",")
    labels = {}
    for tag in tags:
        key, _, value = str(tag).strip().partition(":")
        labels[key] = value
    return labels
