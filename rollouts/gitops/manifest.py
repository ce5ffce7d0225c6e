"""The canary revision: the container images of the canary workload manifest.

Flux's image automation rewrites these lines (``image: podinfo:0.2.1 # {"$imagepolicy": ...}``); we
only read them. Every container and init container of every workload document counts.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from rollouts.routes.base import RouteError


class ManifestError(RouteError):
    """A canary manifest that cannot be read; the message names the file."""


def canary_images(text: str, source: str) -> dict[str, str]:
    """``{container name: image}`` for every container and init container in ``text``."""
    try:
        documents = [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]
    except YAMLError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise ManifestError(f"{source}: malformed YAML: {detail}") from None
    images: dict[str, str] = {}
    for doc in documents:
        for pod in _pod_specs(doc):
            # Containers first: the first one is the application, its tag names the revision.
            for key in ("containers", "initContainers"):
                for container in pod.get(key) or []:
                    if isinstance(container, dict) and isinstance(container.get("image"), str):
                        name = str(container.get("name") or f"{key}[{len(images)}]")
                        images[name] = container["image"]
    if not images:
        raise ManifestError(f"{source}: no container images found (expected a workload with containers)")
    return images


def _pod_specs(doc: Any) -> list[dict[str, Any]]:
    """Pod specs of Deployment/StatefulSet/DaemonSet/ReplicaSet (template), Job, CronJob, Pod."""
    if not isinstance(doc, dict):
        return []
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return []
    if doc.get("kind") == "Pod":
        return [spec]
    if doc.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") if isinstance(spec, dict) else None
    pod = template.get("spec") if isinstance(template, dict) else None
    return [pod] if isinstance(pod, dict) else []


def image_tag(image: str) -> str:
    """The tag (or digest) of an image reference: ``ghcr.io/x/podinfo:0.2.0`` -> ``0.2.0``."""
    if "@" in image:
        return image.rsplit("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def revision_of(images: dict[str, str]) -> str:
    """The canary revision for the ``Rollout-Revision`` trailer: the tag of the first container (the
    application). New-revision detection compares all images, init containers and sidecars too."""
    return image_tag(next(iter(images.values())))
