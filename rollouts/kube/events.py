"""Kubernetes Events on the rollout's target, so ``kubectl describe`` tells the rollout's story."""

from __future__ import annotations

import datetime as dt
import uuid

from kubernetes import client as k8s

from rollouts.kube.client import ObjectRef

COMPONENT = "gitops-rollouts"


class EventRecorder:
    """Creates ``core/v1`` Events about one involved object (e.g. the canary Deployment)."""

    def __init__(self, api: k8s.ApiClient, *, component: str = COMPONENT, host: str | None = None) -> None:
        self._core = k8s.CoreV1Api(api)
        self._component = component
        self._host = host

    def emit(self, target: ObjectRef, reason: str, message: str, *, warning: bool = False) -> k8s.CoreV1Event:
        """Create one Event; ``reason`` is CamelCase (``Promoted``, ``RolledBack``, ...)."""
        now = dt.datetime.now(dt.UTC)
        # Event names must be unique; kubectl and client-go use "<object>.<hex>".
        name = f"{target.name}.{uuid.uuid4().hex[:16]}"
        body = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(name=name, namespace=target.namespace),
            involved_object=k8s.V1ObjectReference(
                kind=target.kind,
                namespace=target.namespace,
                name=target.name,
                api_version=target.api_version,
                uid=target.uid,
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            source=k8s.V1EventSource(component=self._component, host=self._host),
            reporting_component=self._component,
            reporting_instance=self._host or self._component,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        event: k8s.CoreV1Event = self._core.create_namespaced_event(target.namespace, body)
        return event
