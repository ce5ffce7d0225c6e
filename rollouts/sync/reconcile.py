"""Reconcile now: after a push, ask whatever applies the repo to fetch it at once, instead of waiting
for its next poll.

Three ways, one small interface (:class:`Reconciler`):

* :class:`FluxAnnotations`: annotate the ``GitRepository`` and ``Kustomization`` with
  ``reconcile.fluxcd.io/requestedAt`` (:mod:`rollouts.kube.flux`), as ``flux reconcile`` does;
* :class:`FluxReceiver`: POST to a notification-controller ``Receiver`` webhook (types ``generic``
  and ``generic-hmac``; the latter signs the body with the Receiver's token in ``X-Signature``, as
  ``flux trigger receiver`` does), for controllers without Kubernetes API access to Flux's objects;
* :class:`LocalMeshReconcile`: the local mesh's admin ``POST /reconcile`` (the same hook on one machine).

A reconcile request is a speed-up, never a gate: every call returns a :class:`ReconcileOutcome` to
log and never raises; the sync gate still waits for the cluster to report our commit. The Receiver's
URL is a secret (its path is the token's digest): it is never logged or put in a message; messages
name the host and ``/hook/***``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from kubernetes import client as k8s
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rollouts.kube.flux import FluxObject, request_reconcile
from rollouts.spec import Rollout
from rollouts.spec_gates import ReceiverSpec

log = logging.getLogger("rollouts.sync")

RECEIVER_TIMEOUT_S = 5.0
RECEIVER_ATTEMPTS = 3
MAX_URL_FILE_BYTES = 4096


class ReconcileConfigError(ValueError):
    """A reconcile setting that cannot be used (a receiver URL file missing or malformed)."""


@dataclass(frozen=True)
class ReconcileOutcome:
    """What a reconcile request did: ``ok``, a line for the log, and how long it took."""

    ok: bool
    detail: str
    seconds: float


class Reconciler(Protocol):
    """Asks the applier (Flux, the local mesh) to fetch and apply the repo now."""

    def reconcile_now(self) -> ReconcileOutcome:
        """Ask once; never raises."""
        ...


class _RetryableError(Exception):
    """A transient answer (connection error, 429, 5xx): worth one more try."""


class FluxAnnotations:
    """Annotate Flux's objects through the Kubernetes API."""

    def __init__(self, api: k8s.ApiClient, objects: Sequence[FluxObject]) -> None:
        self._api = api
        self.objects = tuple(objects)

    def reconcile_now(self) -> ReconcileOutcome:
        """One merge patch per object, sources first."""
        start = time.monotonic()
        result = request_reconcile(self._api, self.objects)
        parts = [f"annotated {', '.join(result.annotated)}"] if result.annotated else []
        parts += [f"not annotated: {'; '.join(result.failed)}"] if result.failed else []
        return ReconcileOutcome(
            ok=result.ok,
            detail=f"requestedAt {result.requested_at}: " + "; ".join(parts),
            seconds=time.monotonic() - start,
        )


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/hook/***"


def read_receiver_url(path: str) -> str:
    """The Receiver URL from its file (one line, http or https); errors never quote the file."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_URL_FILE_BYTES:
            raise ReconcileConfigError(
                f"spec.flux.receiver.urlFile: {path} is larger than {MAX_URL_FILE_BYTES} bytes"
            )
        url = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ReconcileConfigError(
            f"spec.flux.receiver.urlFile: cannot read {path}: {exc.strerror}"
        ) from None
    if (
        not url.startswith(("http://", "https://"))
        or any(c.isspace() for c in url)
        or not urlsplit(url).hostname
    ):
        raise ReconcileConfigError(f"spec.flux.receiver.urlFile: {path} must hold one http(s) URL")
    return url


class FluxReceiver:
    """POST to a notification-controller Receiver (``generic`` or ``generic-hmac``)."""

    def __init__(
        self,
        url: str,
        *,
        kind: str = "generic",
        token: str | None = None,
        timeout: float = RECEIVER_TIMEOUT_S,
        attempts: int = RECEIVER_ATTEMPTS,
        backoff: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        if kind == "generic-hmac" and not token:
            raise ReconcileConfigError("a generic-hmac Receiver needs its token")
        self._url = url
        self._kind = kind
        self._token = token
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._session = session or requests.Session()
        self.where = _redacted(url)

    def __repr__(self) -> str:  # never the URL
        return f"FluxReceiver({self.where}, kind={self._kind})"

    @classmethod
    def from_spec(cls, spec: ReceiverSpec) -> FluxReceiver:
        """The Receiver of ``spec.flux.receiver`` (URL and token read from their files)."""
        from rollouts.gitops.credentials import Credentials
        from rollouts.gitops.errors import CredentialError

        try:  # the token is read as the Git token is
            names = {"tokenFile": "spec.flux.receiver.tokenFile"}
            token = Credentials.resolve(token_file=spec.token_file, names=names, env={}).token
        except CredentialError as exc:
            raise ReconcileConfigError(str(exc)) from None
        return cls(read_receiver_url(spec.url_file), kind=spec.type, token=token)

    def _post(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            answer = self._session.post(self._url, data=body, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            raise _RetryableError(f"no answer in {self.timeout:g}s") from None
        except requests.RequestException as exc:
            raise _RetryableError(type(exc).__name__) from None
        answer.close()
        if answer.status_code == 429 or answer.status_code >= 500:
            raise _RetryableError(f"HTTP {answer.status_code}")
        return answer.status_code

    def reconcile_now(self) -> ReconcileOutcome:
        """POST ``{}`` (signed for ``generic-hmac``); retried on connection errors, 429 and 5xx."""
        start = time.monotonic()
        body = json.dumps({"source": "gitops-rollouts"}).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "gitops-rollouts"}
        if self._kind == "generic-hmac" and self._token:
            digest = hmac.new(self._token.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Signature"] = f"sha256={digest}"
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=self.backoff, max=5 * self.backoff),
                retry=retry_if_exception_type(_RetryableError),
                reraise=True,
            ):
                with attempt:
                    status = self._post(body, headers)
        except _RetryableError as exc:
            return ReconcileOutcome(
                False,
                f"Receiver {self.where}: {exc} after {self.attempts} attempts",
                time.monotonic() - start,
            )
        ok = 200 <= status < 300
        detail = f"Receiver {self.where}: HTTP {status}" + ("" if ok else " (is the Receiver's path right?)")
        return ReconcileOutcome(ok, detail, time.monotonic() - start)


class LocalMeshReconcile:
    """The local mesh's admin ``POST /reconcile``: poll the remote now."""

    def __init__(self, admin_url: str, *, timeout: float = 2.0) -> None:
        self.url = admin_url.rstrip("/") + "/reconcile"
        self.timeout = timeout

    def reconcile_now(self) -> ReconcileOutcome:
        """One POST; the mesh answers once it has polled."""
        start = time.monotonic()
        try:
            answer = requests.post(self.url, timeout=self.timeout)
        except requests.RequestException as exc:
            return ReconcileOutcome(
                False, f"local mesh {self.url}: {type(exc).__name__}", time.monotonic() - start
            )
        return ReconcileOutcome(answer.ok, f"local mesh: HTTP {answer.status_code}", time.monotonic() - start)


def flux_objects(rollout: Rollout, default_kustomization: tuple[str, str] | None = None) -> list[FluxObject]:
    """The objects to annotate for ``rollout``: its GitRepository, then its Kustomization (the
    spec's, else ``default_kustomization``, the controller's ``--flux-kustomization``)."""
    flux = rollout.spec.flux
    objects = []
    if flux.git_repository is not None:
        objects.append(FluxObject("GitRepository", flux.git_repository.namespace, flux.git_repository.name))
    kustomization = watched_kustomization(rollout, default_kustomization)
    if kustomization is not None:
        objects.append(FluxObject("Kustomization", *kustomization))
    return objects


def watched_kustomization(rollout: Rollout, default: tuple[str, str] | None = None) -> tuple[str, str] | None:
    """``(namespace, name)`` of the Kustomization the sync gate watches for ``rollout``: the spec's
    ``flux.kustomization``, else the process default."""
    k = rollout.spec.flux.kustomization
    return (k.namespace, k.name) if k is not None else default


def reconciler_for(
    rollout: Rollout,
    *,
    api: k8s.ApiClient | None = None,
    default_kustomization: tuple[str, str] | None = None,
    local_mesh: str | None = None,
    receiver: Callable[[ReceiverSpec], Reconciler] = FluxReceiver.from_spec,
) -> Reconciler | None:
    """The reconciler ``rollout`` asks for (``spec.flux.reconcile``), or None: ``none``, or
    ``annotate`` with neither a Kubernetes API nor an object to annotate. On the local stack
    (``local_mesh``: its admin URL) the mesh's own hook stands in for Flux."""
    mode = rollout.spec.flux.reconcile
    if mode == "none":
        return None
    if local_mesh is not None:
        return LocalMeshReconcile(local_mesh)
    if mode == "receiver":
        assert rollout.spec.flux.receiver is not None  # the spec's validator guarantees it
        return receiver(rollout.spec.flux.receiver)
    objects = flux_objects(rollout, default_kustomization)
    if api is None or not objects:
        return None
    return FluxAnnotations(api, objects)


class ReconcilingWorkspace:
    """A workspace that asks ``reconciler`` to reconcile right after each commit it pushed.

    Every method of the wrapped workspace is available as it is; a call whose result says it
    ``changed`` the remote (a pushed commit) is followed by one reconcile request, whose outcome is
    logged (a failed request never fails the commit: it only means waiting for Flux's own poll).
    """

    def __init__(self, inner: Any, reconciler: Reconciler, *, key: str = "") -> None:
        self._inner = inner
        self.reconciler = reconciler
        self._key = key
        self.last: ReconcileOutcome | None = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if getattr(result, "changed", False) is True:
                self.last = self.reconciler.reconcile_now()
                level = logging.INFO if self.last.ok else logging.WARNING
                log.log(
                    level, "%s: reconcile now: %s (%.3fs)", self._key, self.last.detail, self.last.seconds
                )
            return result

        return call

    def __enter__(self) -> ReconcilingWorkspace:
        return self

    def __exit__(self, *exc: object) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()
