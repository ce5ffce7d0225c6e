"""Every manifest under deploy/ is valid offline, and the validators do reject broken ones."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml.error import YAMLError

from tests.deploy.manifests import (
    DEPLOY,
    REPO,
    Document,
    load_documents,
    manifest_files,
    validate_document,
    validate_file,
)

FILES = manifest_files()


def test_the_manifests_are_found() -> None:
    rel = {str(p.relative_to(DEPLOY)) for p in FILES}
    assert "controller/kustomization.yaml" in rel
    assert "example-repo/workloads/podinfo/virtual-service.yaml" in rel
    assert "example-repo/rollouts/podinfo.yaml" in rel


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_is_valid(path: Path) -> None:
    documents = load_documents(path)
    assert documents, f"{path} holds no YAML document"
    for doc in documents:
        report = validate_document(doc)  # a missing schema raises: a failure, never a skip
        assert report.errors == [], f"{doc.where}:\n  " + "\n  ".join(report.errors)


def test_no_secret_values_are_committed() -> None:
    """Secrets are referenced by name only: no Secret object with data anywhere under deploy/."""
    for path in FILES:
        for doc in load_documents(path):
            if doc.body.get("kind") == "Secret":
                assert not doc.body.get("data") and not doc.body.get("stringData"), doc.where


# --- negative tests: each validator must be able to fail ------------------------------------------


def _doc(relative: str, index: int = 0) -> Document:
    return load_documents(DEPLOY / relative)[index]


def _broken(relative: str, mutate: Any, index: int = 0) -> Document:
    original = _doc(relative, index)
    body = copy.deepcopy(original.body)
    mutate(body)
    return Document(original.path, original.index, body)


def _errors(doc: Document) -> str:
    return "\n".join(validate_document(doc).errors)


VS = "example-repo/workloads/podinfo/virtual-service.yaml"
DR = "example-repo/workloads/podinfo/destination-rule.yaml"
GW = "example-repo/workloads/podinfo/gateway.yaml"
GA = "example-repo/workloads/podinfo/ga-deployment.yaml"


def test_originals_of_the_negative_tests_are_valid() -> None:
    for relative in (
        VS,
        DR,
        GW,
        GA,
        "controller/rbac.yaml",
        "example-repo/clusters/my-cluster/workloads.yaml",
    ):
        assert _errors(_doc(relative)) == "", relative


def test_a_weight_that_is_not_an_integer_fails() -> None:
    def mutate(body: dict[str, Any]) -> None:
        body["spec"]["http"][0]["route"][0]["weight"] = "ten"

    assert "weight: 'ten' is not of type 'integer'" in _errors(_broken(VS, mutate))


def test_a_misspelt_destination_field_fails() -> None:
    def mutate(body: dict[str, Any]) -> None:
        body["spec"]["http"][0]["route"][0]["destination"]["subst"] = "canary"

    assert "'subst' was unexpected" in _errors(_broken(VS, mutate))


def test_a_destination_without_host_fails() -> None:
    def mutate(body: dict[str, Any]) -> None:
        del body["spec"]["http"][0]["route"][0]["destination"]["host"]

    assert "'host' is a required property" in _errors(_broken(VS, mutate))


def test_a_subset_without_name_fails() -> None:
    def mutate(body: dict[str, Any]) -> None:
        del body["spec"]["subsets"][0]["name"]

    assert "'name' is a required property" in _errors(_broken(DR, mutate))


def test_a_gateway_port_without_protocol_fails() -> None:
    def mutate(body: dict[str, Any]) -> None:
        del body["spec"]["servers"][0]["port"]["protocol"]

    assert "'protocol' is a required property" in _errors(_broken(GW, mutate))


def test_an_unknown_deployment_field_fails_in_strict_mode() -> None:
    def mutate(body: dict[str, Any]) -> None:
        body["spec"]["replica"] = 2

    errors = _errors(_broken(GA, mutate))
    assert "'replica' was unexpected" in errors


def test_a_wrongly_typed_core_field_fails() -> None:
    def mutate(body: dict[str, Any]) -> None:
        body["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"

    assert "containerPort" in _errors(_broken(GA, mutate))


def test_an_unknown_rbac_field_fails() -> None:
    def mutate(body: dict[str, Any]) -> None:
        body["rules"][0]["verb"] = ["get"]

    assert "'verb' was unexpected" in _errors(_broken("controller/rbac.yaml", mutate))


def test_a_flux_kustomization_without_source_fails() -> None:
    def mutate(body: dict[str, Any]) -> None:
        del body["spec"]["sourceRef"]

    errors = _errors(_broken("example-repo/clusters/my-cluster/workloads.yaml", mutate))
    assert "'sourceRef' is a required property" in errors


def test_an_unknown_kind_has_no_validator() -> None:
    doc = Document(REPO / "x.yaml", 0, {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {}})
    assert "no validator for example.com/v1 Thing" in _errors(doc)


def test_a_kustomization_with_a_missing_resource_fails(tmp_path: Path) -> None:
    (tmp_path / "present.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n")
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - present.yaml\n  - absent.yaml\n  - https://example.com/remote.yaml\n"
    )
    errors = [e for r in validate_file(tmp_path / "kustomization.yaml") for e in r.errors]
    assert errors == [
        "resources: 'absent.yaml' does not exist",
        "resources: 'https://example.com/remote.yaml' is remote; the base must be self-contained",
    ]


def test_yaml_that_does_not_parse_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: [unclosed\n")
    with pytest.raises(YAMLError, match=r"flow sequence|expected"):
        load_documents(bad)
