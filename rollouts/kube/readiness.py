"""Is a Deployment fully rolled out? The same rule ``kubectl rollout status`` applies."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client as k8s


@dataclass(frozen=True)
class Readiness:
    """A Deployment's rollout state; ``reason`` says in words why it is not ready."""

    ready: bool
    reason: str
    desired: int
    updated: int
    ready_replicas: int
    available: int
    generation: int
    observed_generation: int


def readiness_of(deployment: k8s.V1Deployment) -> Readiness:
    """Readiness of a Deployment object (pure: no API call).

    Ready means: the controller has seen the current spec (``observedGeneration >= generation``),
    every desired replica runs the current template (updated == ready == available == desired) and
    no old replica is left over. A Deployment scaled to zero is ready when nothing runs.
    """
    meta, spec, status = deployment.metadata, deployment.spec, deployment.status
    desired = spec.replicas if spec is not None and spec.replicas is not None else 1
    generation = int(meta.generation or 0) if meta is not None else 0
    observed = int(status.observed_generation or 0) if status is not None else 0
    total = int(status.replicas or 0) if status is not None else 0
    updated = int(status.updated_replicas or 0) if status is not None else 0
    ready = int(status.ready_replicas or 0) if status is not None else 0
    available = int(status.available_replicas or 0) if status is not None else 0

    reason = ""
    if observed < generation:
        reason = f"spec generation {generation} not yet observed (observed {observed})"
    elif updated < desired:
        reason = f"{updated} of {desired} replicas updated"
    elif total > updated:
        reason = f"{total - updated} old replicas pending termination"
    elif ready < desired:
        reason = f"{ready} of {desired} replicas ready"
    elif available < desired:
        reason = f"{available} of {desired} replicas available"
    return Readiness(
        ready=not reason,
        reason=reason or f"{ready} of {desired} replicas ready",
        desired=desired,
        updated=updated,
        ready_replicas=ready,
        available=available,
        generation=generation,
        observed_generation=observed,
    )


def deployment_readiness(api: k8s.ApiClient, namespace: str, name: str) -> Readiness:
    """GET ``apps/v1`` Deployment ``namespace/name`` and say whether it is ready."""
    deployment = k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    return readiness_of(deployment)
