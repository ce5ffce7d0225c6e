"""Building an ``ApiClient``: in-cluster service account or a kubeconfig file."""

from __future__ import annotations

import os
from dataclasses import dataclass

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from rollouts.kube.errors import (
    KubeConfigError,
)


@dataclass(frozen=True)
class ObjectRef:
    """A namespaced object: enough to address it and to name it in messages and Events."""

    kind: str
    namespace: str
    name: str
    api_version: str = "v1"
    uid: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def api_client(kubeconfig: str | None = None, context: str | None = None) -> k8s.ApiClient:
    """An ``ApiClient`` of its own (the global default configuration is never touched).

    With ``kubeconfig`` (or ``$KUBECONFIG``) that file is used; otherwise the in-cluster service
    account when running in a pod, else ``~/.kube/config``.
    """
    configuration = k8s.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=configuration, persist_config=False
            )
    except (ConfigException, OSError) as exc:
        where = path or "in-cluster service account / ~/.kube/config"
        raise KubeConfigError(f"cannot load Kubernetes configuration from {where}: {exc}") from exc
    return k8s.ApiClient(configuration=configuration)


# The errors are defined in errors.py and raised here: importable from here too.
__all__ = ["KubeConfigError", "ObjectRef", "api_client"]
