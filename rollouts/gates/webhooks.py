"""Flagger-compatible webhooks: the same hook types, the same JSON payload, the same reading of answers.

A team's existing Flagger webhooks and ``flagger-loadtester`` endpoints (``/gate/check``,
``/rollback/check``, ``/``) keep working: each hook of ``spec.webhooks`` is POSTed Flagger's
``CanaryWebhookPayload`` (``name``, ``namespace``, ``phase``, ``checksum``, ``metadata``) with
``Content-Type: application/json``, and an answer is a pass exactly when Flagger counts it one: a
status of 200, 201 or 202 (Flagger's ``callWebhook`` fails anything above 202). Timeouts default to
10 s per call; ``retries`` repeat a call on connection errors, timeouts, 429 and 5xx (except 501), with
exponential backoff, as Flagger's retryable HTTP client does.

What a failure means depends on the type (Flagger's ``scheduler_hooks.go``); :func:`decide` is that
table, pure:

- ``confirm-rollout``, ``confirm-traffic-increase``, ``confirm-promotion``: **wait** (the rollout
  holds at its current weights and asks again next interval);
- ``pre-rollout``, ``rollout``: **fail**, a failed check; :class:`FailedChecks` counts them and the
  rollout is rolled back once they reach the threshold (Flagger's ``analysis.threshold``);
- ``rollback``: a *pass* asks for a **rollback** (Flagger's manual rollback gate);
- ``post-rollout``, ``event``: informational; a failure is logged, never changes the rollout.

Hooks of one type run in spec order; a gate stops at its first hook that holds or fails, as Flagger's.
Every failure has a reason a person can act on: the hook's name and type, and "no answer in 10s",
"refused the connection", "answered with something that is not HTTP", or "HTTP 403: <first line of
the body>". URLs in reasons lose their query string and any userinfo (they may carry tokens).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rollouts.spec_gates import WebhookSpec

# Flagger's CanaryPhase values that a payload can carry (pkg/apis/flagger/v1beta1/status.go).
Phase = Literal[
    "Initializing", "Initialized", "Waiting", "Progressing", "WaitingPromotion", "Promoting", "Finalising",
    "Succeeded", "Failed",
]  # fmt: skip
Outcome = Literal["pass", "wait", "fail", "rollback"]
MAX_BODY_BYTES = 64 * 1024  # of an answer we read; the reason quotes at most one short line of it
MAX_REASON_CHARS = 200
_GATES = {"confirm-rollout", "confirm-traffic-increase", "confirm-promotion"}
_CHECKS = {"pre-rollout", "rollout"}


@dataclass(frozen=True)
class Payload:
    """Flagger's ``CanaryWebhookPayload``."""

    name: str
    namespace: str
    phase: Phase
    checksum: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """The JSON body, keys as Flagger writes them (``metadata`` omitted when empty)."""
        body: dict[str, object] = {
            "name": self.name,
            "namespace": self.namespace,
            "phase": self.phase,
            "checksum": self.checksum,
        }
        if self.metadata:
            body["metadata"] = dict(self.metadata)
        return json.dumps(body).encode()


def checksum(rollout_key: str, revision: str) -> str:
    """Identifies one rollout of one revision (Flagger hashes the canary's tracked configs and last
    applied spec; ours is the rollout and its canary revision)."""
    return hashlib.sha256(f"{rollout_key}\0{revision}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class HookResult:
    """One webhook call: ``ok`` as Flagger reads it, the status (None without an HTTP answer), why."""

    name: str
    type: str
    ok: bool
    status: int | None
    reason: str
    attempts: int
    seconds: float


@dataclass(frozen=True)
class GateDecision:
    """What the hooks of one type say: ``outcome`` and one reason per hook that did not pass."""

    type: str
    outcome: Outcome
    reasons: tuple[str, ...] = ()
    results: tuple[HookResult, ...] = ()

    @property
    def waiting_for(self) -> str | None:
        """For a ``wait``: the hook being waited for (status, notifications)."""
        return self.results[-1].name if self.outcome == "wait" and self.results else None


def decide(hook_type: str, results: Sequence[HookResult]) -> GateDecision:
    """The table of the module docstring: what ``results`` (hooks of ``hook_type``, in order) mean."""
    failed = [r for r in results if not r.ok]
    reasons = tuple(f"webhook {r.name} ({r.type}): {r.reason}" for r in failed)
    if hook_type == "rollback":
        asked = [r for r in results if r.ok]
        if asked:
            return GateDecision(
                hook_type,
                "rollback",
                (f"webhook {asked[0].name} (rollback) asked for a rollback",),
                tuple(results),
            )
        return GateDecision(hook_type, "pass", (), tuple(results))
    if not failed:
        return GateDecision(hook_type, "pass", (), tuple(results))
    if hook_type in _GATES:
        return GateDecision(hook_type, "wait", reasons, tuple(results))
    if hook_type in _CHECKS:
        return GateDecision(hook_type, "fail", reasons, tuple(results))
    return GateDecision(hook_type, "pass", reasons, tuple(results))  # post-rollout, event: logged only


@dataclass(frozen=True)
class FailedChecks:
    """Failed ``pre-rollout``/``rollout`` checks of one step, as Flagger's ``status.failedChecks``."""

    count: int = 0

    def after(self, decision: GateDecision) -> FailedChecks:
        """The count after ``decision`` (a pass does not reset it, as in Flagger)."""
        return FailedChecks(self.count + 1) if decision.outcome == "fail" else self

    def exhausted(self, threshold: int) -> bool:
        """True when the checks failed ``threshold`` times: roll back."""
        return self.count >= threshold


class _RetryableError(Exception):
    """A transient failure: retried while attempts remain."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def shown_url(url: str) -> str:
    """``url`` without userinfo, query and fragment (they may carry tokens)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def _first_line(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    printable = "".join(c if c.isprintable() else "?" for c in line)
    return printable[:MAX_REASON_CHARS] + ("..." if len(printable) > MAX_REASON_CHARS else "")


def _read_bounded(answer: requests.Response) -> bytes:
    chunks, size = [], 0
    for chunk in answer.iter_content(8192):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES:
            break
    return b"".join(chunks)[:MAX_BODY_BYTES]


def _attempt(session: requests.Session, hook: WebhookSpec, body: bytes) -> tuple[int, bytes]:
    try:
        with session.post(
            hook.url,
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=hook.timeout,
            stream=True,
        ) as answer:
            raw = _read_bounded(answer)
            status = answer.status_code
    except requests.Timeout:
        raise _RetryableError(f"no answer in {hook.timeout:g}s") from None
    except requests.ConnectionError as exc:
        text = str(exc)
        if "BadStatusLine" in text or "RemoteDisconnected" in text or "InvalidChunkLength" in text:
            raise _RetryableError(
                "answered with something that is not HTTP (or closed the connection)"
            ) from None
        if "Connection refused" in text or "Errno 111" in text:
            raise _RetryableError("refused the connection") from None
        raise _RetryableError(f"unreachable ({type(exc).__name__})") from None
    except requests.RequestException as exc:
        raise _RetryableError(f"request failed ({type(exc).__name__})") from None
    if status == 429 or (status >= 500 and status != 501):
        raise _RetryableError(_status_reason(status, raw), status)
    return status, raw


def _status_reason(status: int, raw: bytes) -> str:
    line = _first_line(raw)
    return f"HTTP {status}" + (f": {line}" if line else "")


def call(
    hook: WebhookSpec,
    payload: Payload,
    *,
    session: requests.Session | None = None,
    backoff: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> HookResult:
    """POST ``payload`` (with the hook's ``metadata``) to the hook; never raises."""
    merged = Payload(
        payload.name,
        payload.namespace,
        payload.phase,
        payload.checksum,
        {**payload.metadata, **hook.metadata},
    )
    body = merged.to_json()
    session = session or requests.Session()
    start, attempts = clock(), 0
    try:
        for attempt in Retrying(
            stop=stop_after_attempt(hook.retries + 1),
            wait=wait_exponential(multiplier=backoff, max=30 * backoff),
            retry=retry_if_exception_type(_RetryableError),
            reraise=True,
        ):
            with attempt:
                attempts += 1
                status, raw = _attempt(session, hook, body)
    except _RetryableError as exc:
        more = f" (after {attempts} attempts)" if attempts > 1 else ""
        return HookResult(
            hook.name, hook.type, False, exc.status, exc.reason + more, attempts, clock() - start
        )
    ok = 200 <= status <= 202
    reason = "passed" if ok else _status_reason(status, raw)
    return HookResult(hook.name, hook.type, ok, status, reason, attempts, clock() - start)


class Webhooks:
    """The webhooks of one rollout; :meth:`run` calls the hooks of one type and decides."""

    def __init__(
        self, hooks: Sequence[WebhookSpec], *, session: requests.Session | None = None, backoff: float = 1.0
    ) -> None:
        self.hooks = tuple(hooks)
        self._session = session or requests.Session()
        self.backoff = backoff

    def of(self, hook_type: str) -> tuple[WebhookSpec, ...]:
        """The hooks of ``hook_type``, in spec order."""
        return tuple(h for h in self.hooks if h.type == hook_type)

    def run(self, hook_type: str, payload: Payload) -> GateDecision:
        """Call the hooks of ``hook_type`` in order; gates and checks stop at the first that does not
        pass, a rollback hook at the first that does (as Flagger)."""
        results: list[HookResult] = []
        for hook in self.of(hook_type):
            result = call(hook, payload, session=self._session, backoff=self.backoff)
            results.append(result)
            if (hook_type == "rollback") == result.ok and hook_type not in {"post-rollout", "event"}:
                break
        return decide(hook_type, results)

    def event(self, payload: Payload, message: str, event_type: str = "Normal") -> GateDecision:
        """Flagger's event hook: ``metadata`` gains ``eventMessage``, ``eventType`` and ``timestamp``
        (milliseconds), which a hook's own metadata does not override."""
        stamp = str(int(time.time() * 1000))
        results = []
        for hook in self.of("event"):
            fixed = {"eventMessage": message, "eventType": event_type, "timestamp": stamp}
            merged = hook.model_copy(update={"metadata": {**hook.metadata, **fixed}})
            results.append(call(merged, payload, session=self._session, backoff=self.backoff))
        return decide("event", results)
