"""The Kubernetes layer against recorded API responses on loopback (the real ``kubernetes`` client)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from rollouts.kube import (
    EventRecorder,
    KubeConfigError,
    LiveRouteError,
    ObjectRef,
    api_client,
    deployment_readiness,
    read_live_weights,
    weights_of,
)
from rollouts.routes.base import Weights
from tests.fixtures.kubeapi import RunningApi, write_kubeconfig

VS_PATH = "/apis/networking.istio.io/v1beta1/namespaces/test/virtualservices/podinfo"


def test_kubeconfig_client_reads_live_virtualservice(kube_api: RunningApi) -> None:
    api = api_client(str(kube_api.kubeconfig))
    weights = read_live_weights(api, "VirtualService", "test", "podinfo", stable="ga", canary="canary")
    assert weights == Weights(stable=90, canary=10)
    assert ("GET", VS_PATH) in kube_api.state.requests


def test_httproute_and_trafficsplit_weights(kube_api: RunningApi) -> None:
    api = api_client(str(kube_api.kubeconfig))
    names = {"stable": "podinfo-primary", "canary": "podinfo-canary"}
    assert read_live_weights(api, "HTTPRoute", "test", "podinfo", **names) == Weights(40, 60)
    assert read_live_weights(api, "TrafficSplit", "test", "podinfo", **names) == Weights(100, 0)


def test_missing_route_object_is_an_api_404(kube_api: RunningApi) -> None:
    api = api_client(str(kube_api.kubeconfig))
    with pytest.raises(ApiException) as info:
        read_live_weights(api, "VirtualService", "test", "nope", stable="ga", canary="canary")
    assert info.value.status == 404


def test_wrong_token_is_rejected(kube_api: RunningApi, tmp_path) -> None:
    config = write_kubeconfig(tmp_path / "bad", kube_api.url, token="wrong")
    with pytest.raises(ApiException) as info:
        read_live_weights(
            api_client(str(config)), "VirtualService", "test", "podinfo", stable="ga", canary="c"
        )
    assert info.value.status == 401


def test_unusable_kubeconfig_names_the_file(tmp_path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(KubeConfigError, match="kubeconfig"):
        api_client(str(path))


def test_live_route_without_our_destinations_names_the_object(kube_api: RunningApi) -> None:
    api = api_client(str(kube_api.kubeconfig))
    with pytest.raises(LiveRouteError, match="VirtualService test/podinfo"):
        read_live_weights(api, "VirtualService", "test", "podinfo", stable="blue", canary="green")


def test_virtualservice_fqdn_hosts_and_lone_destination() -> None:
    obj = {
        "spec": {"http": [{"route": [{"destination": {"host": "podinfo-primary.test.svc.cluster.local"}}]}]}
    }
    assert weights_of(obj, "VirtualService", stable="podinfo-primary", canary="podinfo-canary") == Weights(
        100, 0
    )


def test_third_destination_is_an_error() -> None:
    obj = {
        "spec": {
            "backends": [
                {"service": "a", "weight": 50},
                {"service": "b", "weight": 40},
                {"service": "x", "weight": 10},
            ]
        }
    }
    with pytest.raises(LiveRouteError, match="other than stable and canary"):
        weights_of(obj, "TrafficSplit", stable="a", canary="b")


@given(st.integers(min_value=1, max_value=1000), st.integers(min_value=0, max_value=1000))
def test_relative_weights_become_percent(stable: int, canary: int) -> None:
    obj = {
        "spec": {
            "rules": [{"backendRefs": [{"name": "s", "weight": stable}, {"name": "c", "weight": canary}]}]
        }
    }
    weights = weights_of(obj, "HTTPRoute", stable="s", canary="c")
    assert weights.stable + weights.canary == 100
    assert abs(weights.canary - 100 * canary / (stable + canary)) <= 0.5


def test_deployment_readiness(kube_api: RunningApi) -> None:
    api = api_client(str(kube_api.kubeconfig))
    canary = deployment_readiness(api, "test", "podinfo-canary")
    assert canary.ready and canary.ready_replicas == 2 == canary.desired
    rolling = deployment_readiness(api, "test", "podinfo")
    assert not rolling.ready
    assert rolling.reason == "1 of 2 replicas updated"


def test_deployment_with_unobserved_generation_is_not_ready(kube_api: RunningApi) -> None:
    path = "/apis/apps/v1/namespaces/test/deployments/podinfo-canary"
    body = kube_api.state.recorded("GET", path)
    body["metadata"]["generation"] = 5  # a new spec the Deployment controller has not seen yet
    kube_api.state.set("GET", path, body)
    readiness = deployment_readiness(api_client(str(kube_api.kubeconfig)), "test", "podinfo-canary")
    assert not readiness.ready
    assert "generation 5 not yet observed" in readiness.reason


def test_events_are_created_on_the_target(kube_api: RunningApi) -> None:
    recorder = EventRecorder(api_client(str(kube_api.kubeconfig)), host="controller-0")
    target = ObjectRef("Deployment", "test", "podinfo-canary", api_version="apps/v1")
    created = recorder.emit(target, "RolledBack", "p99 4.1x GA at 10 %", warning=True)
    assert created.metadata.uid
    (event,) = kube_api.state.events
    assert event["involvedObject"] == {
        "kind": "Deployment",
        "namespace": "test",
        "name": "podinfo-canary",
        "apiVersion": "apps/v1",
    }
    assert (event["reason"], event["type"]) == ("RolledBack", "Warning")
    assert event["source"]["component"] == "gitops-rollouts"
    assert event["metadata"]["name"].startswith("podinfo-canary.")
