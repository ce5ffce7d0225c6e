"""The canary revision: the container images of the canary workload manifest.

Flux's image automation rewrites these lines (``image: podinfo:0.2.1 # {"$imagepolicy": ...}``); we
read the canary's, and ``finalize: promote-ga`` copies them into the GA manifest
(:func:`copy_images`). Every container and init container of every workload document counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from rollouts.gitops.errors import ManifestError
from rollouts.routes._engine import get, get_str, items, splice
from rollouts.yamlsafe import MANIFEST, YamlLimitError, compose_all, load_all

# Image references that YAML reads back as the same plain string.
_PLAIN_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")


def canary_images(text: str, source: str) -> dict[str, str]:
    """``{container name: image}`` for every container and init container in ``text``."""
    try:
        documents = load_all(text, source, MANIFEST)
    except YamlLimitError as exc:
        raise ManifestError(str(exc)) from None
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


def copy_images(text: str, images: Mapping[str, str], source: str) -> str:
    """``text`` with the image of every container (and init container) named in ``images`` set to
    that image; only the image scalars' characters change, everything else stays byte for byte.

    This is how ``finalize: promote-ga`` gives GA the canary's images. Like the route editors
    (``rollouts.routes._engine``), ruamel locates the scalars and the original text is spliced: a
    load/dump round trip would re-indent and move comments. A ``# {"$imagepolicy": ...}`` marker sits
    after the scalar and is not touched. A quoted image keeps its quotes. Containers of the GA
    manifest that the canary does not name keep their image; a GA manifest with none of the canary's
    containers is an error that names the file.
    """
    try:
        documents = compose_all(text, source, MANIFEST)
    except YamlLimitError as exc:
        raise ManifestError(str(exc)) from None
    edits: list[tuple[int, int, str]] = []
    matched = 0
    for doc in documents:
        for pod in _pod_spec_nodes(doc):
            for key in ("containers", "initContainers"):
                for container in items(get(pod, key)):
                    name = get_str(container, "name")
                    scalar = get(container, "image")
                    if name is None or name not in images or not isinstance(scalar, ScalarNode):
                        continue
                    matched += 1
                    if scalar.value != images[name]:
                        edits.append(
                            (scalar.start_mark.index, scalar.end_mark.index, _literal(images[name], scalar))
                        )
    if not matched:
        names = ", ".join(sorted(images))
        raise ManifestError(f"{source}: no container named {names} to copy the canary's image into")
    return splice(text, edits)


def _literal(image: str, scalar: ScalarNode) -> str:
    """``image`` written in the style of the scalar it replaces."""
    if scalar.style == "'":
        return "'" + image.replace("'", "''") + "'"
    if scalar.style == '"':
        return json.dumps(image)
    if not _PLAIN_IMAGE.match(image):
        return json.dumps(image)  # a plain scalar could not hold it
    return image


def _pod_spec_nodes(doc: Node) -> list[Node]:
    """The pod spec nodes of a workload document (the node-tree twin of :func:`_pod_specs`)."""
    kind = get_str(doc, "kind")
    spec = get(doc, "spec")
    if spec is None:
        return []
    if kind == "Pod":
        return [spec]
    if kind == "CronJob":
        spec = get(get(spec, "jobTemplate"), "spec")
    pod = get(get(spec, "template"), "spec")
    return [pod] if isinstance(pod, MappingNode) else []
