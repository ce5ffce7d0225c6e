"""``reconcile.fluxcd.io/requestedAt`` through the real ``kubernetes`` client against recorded Flux
objects: one merge patch of ``metadata.annotations`` per object, source first, nothing else changed;
a missing or forbidden object is reported, not raised."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rollouts.kube import api_client
from rollouts.kube.flux import ANNOTATION, FluxObject, request_reconcile, timestamp
from tests.kube.fluxapi import RunningFluxApi, serve

SOURCE = "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/flux-system"
KUSTOMIZATION = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps"
OBJECTS = [
    FluxObject("GitRepository", "flux-system", "flux-system"),
    FluxObject("Kustomization", "flux-system", "apps"),
]


@pytest.fixture
def flux_api(tmp_path: Path) -> Iterator[RunningFluxApi]:
    yield from serve(tmp_path)


def test_timestamp_is_rfc3339_nano_like_flux() -> None:
    assert timestamp(datetime(2026, 12, 1, 9, 30, 5, 120000, tzinfo=UTC)) == "2026-12-01T09:30:05.12Z"
    assert timestamp(datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC)) == "2026-12-01T09:30:05Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", timestamp())


def test_annotates_source_then_kustomization_with_a_merge_patch(flux_api: RunningFluxApi) -> None:
    before = {path: dict(obj) for path, obj in flux_api.state.objects.items()}
    api = api_client(str(flux_api.kubeconfig))
    when = datetime(2026, 12, 1, 9, 30, 5, 123456, tzinfo=UTC)
    result = request_reconcile(api, OBJECTS, clock=lambda: when)
    assert result.ok and result.requested_at == "2026-12-01T09:30:05.123456Z"
    assert result.annotated == ("GitRepository flux-system/flux-system", "Kustomization flux-system/apps")
    patches = [(m, p, t, b) for m, p, t, b in flux_api.state.requests if m == "PATCH"]
    assert [p for _m, p, _t, _b in patches] == [SOURCE, KUSTOMIZATION]
    for _method, _path, content_type, body in patches:
        assert content_type == "application/merge-patch+json"
        assert body == {"metadata": {"annotations": {ANNOTATION: result.requested_at}}}
    for path in (SOURCE, KUSTOMIZATION):
        stored = flux_api.state.objects[path]
        assert stored["metadata"]["annotations"] == {ANNOTATION: result.requested_at}
        assert stored["spec"] == before[path]["spec"] and stored["status"] == before[path]["status"]
    # A second request changes the value (Flux reconciles on a change of the annotation).
    later = request_reconcile(api, OBJECTS[1:], clock=lambda: when.replace(second=6))
    assert flux_api.state.objects[KUSTOMIZATION]["metadata"]["annotations"][ANNOTATION] == later.requested_at
    assert later.requested_at != result.requested_at


def test_missing_and_forbidden_objects_are_reported(flux_api: RunningFluxApi) -> None:
    flux_api.state.forbidden.add(SOURCE)
    api = api_client(str(flux_api.kubeconfig))
    result = request_reconcile(api, [*OBJECTS, FluxObject("Kustomization", "flux-system", "gone")])
    assert not result.ok
    assert result.annotated == ("Kustomization flux-system/apps",)
    assert result.failed == (
        "GitRepository flux-system/flux-system: Kubernetes API 403 Forbidden",
        "Kustomization flux-system/gone: Kubernetes API 404 Not Found",
    )
