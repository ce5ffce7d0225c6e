"""The canary revision from workload manifests."""

from __future__ import annotations

import pytest

from rollouts.gitops import ManifestError, canary_images, image_tag, revision_of


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
