"""Instant queries against Prometheus, with a timeout, bounded retries and distinct errors.

prometheus-api-client does the HTTP; its own urllib3 retries are switched off so that the time a
query may take is bounded by what we say here (``timeout`` per attempt, ``attempts`` in all, short
backoff between), and tenacity retries only what is worth retrying: Prometheus down, slow or
answering 5xx. A query Prometheus rejects (HTTP 400/422: a template bug) fails at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

from analyzer.redaction import redact


class PrometheusError(RuntimeError):
    """Any failure to get an answer from Prometheus."""


class PrometheusUnavailableError(PrometheusError):
    """Prometheus did not answer in time, refused the connection, or answered 5xx."""


class PrometheusQueryError(PrometheusError):
    """Prometheus rejected the query (bad PromQL, usually a template problem) or answered nonsense."""


def redact_url(text: str, url: str) -> str:
    """``text`` with the user name and password of ``url`` (and any other URL credential) replaced by
    ``***`` (:func:`analyzer.redaction.redact`).

    A Prometheus behind basic auth may be given as ``https://user:pass@host``; messages end up in
    logs, notifications and report pages, and must not carry the password.
    """
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    secrets = (userinfo, *userinfo.split(":", 1)) if userinfo else ()
    return redact(text, tuple(s for s in secrets if len(s) >= 4))


# requests/urllib3 quote the request's path and query in their errors ("Max retries exceeded with
# url: /api/v1/query?query=sum%28...%29&time=..."): the URL-encoded PromQL says nothing to a reader
# (the query is named separately) and makes the message unreadable.
_ENCODED_QUERY = re.compile(r"(/api/v1/[a-z_]+)\?[^\s)'\"]*")


def _short(text: str) -> str:
    return _ENCODED_QUERY.sub(r"\1?...", text)


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: its labels and value (NaN and +-Inf kept as floats)."""

    labels: dict[str, str]
    value: float


class PrometheusClient:
    """Instant queries at a given time; counts the HTTP requests it sends (``requests_sent``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.2,
        headers: dict[str, str] | None = None,
    ) -> None:
        if timeout <= 0 or attempts < 1:
            raise ValueError("timeout must be > 0 and attempts >= 1")
        self.url = url.rstrip("/")
        self.display_url = redact_url(self.url, self.url)  # for messages
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.requests_sent = 0
        self.headers = dict(headers or {})  # also for build_version and probes
        self._connect = PrometheusConnect(
            url=self.url,
            disable_ssl=True,
            retry=Retry(total=0, raise_on_status=False),
            timeout=timeout,
            headers=headers,  # e.g. Authorization for a Prometheus behind a proxy
        )

    def query(self, promql: str, at: float) -> list[Sample]:
        """Evaluate ``promql`` at unix time ``at``; retried on :class:`PrometheusUnavailableError`."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=2.0),
            retry=retry_if_exception_type(PrometheusUnavailableError),
            reraise=True,
        )
        result: list[Sample] = retrying(self._query_once, promql, at)
        return result

    def _query_once(self, promql: str, at: float) -> list[Sample]:
        self.requests_sent += 1
        params = {"time": f"{at:.3f}", "timeout": f"{self.timeout:g}s"}
        try:
            raw: Any = self._connect.custom_query(promql, params=params)
        except requests.exceptions.RequestException as exc:
            raise PrometheusUnavailableError(
                self._redact(f"Prometheus at {self.url} did not answer: {_short(str(exc))}")
            ) from exc
        except PrometheusApiClientException as exc:
            message = self._redact(_short(str(exc)))
            if "HTTP Status Code 5" in message:
                raise PrometheusUnavailableError(f"Prometheus at {self.display_url}: {message}") from exc
            raise PrometheusQueryError(
                f"Prometheus at {self.display_url} rejected the query: {message}\n{promql}"
            ) from exc
        except ValueError as exc:  # a 200 whose body is not JSON: not Prometheus
            raise PrometheusQueryError(
                f"{self.display_url} answered something that is not Prometheus JSON"
            ) from exc
        return _samples(raw, promql)

    def build_version(self) -> str | None:
        """The server's version from ``/api/v1/status/buildinfo`` (``"2.42.0+ds"``), None when it
        does not say (an older server, or a Prometheus-compatible one without that endpoint);
        :class:`PrometheusUnavailableError` when it cannot be reached.

        One attempt, not counted in :attr:`requests_sent` (which counts queries).
        """
        try:
            answer = requests.get(
                f"{self.url}/api/v1/status/buildinfo",
                headers=self.headers,
                timeout=self.timeout,
                verify=False,
            )
        except requests.exceptions.RequestException as exc:
            raise PrometheusUnavailableError(
                self._redact(f"Prometheus at {self.url} did not answer: {_short(str(exc))}")
            ) from exc
        try:
            version = answer.json().get("data", {}).get("version") if answer.status_code == 200 else None
        except (ValueError, AttributeError):
            return None
        return str(version) if isinstance(version, str) and version else None

    def _redact(self, text: str) -> str:
        return redact_url(text, self.url)


def _samples(raw: Any, promql: str) -> list[Sample]:
    if not isinstance(raw, list):
        raise PrometheusQueryError(f"expected an instant vector, got {type(raw).__name__} for {promql}")
    samples = []
    for item in raw:
        try:
            value = float(item["value"][1])  # "NaN", "+Inf" and "-Inf" parse as floats
            labels = {str(k): str(v) for k, v in item["metric"].items()}
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise PrometheusQueryError(f"malformed sample {item!r} for {promql}") from exc
        samples.append(Sample(labels=labels, value=value))
    return samples


def finite(value: float) -> bool:
    """True unless NaN or infinite."""
    return math.isfinite(value)
