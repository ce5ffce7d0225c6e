"""Offline validation of the Kubernetes manifests under ``deploy/``.

No API server can run here, so each document is checked against a schema by its ``apiVersion`` and
``kind``: core kinds against the schemas that ``kubernetes-validate`` ships (strict: unknown fields
fail, as with ``kubectl apply``'s strict field validation), Istio and Flux kinds against the
trimmed CRD schemas stored in ``deploy/schema/`` (their origin is in each file's ``$comment``),
the Rollout spec against ``deploy/schema/rollout.schema.json``, and kustomize's own
``kustomization.yaml`` by a structural check (``kustomize`` is not installed). A kind without a
validator is an error, so a new kind cannot slip through unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SCHEMAS = DEPLOY / "schema"
ROLLOUT_SCHEMA = SCHEMAS / "rollout.schema.json"

# The oldest Kubernetes minor we support and the newest the library knows: both must accept.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())

# API groups served by Kubernetes itself (schemas in kubernetes-validate). Everything else is a CRD.
CORE_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "policy",
        "autoscaling",
        "rbac.authorization.k8s.io",
        "networking.k8s.io",
        "coordination.k8s.io",
        "events.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "discovery.k8s.io",
    }
)

# (group, kind) -> stored JSON schema, relative to deploy/schema.
CRD_SCHEMAS = {
    ("networking.istio.io", "VirtualService"): "istio/virtualservice.schema.json",
    ("networking.istio.io", "DestinationRule"): "istio/destinationrule.schema.json",
    ("networking.istio.io", "Gateway"): "istio/gateway.schema.json",
    ("kustomize.toolkit.fluxcd.io", "Kustomization"): "flux/kustomization.schema.json",
    ("image.toolkit.fluxcd.io", "ImageRepository"): "flux/imagerepository.schema.json",
    ("image.toolkit.fluxcd.io", "ImagePolicy"): "flux/imagepolicy.schema.json",
    ("image.toolkit.fluxcd.io", "ImageUpdateAutomation"): "flux/imageupdateautomation.schema.json",
}

KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
# Fields of kustomize's Kustomization that take file or directory paths relative to the file.
KUSTOMIZE_PATH_FIELDS = ("resources", "components", "crds")
KUSTOMIZE_FILENAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class MissingSchemaError(Exception):
    """A schema that the validation needs is not in the repository (yet)."""


@dataclass(frozen=True)
class Document:
    """One YAML document of a manifest file."""

    path: Path
    index: int
    body: dict[str, Any]

    @property
    def where(self) -> str:
        """Human-readable location, e.g. ``deploy/controller/rbac.yaml#2 (Role x)``."""
        rel = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path
        kind = self.body.get("kind", "?")
        name = (self.body.get("metadata") or {}).get("name", "?")
        return f"{rel}#{self.index} ({kind} {name})"


@dataclass
class Report:
    """Errors found in one document; empty when it is valid."""

    document: Document
    errors: list[str] = field(default_factory=list)


def load_documents(path: Path) -> list[Document]:
    """Every non-empty YAML document of ``path``; raises on YAML that does not parse."""
    yaml = YAML(typ="safe", pure=True)
    docs = []
    for index, body in enumerate(yaml.load_all(path.read_text())):
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ValueError(f"{path}#{index}: a manifest must be a mapping, got {type(body).__name__}")
        docs.append(Document(path, index, body))
    return docs


def manifest_files(root: Path = DEPLOY) -> list[Path]:
    """Every YAML file under ``root``, sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


@cache
def _schema(relative: str) -> dict[str, Any]:
    path = SCHEMAS / relative
    if not path.is_file():
        raise MissingSchemaError(f"schema {path.relative_to(REPO)} does not exist")
    schema: dict[str, Any] = json.loads(path.read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    return schema


def _schema_errors(body: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors]


def _kubernetes_errors(body: dict[str, Any]) -> list[str]:
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(body, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.absolute_path) or "<root>"
            errors.append(f"Kubernetes {version}: {where}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"Kubernetes {version}: no schema for {body.get('apiVersion')} {body.get('kind')}")
    return errors


def kustomization_errors(doc: Document) -> list[str]:
    """Structural check of a kustomize ``Kustomization``: known shape, and every path exists."""
    body, base = doc.body, doc.path.parent
    errors = []
    if doc.path.name not in KUSTOMIZE_FILENAMES:
        errors.append(f"a kustomize Kustomization must be named kustomization.yaml, not {doc.path.name}")
    for key in KUSTOMIZE_PATH_FIELDS:
        entries = body.get(key, [])
        if not isinstance(entries, list):
            errors.append(f"{key}: must be a list")
            continue
        for entry in entries:
            if not isinstance(entry, str):
                errors.append(f"{key}: entries must be strings, got {entry!r}")
            elif "://" in entry or entry.startswith(("github.com/", "git@")):
                errors.append(f"{key}: {entry!r} is remote; the base must be self-contained")
            else:
                target = (base / entry).resolve()
                if target.is_dir():
                    if not any((target / name).is_file() for name in KUSTOMIZE_FILENAMES):
                        errors.append(f"{key}: directory {entry!r} has no kustomization.yaml")
                elif not target.is_file():
                    errors.append(f"{key}: {entry!r} does not exist")
    for image in body.get("images", []):
        if not isinstance(image, dict) or "name" not in image:
            errors.append(f"images: each entry needs a name, got {image!r}")
    if "namespace" in body and not isinstance(body["namespace"], str):
        errors.append("namespace: must be a string")
    return errors


def validate_document(doc: Document) -> Report:
    """Validate one document with the validator for its kind."""
    body = doc.body
    api_version, kind = body.get("apiVersion"), body.get("kind")
    report = Report(doc)
    if not isinstance(api_version, str) or not isinstance(kind, str):
        report.errors.append("apiVersion and kind must be strings")
        return report
    group = _group(api_version)
    if api_version == KUSTOMIZE_API and kind == "Kustomization":
        report.errors += kustomization_errors(doc)
    elif api_version.startswith("rollouts.dev/") and kind == "Rollout":
        if not ROLLOUT_SCHEMA.is_file():
            raise MissingSchemaError(f"{ROLLOUT_SCHEMA.relative_to(REPO)} is not published yet")
        report.errors += _schema_errors(body, _schema(ROLLOUT_SCHEMA.name))
    elif (group, kind) in CRD_SCHEMAS:
        report.errors += _schema_errors(body, _schema(CRD_SCHEMAS[group, kind]))
    elif group in CORE_GROUPS:
        report.errors += _kubernetes_errors(body)
    else:
        report.errors.append(f"no validator for {api_version} {kind}: add a schema to deploy/schema")
    return report


def validate_file(path: Path) -> Iterator[Report]:
    """Validate every document of ``path``."""
    for doc in load_documents(path):
        yield validate_document(doc)
