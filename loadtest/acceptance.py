"""Acceptance jobs: a bounded set of requests with the status codes each must answer, run by
``loadtest serve`` for a Flagger ``pre-rollout`` webhook (``POST /hooks/acceptance``).

Flagger's loadtester runs acceptance tests as shell commands (``curl ... | grep``) sent in the
webhook's metadata. Here nothing from a request reaches a shell: the jobs are declared in a file
given at start-up (``loadtest serve --acceptance FILE``), validated then (fields, limits, every URL
against the server's allowlist), and a webhook call only names which job to run
(``metadata.job``, or the only one). A job is a list of checks, each a method, a URL, headers, an
optional body and the expected status codes, repeated ``repeat`` times; it runs one request at a time,
without following redirects, and stops at its ``deadline``.

```yaml
jobs:
  smoke:
    deadline: 30          # seconds for the whole job
    checks:
    - {name: info, url: "http://podinfo-canary.test:9898/api/info", expect: [200]}
    - {name: not-found, url: "http://podinfo-canary.test:9898/missing", expect: [404], repeat: 5}
```

The answer's first line says what failed (a Flagger-style webhook caller quotes it), the rest is
the JSON detail. Bounded: at most 100 checks and 1,000 requests a job, 1 MiB read per answer, one
run of a job at a time (429 while it runs).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from loadtest.allow import check_header, check_target
from loadtest.options import validate_method

MAX_FILE_BYTES = 256 * 1024
MAX_REQUESTS = 1000
MAX_ANSWER_BYTES = 1 << 20


class AcceptanceError(ValueError):
    """An acceptance file that cannot be used; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Check(_Model):
    """One request and the status codes it must answer."""

    name: str | None = None
    method: str = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    expect: list[int] = Field(default_factory=lambda: [200], min_length=1, max_length=20)
    repeat: int = Field(default=1, ge=1, le=100)
    timeout: float = Field(default=5.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_target(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            check_header(name, value)  # the same rules as a job's headers (loadtest/allow.py)
        return headers

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        return validate_method(value)

    @field_validator("expect")
    @classmethod
    def _codes(cls, codes: list[int]) -> list[int]:
        for code in codes:
            if not 100 <= code <= 599:
                raise ValueError(f"status codes are 100-599, got {code}")
        return codes

    @property
    def label(self) -> str:
        """The check's name, else ``METHOD URL``."""
        return self.name or f"{self.method} {self.url}"


class Job(_Model):
    """Checks run in order, one request at a time, within ``deadline`` seconds."""

    checks: list[Check] = Field(min_length=1, max_length=100)
    deadline: float = Field(default=60.0, gt=0, le=600)

    @model_validator(mode="after")
    def _bounded(self) -> Job:
        total = sum(check.repeat for check in self.checks)
        if total > MAX_REQUESTS:
            raise ValueError(f"a job sends at most {MAX_REQUESTS} requests, this one {total}")
        return self


class AcceptanceFile(_Model):
    """The file of ``loadtest serve --acceptance``."""

    jobs: dict[str, Job] = Field(min_length=1, max_length=50)


def load(path: Path, refusal: Callable[[str, dict[str, str]], str | None]) -> dict[str, Job]:
    """The jobs of ``path``; every URL and its headers must pass ``refusal`` (the server's
    allowlist: None, or why not)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise AcceptanceError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AcceptanceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise AcceptanceError(f"{path}: malformed YAML: {detail}") from None
    try:
        parsed = AcceptanceFile.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}" for e in exc.errors()
        ]
        raise AcceptanceError("\n".join(lines)) from None
    for name, job in parsed.jobs.items():
        for i, check in enumerate(job.checks):
            why = refusal(check.url, check.headers)
            if why is not None:
                raise AcceptanceError(f"{path}: jobs.{name}.checks.{i}.url: {why}")
    return dict(parsed.jobs)


@dataclass(frozen=True)
class CheckResult:
    """One request of a check: the status (None without an answer), whether it was expected, why not."""

    check: str
    attempt: int
    status: int | None
    ok: bool
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class JobResult:
    """A job's run: ``passed`` when every request answered an expected status within the deadline."""

    job: str
    passed: bool
    requests: int
    failed: int
    seconds: float
    results: tuple[CheckResult, ...] = field(default_factory=tuple)
    summary: str = ""

    def text(self) -> str:
        """The answer's body: the summary line, then the JSON detail."""
        return self.summary + "\n" + json.dumps(asdict(self), sort_keys=True) + "\n"


def _one(session: requests.Session, check: Check, attempt: int, remaining: float) -> CheckResult:
    start = time.monotonic()
    try:
        with session.request(
            check.method,
            check.url,
            headers=check.headers,
            data=check.body.encode() if check.body is not None else None,
            timeout=min(check.timeout, max(remaining, 0.001)),
            allow_redirects=False,
            stream=True,
        ) as answer:
            read = 0
            for chunk in answer.iter_content(65536):
                read += len(chunk)
                if read >= MAX_ANSWER_BYTES:
                    break
            status = answer.status_code
    except requests.Timeout:
        return CheckResult(check.label, attempt, None, False, time.monotonic() - start, "timed out")
    except requests.RequestException as exc:
        return CheckResult(check.label, attempt, None, False, time.monotonic() - start, type(exc).__name__)
    ok = status in check.expect
    error = None if ok else f"answered {status}, expected {' or '.join(map(str, check.expect))}"
    return CheckResult(check.label, attempt, status, ok, time.monotonic() - start, error)


def run(name: str, job: Job, *, session: requests.Session | None = None) -> JobResult:
    """Run ``job``'s checks in order within its deadline."""
    session = session or requests.Session()
    start = time.monotonic()
    results: list[CheckResult] = []
    not_run = 0
    for check in job.checks:
        for attempt in range(1, check.repeat + 1):
            remaining = job.deadline - (time.monotonic() - start)
            if remaining <= 0:
                not_run += 1
                continue
            results.append(_one(session, check, attempt, remaining))
    failed = [r for r in results if not r.ok]
    total = len(results) + not_run
    passed = not failed and not not_run
    if passed:
        summary = f"acceptance {name}: passed ({total} requests)"
    else:
        first = failed[0] if failed else None
        parts = [f"{len(failed)} of {total} requests failed"] if failed else []
        if first is not None:
            parts.append(f"first: {first.check}: {first.error}")
        if not_run:
            parts.append(f"{not_run} not sent: deadline of {job.deadline:g}s reached")
        summary = f"acceptance {name}: failed: " + "; ".join(parts)
    return JobResult(
        job=name,
        passed=passed,
        requests=total,
        failed=len(failed) + not_run,
        seconds=time.monotonic() - start,
        results=tuple(results),
        summary=summary,
    )


@dataclass
class Runner:
    """The configured jobs, at most one run of each at a time."""

    jobs: Mapping[str, Job]
    _busy: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, raw: bytes) -> tuple[int, str]:
        """The hook: Flagger's payload in, ``(status, text)`` out (200 passed, 500 failed, 4xx bad call)."""
        try:
            payload: Any = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return 400, "body must be Flagger's webhook payload (JSON)\n"
        metadata = payload.get("metadata") if isinstance(payload, dict) else None
        metadata = metadata if isinstance(metadata, dict) else {}
        name = metadata.get("job")
        if name is None:
            if len(self.jobs) != 1:
                return 400, f"name the job in metadata.job (one of {', '.join(sorted(self.jobs))})\n"
            name = next(iter(self.jobs))
        job = self.jobs.get(name) if isinstance(name, str) else None
        if job is None:
            return 404, f"no acceptance job {name!r} (configured: {', '.join(sorted(self.jobs))})\n"
        with self._lock:
            if name in self._busy:
                return 429, f"acceptance {name}: already running\n"
            self._busy.add(name)
        try:
            result = run(name, job)
        finally:
            with self._lock:
                self._busy.discard(name)
        return (200 if result.passed else 500), result.text()
