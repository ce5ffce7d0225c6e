"""Ask Flux to reconcile now: set ``reconcile.fluxcd.io/requestedAt`` as ``flux reconcile`` does.

Flux polls its ``GitRepository`` every ``interval`` (often a minute or more) and applies a
``Kustomization`` after that; a step of ours would wait for that poll before its analysis can start.
Flux's controllers watch for a change of the annotation ``reconcile.fluxcd.io/requestedAt``
(fluxcd/pkg ``apis/meta``: ``ReconcileRequestAnnotation``) and reconcile at once when it changes.
``flux reconcile`` sets it to the current time (RFC 3339 with nanoseconds) with a JSON merge patch of
``metadata.annotations``; so do we, source first, then the Kustomization.

Thin by design: one merge patch per object through the official client, with its own ``ApiClient``.
It never changes anything but that one annotation, and never raises for an object that is missing
or forbidden: the caller gets a result to log (a reconcile request is a speed-up, not a gate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

ANNOTATION = "reconcile.fluxcd.io/requestedAt"


@dataclass(frozen=True)
class FluxObject:
    """A Flux object to annotate: its API group, version, plural and where it lives."""

    kind: str
    namespace: str
    name: str

    @property
    def api(self) -> tuple[str, str, str]:
        """``(group, version, plural)`` of the kind."""
        return _KINDS[self.kind]

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


_KINDS = {
    "GitRepository": ("source.toolkit.fluxcd.io", "v1", "gitrepositories"),
    "OCIRepository": ("source.toolkit.fluxcd.io", "v1beta2", "ocirepositories"),
    "Bucket": ("source.toolkit.fluxcd.io", "v1", "buckets"),
    "Kustomization": ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
}


@dataclass(frozen=True)
class ReconcileRequest:
    """What one request did: the objects annotated and, per object that could not be, why."""

    requested_at: str
    annotated: tuple[str, ...]
    failed: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every object was annotated."""
        return not self.failed


def timestamp(now: datetime | None = None) -> str:
    """The annotation's value: the time in RFC 3339 with nanoseconds, as Go's ``time.RFC3339Nano``."""
    now = now or datetime.now(UTC)
    text = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return f"{text}Z"


def request_reconcile(
    api: k8s.ApiClient,
    objects: Sequence[FluxObject],
    *,
    clock: Callable[[], datetime] | None = None,
) -> ReconcileRequest:
    """Annotate each of ``objects`` (in order: sources before the Kustomizations that use them)."""
    stamp = timestamp(clock() if clock else None)
    custom = k8s.CustomObjectsApi(api)
    body = {"metadata": {"annotations": {ANNOTATION: stamp}}}
    annotated: list[str] = []
    failed: list[str] = []
    for obj in objects:
        group, version, plural = obj.api
        try:
            custom.patch_namespaced_custom_object(group, version, obj.namespace, plural, obj.name, body)
        except ApiException as exc:
            failed.append(f"{obj}: Kubernetes API {exc.status} {exc.reason}")
            continue
        except HTTPError as exc:
            failed.append(f"{obj}: Kubernetes API unreachable: {exc}")
            continue
        annotated.append(str(obj))
    return ReconcileRequest(requested_at=stamp, annotated=tuple(annotated), failed=tuple(failed))
