"""The canary revision from workload manifests."""

from __future__ import annotations

import pytest

from rollouts.gitops import ManifestError, canary_images, copy_images, image_tag, revision_of


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("ghcr.io/stefanprodan/podinfo:6.5.0", "6.5.0"),
        ("localhost:5000/podinfo:1.2", "1.2"),
        ("localhost:5000/podinfo", "latest"),
        ("podinfo", "latest"),
        ("podinfo:0.2.1@sha256:" + "a" * 64, "sha256:" + "a" * 64),
    ],
)
def test_image_tag(image, tag):
    assert image_tag(image) == tag


def test_images_of_every_workload_kind_in_a_multi_document_file():
    text = """apiVersion: v1
kind: Service
metadata: {name: podinfo-canary}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo-canary}
spec:
  template:
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:0.2.1 # {"$imagepolicy": "flux-system:podinfo"}
      - name: proxy
        image: envoyproxy/envoy:v1.30.1
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: warmup}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          initContainers: [{name: wait, image: busybox:1.36}]
          containers: [{name: warm, image: curlimages/curl:8.7.1}]
"""
    images = canary_images(text, "canary.yaml")
    assert images == {
        "podinfod": "ghcr.io/stefanprodan/podinfo:0.2.1",
        "proxy": "envoyproxy/envoy:v1.30.1",
        "warm": "curlimages/curl:8.7.1",
        "wait": "busybox:1.36",
    }
    assert revision_of(images) == "0.2.1"


def test_manifest_errors_name_the_file():
    with pytest.raises(ManifestError, match=r"canary\.yaml: malformed YAML"):
        canary_images("spec: [", "canary.yaml")
    with pytest.raises(ManifestError, match=r"canary\.yaml: no container images found"):
        canary_images("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", "canary.yaml")


GA_FILE = """# GA: what serves production
apiVersion: v1
kind: Service
metadata: {name: podinfo}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo-ga
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: 'busybox:1.35'   # pinned
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:0.1.0 # {"$imagepolicy": "flux-system:podinfo-ga"}
        ports: [{containerPort: 9898}]

      - name: sidecar   # not in the canary: keeps its image
        image: "envoy:1.0"
"""


def test_copy_images_changes_only_the_image_scalars():
    canary = {"init": "busybox:1.36", "podinfod": "ghcr.io/stefanprodan/podinfo:0.2.0", "other": "x:1"}
    out = copy_images(GA_FILE, canary, "ga.yaml")
    expected = GA_FILE.replace("'busybox:1.35'", "'busybox:1.36'").replace(
        "podinfo:0.1.0 #", "podinfo:0.2.0 #"
    )
    assert out == expected
    assert canary_images(out, "ga.yaml") == {
        "podinfod": "ghcr.io/stefanprodan/podinfo:0.2.0",
        "sidecar": "envoy:1.0",
        "init": "busybox:1.36",
    }
    assert copy_images(out, canary, "ga.yaml") == out  # nothing left to change


def test_copy_images_keeps_crlf_and_double_quotes():
    text = GA_FILE.replace("\n", "\r\n")
    out = copy_images(text, {"sidecar": "envoy:1.1"}, "ga.yaml")
    assert out == text.replace('"envoy:1.0"', '"envoy:1.1"')


def test_copy_images_into_a_manifest_without_those_containers_is_an_error():
    with pytest.raises(ManifestError, match=r"ga\.yaml: no container named app"):
        copy_images(GA_FILE, {"app": "x:1"}, "ga.yaml")
    with pytest.raises(ManifestError, match=r"ga\.yaml: malformed YAML"):
        copy_images("a: [", {"app": "x:1"}, "ga.yaml")
