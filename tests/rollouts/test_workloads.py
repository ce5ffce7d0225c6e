"""Metrics names from what the route really points at: Flagger's hosts, Gateway API backends, the
guide's subsets with DestinationRule labels; ``rollouts status`` shows the series, and a rollout
whose queries match no series says so at start."""

from __future__ import annotations

import logging

import pytest

from rollouts.cli import main
from rollouts.controller.source import subsets_of
from rollouts.gitops import Workspace
from rollouts.spec import parse_spec
from rollouts.spec_controller import SubsetSpec
from rollouts.workloads import for_metrics, resolve, with_resolved_subsets
from tests.fixtures.gitrepo import deployment, guide_rollout
from tests.support import require_binary

FLAGGER_VS = """apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: podinfo, namespace: test}
spec:
  hosts: [podinfo]
  http:
  - route:
    - destination: {host: podinfo-primary}
      weight: 90
    - destination: {host: podinfo-canary.test.svc.cluster.local}
      weight: 10
"""
HTTPROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: bookinfo}
spec:
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, port: 9080, weight: 10}
"""
SUBSET_VS = """apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews.bookinfo.svc.cluster.local, subset: stable}
      weight: 90
    - destination: {host: reviews, subset: next}
      weight: 10
"""
RULE = """apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  subsets:
  - {name: stable, labels: {version: v1}}
  - {name: next, labels: {version: v2}}
"""


def route(kind: str, path: str, stable: str, canary: str) -> dict[str, str]:
    return {"kind": kind, "path": path, "stable": stable, "canary": canary}


def rollout(name: str, namespace: str, route: dict, **sections):
    doc = guide_rollout("/r.git", route=route, **sections)
    doc["metadata"] = {"name": name, "namespace": namespace}
    return parse_spec(doc)


def reader(files: dict[str, str]):
    return files.get


def test_flagger_hosts_name_the_services_and_the_canary_manifest_names_its_workload():
    spec = rollout(
        "podinfo",
        "test",
        {
            "kind": "VirtualService",
            "path": "vs.yaml",
            "stable": "podinfo-primary",
            "canary": "podinfo-canary",
        },
    )
    files = {"vs.yaml": FLAGGER_VS, "workloads/podinfo/canary-deployment.yaml": deployment("podinfo", "1.0")}
    stable, canary = subsets_of(with_resolved_subsets(spec, reader(files)))
    # Flagger: podinfo-primary is made from the Deployment podinfo (the canary) and its Service.
    assert (stable.workload, stable.service) == ("podinfo-primary", "podinfo-primary")
    assert (canary.workload, canary.service) == ("podinfo", "podinfo-canary")
    # The old default would have been podinfo-podinfo-primary.
    assert subsets_of(spec)[0].workload == "podinfo-podinfo-primary"


def test_gateway_api_backends_are_the_services_and_workloads():
    spec = rollout(
        "reviews",
        "bookinfo",
        {"kind": "HTTPRoute", "path": "r.yaml", "stable": "reviews-v1", "canary": "reviews-v2"},
    )
    files = {"r.yaml": HTTPROUTE, "workloads/podinfo/canary-deployment.yaml": deployment("reviews-v2", "2")}
    stable, canary = subsets_of(with_resolved_subsets(spec, reader(files)))
    assert (stable.workload, stable.service) == ("reviews-v1", "reviews-v1")
    assert (canary.workload, canary.service) == ("reviews-v2", "reviews-v2")


def test_subsets_take_the_host_as_service_and_the_destination_rule_version_label():
    spec = rollout(
        "reviews",
        "bookinfo",
        {"kind": "VirtualService", "path": "w/vs.yaml", "stable": "stable", "canary": "next"},
    )
    files = {"w/vs.yaml": SUBSET_VS, "w/dr.yaml": RULE}
    resolved = resolve(spec, reader(files), siblings=["w/dr.yaml"])
    assert resolved.subsets.stable.model_dump() == {
        "workload": "reviews-stable",
        "version": "v1",
        "service": "reviews",
    }
    assert resolved.subsets.canary.model_dump() == {
        "workload": "reviews-next",
        "version": "v2",
        "service": "reviews",
    }
    # What the spec says wins over what the files say.
    own = rollout(
        "reviews",
        "bookinfo",
        route("VirtualService", "w/vs.yaml", "stable", "next"),
        analysis={"subsets": {"stable": {"workload": "reviews-v1"}, "canary": {"version": "two"}}},
    )
    resolved = resolve(own, reader(files), siblings=["w/dr.yaml"])
    assert resolved.subsets.stable.workload == "reviews-v1"
    assert resolved.subsets.canary.version == "two"


def test_the_guides_layout_keeps_its_names(spec):
    files = {
        "workloads/podinfo/virtual-service.yaml": open_fixture("VIRTUAL_SERVICE"),
        "workloads/podinfo/destination-rule.yaml": open_fixture("DESTINATION_RULE"),
        "workloads/podinfo/canary-deployment.yaml": deployment("podinfo-canary", "0.2.0"),
    }
    resolved = resolve(spec, reader(files), siblings=["workloads/podinfo/destination-rule.yaml"])
    assert resolved.subsets.stable.model_dump() == {
        "workload": "podinfo-ga",
        "version": "ga",
        "service": "podinfo",
    }
    assert resolved.subsets.canary.model_dump() == {
        "workload": "podinfo-canary",
        "version": "canary",
        "service": "podinfo",
    }


def open_fixture(name: str) -> str:
    import tests.fixtures.gitrepo as fixtures

    return str(getattr(fixtures, name))


def test_status_says_which_series_it_will_query(remote, tmp_path, cache, capsys):
    spec_file = tmp_path / "rollout.yaml"
    spec_file.write_text(
        f"""apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {{name: podinfo, namespace: test}}
spec:
  git: {{url: {remote.bare}, branch: master}}
  route: {{kind: VirtualService, path: workloads/podinfo/virtual-service.yaml, stable: ga, canary: canary}}
  canary: {{path: workloads/podinfo/canary-deployment.yaml}}
  steps: [10, 60, 100]
"""
    )
    assert main(["status", str(spec_file), "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    namespace = 'destination_workload_namespace="test"'
    assert (
        f'series        GA {{{namespace}, destination_workload="podinfo-ga"}} (istio)\n'
        f'              canary {{{namespace}, destination_workload="podinfo-canary"}} (istio)'
    ) in out


@pytest.mark.integration
def test_a_rollout_whose_queries_match_no_series_says_so_at_start(spec, cache, caplog):
    require_binary("prometheus", "apt-get install prometheus")
    from analyzer.prometheus import PrometheusClient
    from rollouts.local.prometheus import PrometheusServer

    with (
        PrometheusServer() as prom,
        Workspace.for_spec(spec, cache_dir=cache) as workspace,
        caplog.at_level(logging.INFO, logger="rollouts.workloads"),
    ):
        resolved = for_metrics(spec, workspace, PrometheusClient(prom.url))
    assert subsets_of(resolved)[0].workload == "podinfo-ga"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert warnings[0].startswith("test/podinfo: no series for GA and canary in the last 600s")
    assert 'destination_workload="podinfo-canary"' in warnings[0]


def test_an_unreachable_prometheus_at_start_is_not_an_error(spec, cache, caplog):
    from analyzer.prometheus import PrometheusClient
    from tests.support import free_port

    with Workspace.for_spec(spec, cache_dir=cache) as workspace, caplog.at_level(logging.INFO):
        resolved = for_metrics(spec, workspace, PrometheusClient(f"http://127.0.0.1:{free_port()}"))
    assert subsets_of(resolved)[1].workload == "podinfo-canary"
    assert "could not check for series at start" in caplog.text


@pytest.mark.parametrize(
    "route_text",
    [
        "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nspec: {http: 5}\n",
        "kind: VirtualService\nspec: {http: [{route: 7}, 3, {route: [{destination: 1}]}]}\n",
        "kind: DestinationRule\nspec: {host: podinfo, subsets: 9}\n",
        "[1, 2",
        "kind: VirtualService\nspec: [1]\n",
    ],
)
def test_malformed_route_files_keep_the_defaults(spec, route_text):
    files = {"workloads/podinfo/virtual-service.yaml": route_text}
    resolved = resolve(spec, reader(files), siblings=[])
    assert resolved.subsets.stable == SubsetSpec(workload="podinfo-ga", version="ga", service="podinfo")
