"""What every metric provider is: one small interface, one vocabulary of failures, one retry rule.

A provider answers "evaluate this query over the window ending at ``at``" with an instant vector
(:class:`Sample` per series). The query layer (:mod:`analyzer.prometheus.query`) renders the query
and splits the answer per subset; the provider only moves bytes and reports what went wrong.

Errors say what failed, not where (as httpx's do):

* :class:`ProviderUnavailableError`: the backend did not answer in time, refused the connection,
  or answered 429 or 5xx. Retried with exponential backoff (tenacity); after the last attempt the
  caller holds the analysis.
* :class:`CredentialsError`: the backend refused our credentials (401/403, after one refresh where
  the credentials can be refreshed), or they cannot be obtained (a missing token file, an OAuth2
  token endpoint that refuses the client). Never retried: waiting does not fix it.
* :class:`ProviderQueryError`: the backend rejected the query or answered something that is not
  its API (a template bug, a wrong URL).
* :class:`ProviderConfigError`: the provider cannot be reached as configured (a TLS handshake that
  fails, an unreadable certificate file).

Must never: put a credential (token, secret, key, password) into a message, a log line or a
``repr``; retry a request whose answer cannot change (4xx other than 429).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

#: Secrets are small; a token "file" of megabytes is a mistake (or /dev/zero), not a token.
MAX_SECRET_BYTES = 64 * 1024

T = TypeVar("T")


class ProviderError(RuntimeError):
    """Any failure to get an answer from a metric provider."""


class ProviderUnavailableError(ProviderError):
    """The provider did not answer in time, refused the connection, or answered 429 or 5xx."""


class ProviderQueryError(ProviderError):
    """The provider rejected the query, or answered something that is not its API."""


class CredentialsError(ProviderError):
    """The provider refused the credentials (401/403), or they could not be obtained."""


class ProviderConfigError(ProviderError):
    """The provider cannot be reached as configured (TLS handshake, certificate files)."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: its labels and value (NaN and +-Inf kept as floats)."""

    labels: dict[str, str]
    value: float


@runtime_checkable
class Provider(Protocol):
    """A metric backend: instant vectors for rendered queries. ``requests_sent`` counts HTTP
    requests (retries included), for the batching benchmarks and tests."""

    #: ``prometheus`` or ``datadog``: the query language the templates must be written in.
    dialect: str
    #: Where it is, for messages (never with credentials).
    display_url: str
    requests_sent: int

    def query(self, query: str, at: float, *, window: float | None = None) -> list[Sample]:
        """Evaluate ``query`` at unix time ``at`` (the window ``[at - window, at]`` for backends
        that take a time range rather than a range selector)."""
        ...


def retrying_call(attempts: int, backoff: float, call: Callable[[], T]) -> T:
    """``call()``, retried on :class:`ProviderUnavailableError` only, with exponential backoff
    (``backoff``, doubled each time, at most 2 s between attempts); the last error is raised."""
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff, max=2.0),
        retry=retry_if_exception_type(ProviderUnavailableError),
        reraise=True,
    )
    return retrying(call)


def read_secret(path: str | Path, what: str) -> str:
    """The stripped contents of a secret file; :class:`CredentialsError` names the file and what it
    should hold (never its contents) when it is missing, empty, too large or not text."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"cannot read {what} from {file}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise CredentialsError(f"{what} file {file} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CredentialsError(f"{what} file {file} is not UTF-8 text") from None
    if not text:
        raise CredentialsError(f"{what} file {file} is empty")
    return text
