"""What to run: a validated plan shared by the CLI, the worker processes and ``loadtest serve``.

Pure data and validation: no gevent, no Locust, so it can be checked (and tested) anywhere.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")
HEADER = re.compile(r"^([\w-]+):\s*(.+)$")  # hey's header syntax
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# The built-in podinfo profile: its usual read endpoints, weighted; one slow call in twenty.
PODINFO_PROFILE: tuple[tuple[str, int], ...] = (
    ("/version", 5),
    ("/api/info", 5),
    ("/healthz", 4),
    ("/readyz", 4),
    ("/delay/1", 1),
    ("/", 1),
)
PROFILES = {"podinfo": PODINFO_PROFILE}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``10s``, ``3m``, ``1h30m``, ``500ms``) or plain seconds (``90``)."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    position, total = 0, 0.0
    for match in _GO_DURATION.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT[match.group(2)]
        position = match.end()
    if position != len(value) or not value:
        raise ValueError(f"invalid duration {text!r} (examples: 10s, 3m, 1h30m, 500ms)")
    return total


def parse_header(text: str) -> tuple[str, str]:
    """``Name: value`` → (name, value), with hey's syntax and its error message."""
    match = HEADER.match(text)
    if match is None or any(c in text for c in "\r\n\0"):
        raise ValueError(f"could not parse the provided input; input = {text}")
    return match.group(1), match.group(2).strip()


def validate_method(value: str) -> str:
    """The HTTP method in upper case; ``ValueError`` naming it when it is not one of ``METHODS``."""
    method = value.upper()
    if method not in METHODS:
        raise ValueError(f"method {value!r} is not one of {', '.join(METHODS)}")
    return method


def validate_url(url: str) -> str:
    """The URL itself when it is an absolute http(s) URL with a host and a valid port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid URL {url!r}: expected http://host[:port]/path or https://...")
    if port == 0 or any(c.isspace() for c in url):
        raise ValueError(f"invalid URL {url!r}")
    return url


class RunPlan(BaseModel):
    """A load run. Defaults are hey's: 200 requests by 50 workers, 20 s timeout, keep-alive on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: bytes = b""
    requests: int | None = Field(default=200, description="-n: total requests (None: until duration)")
    concurrency: int = Field(default=50, description="-c: workers (Locust users)")
    qps: float = Field(default=0.0, description="-q: rate limit per worker (hey), 0 = none")
    duration: float | None = Field(default=None, description="-z: seconds; stops the run")
    timeout: float | None = Field(default=20.0, description="-t: seconds per request, None = infinite")
    keepalive: bool = True
    rate: float | None = Field(default=None, description="--rate: open model, requests/s in total")
    profile: Literal["podinfo"] | None = None
    locustfile: str | None = None
    csv: bool = False
    basic_auth: tuple[str, str] | None = None
    host_header: str | None = None
    sessions: float = Field(
        default=0.0, description="--sessions: share of workers that keep the cookies the target sets"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return validate_url(value)

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        return validate_method(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not re.fullmatch(r"[\w-]+", name) or any(c in header_value for c in "\r\n\0"):
                raise ValueError(f"invalid header {name!r}")
        return value

    @field_validator("sessions")
    @classmethod
    def _sessions(cls, value: float) -> float:
        if not 0 <= value <= 1:  # NaN fails too
            raise ValueError(f"--sessions must be a share between 0 and 1 (got {value})")
        return value

    @field_validator("concurrency")
    @classmethod
    def _concurrency(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"-c cannot be smaller than 1 (got {value})")
        if value > 100_000:
            raise ValueError(f"-c is too large (got {value}, at most 100000)")
        return value

    @field_validator("qps")
    @classmethod
    def _qps(cls, value: float) -> float:
        if not 0 <= value < math.inf:  # NaN compares false with everything: it would mean "no limit"
            raise ValueError(f"-q must be a finite number >= 0 (got {value})")
        return value

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < math.inf:
            raise ValueError(f"--rate must be a positive number of requests per second (got {value})")
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < math.inf:
            raise ValueError(f"-z must be a positive, finite duration (got {value})")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value < math.inf:
            raise ValueError(f"-t must be a finite number >= 0 (got {value})")
        return value or None  # hey: 0 means no timeout

    @model_validator(mode="after")
    def _consistent(self) -> RunPlan:
        if self.duration is None:
            if self.requests is None or self.requests < 1:
                raise ValueError(f"-n cannot be smaller than 1 (got {self.requests})")
            if self.locustfile is None and self.requests < self.concurrency:
                raise ValueError(f"-n cannot be less than -c ({self.requests} < {self.concurrency})")
        elif self.requests is not None:
            raise ValueError("-n and -z conflict: give a number of requests or a duration, not both")
        if self.qps and self.rate:
            raise ValueError("-q (closed model, per worker) and --rate (open model, total) conflict")
        if self.profile and self.locustfile:
            raise ValueError("--profile and -f conflict: a locustfile defines its own requests")
        return self

    @property
    def open_model(self) -> bool:
        """True for ``--rate``: sends follow a schedule, latency counts from the intended time."""
        return self.rate is not None

    @property
    def per_user_requests(self) -> int | None:
        """hey's split: every worker sends ``n // c`` requests (the remainder is not sent)."""
        return None if self.requests is None else self.requests // self.concurrency

    def paths(self) -> list[str]:
        """The request paths of one cycle (the URL's own path, or the profile's weighted paths)."""
        if self.profile is None:
            return [""]
        return [path for path, weight in PROFILES[self.profile] for _ in range(weight)]


#: The flag that sets each plan field, for messages about a worker's flags.
FLAG_OF = {
    "url": "URL",
    "requests": "-n",
    "concurrency": "-c",
    "qps": "-q",
    "duration": "-z",
    "method": "-m",
    "timeout": "-t",
    "body": "-d/-D",
    "basic_auth": "-a",
    "host_header": "-host",
    "keepalive": "-disable-keepalive",
    "rate": "--rate",
    "locustfile": "-f",
    "profile": "--profile",
    "csv": "-o",
    "sessions": "--sessions",
}
_SECRET_OR_BULKY = frozenset({"body", "basic_auth"})


def contradictions(claims: dict[str, Any], plan: RunPlan) -> list[str]:
    """Where a worker's own flags (``claims``: plan field -> value, and ``headers``: the headers it
    set) disagree with the master's ``plan``; one phrase per flag, empty when they agree.

    A worker needs only ``--master-host``; flags it is given anyway must say what the master says,
    or the run would not be the one the master reports. Secrets and bodies are never echoed.
    """
    out: list[str] = []
    for field_name, claimed in sorted(claims.items()):
        if field_name == "headers":
            theirs = {k.lower(): v for k, v in plan.headers.items()}
            for name, header_value in sorted(dict(claimed).items()):
                master = theirs.get(name.lower())
                if master != header_value:
                    said = "no such header" if master is None else repr(master)
                    out.append(f"header {name}: {header_value!r} (the master's: {said})")
            continue
        ours = getattr(plan, field_name, None)
        value = tuple(claimed) if field_name == "basic_auth" and claimed is not None else claimed
        if value != ours:
            flag = FLAG_OF.get(field_name, field_name)
            if field_name in _SECRET_OR_BULKY:
                out.append(f"{flag} differs from the master's")
            else:
                out.append(f"{flag} {_shown(field_name, value)} (the master's: {_shown(field_name, ours)})")
    return out


def _shown(field_name: str, value: Any) -> str:
    if field_name == "keepalive":
        return "off" if value is False else "on"
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)
