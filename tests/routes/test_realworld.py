"""Route files shaped like the ones people keep in GitOps repos: long lines, flow style, mixed
indentation, explicit document ends, anchors, several objects in one file."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.routes import RouteError, Weights, editor_for
from tests.routes.test_virtualservice import assert_only_weights_changed

# A Flagger-style VirtualService as it looks after `kubectl get -o yaml` and some hand edits: an
# A/B header route first, CORS with flow lists and a line longer than any YAML dumper's width,
# retries, a mirror, mixed sequence indentation, and an explicit document end `...` with comments.
FLAGGER_STYLE = """%YAML 1.2
---
# Source: podinfo/templates/virtualservice.yaml
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: podinfo
  namespace: test
  labels: {app.kubernetes.io/name: podinfo, app.kubernetes.io/managed-by: flux}
  annotations:
    description: "podinfo public route; the canary gets traffic only from the rollouts controller, \
humans may override by committing the weights"
spec:
  gateways:
    - public-gateway.istio-system.svc.cluster.local
    - mesh
  hosts: [app.example.com, podinfo]
  http:
  - name: ab-insiders
    match:
      - headers: {cookie: {regex: "^(.*?;)?(canary=always)(;.*)?$"}}
    route:
      - destination: {host: podinfo-canary, port: {number: 9898}}
  - name: main
    corsPolicy:
      allowOrigins:
      - exact: "https://app.example.com"
      allowMethods: [GET, POST, PUT]
      maxAge: 24h
    retries:
      attempts: 3
      perTryTimeout: 1s
      retryOn: "gateway-error,connect-failure,refused-stream"
    route:
        - destination:
            host: podinfo-primary
            port:
              number: 9898
          weight: 100       # primary
        - destination:
            host: podinfo-canary
            port:
              number: 9898
          weight: 0         # canary
    mirror: {host: podinfo-shadow}
    mirrorPercentage: {value: 5.0}
...
# kept below the document end on purpose
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo-shadow
spec: {ports: [{port: 9898}]}
"""


def flagger_editor(**kw):
    return editor_for(
        "VirtualService", stable="podinfo-primary", canary="podinfo-canary", source="vs.yaml", **kw
    )


def test_flagger_style_file_changes_only_its_weights():
    editor = flagger_editor()
    assert editor.read(FLAGGER_STYLE) == Weights(100, 0)
    out = editor.write(FLAGGER_STYLE, Weights.for_canary(35))
    assert_only_weights_changed(FLAGGER_STYLE, out)
    assert "weight: 65       # primary" in out and "weight: 35         # canary" in out
    assert editor.read(out) == Weights(65, 35)
    assert editor.write(out, Weights(100, 0)) == FLAGGER_STYLE


def test_header_route_is_not_chosen_by_accident():
    # The A/B route holds only the canary: naming it is an error that says what is there.
    ab = flagger_editor(route_name="ab-insiders")
    with pytest.raises(
        RouteError,
        match=r"vs\.yaml: VirtualService test/podinfo http\[0\] \(ab-insiders\): no destination "
        r"'podinfo-primary' \(found: 'podinfo-canary'\)",
    ):
        ab.read(FLAGGER_STYLE)
    assert flagger_editor(route_name="main").read(FLAGGER_STYLE) == Weights(100, 0)


def test_flow_style_weights_are_spliced_in_place():
    text = (
        "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: p}\n"
        "spec: {http: [{route: [{destination: {host: p, subset: ga}, weight: 90}, "
        "{destination: {host: p, subset: canary}, weight: 10}]}]}\n"
    )
    editor = editor_for("VirtualService", stable="ga", canary="canary", source="f")
    out = editor.write(text, Weights.for_canary(100))
    assert out == text.replace("weight: 90", "weight: 0").replace("weight: 10}", "weight: 100}")
    assert editor.read(out) == Weights(0, 100)


def test_anchors_and_several_virtual_services_in_one_file():
    text = """apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: frontend}
spec:
  http:
  - route:
    - destination: &dest {host: frontend, subset: ga}
      weight: 100
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: podinfo, namespace: test}
spec:
  http:
  - route:
    - destination: {host: podinfo, subset: ga}
      weight: 80
    - destination: {host: podinfo, subset: canary}
      weight: 20
"""
    editor = editor_for("VirtualService", stable="ga", canary="canary", source="two.yaml")
    assert editor.read(text) == Weights(80, 20)  # the one route holding both
    out = editor.write(text, Weights.for_canary(60))
    assert_only_weights_changed(text, out)
    assert out.split("---", maxsplit=1)[0] == text.split("---", maxsplit=1)[0]
    only_stable = text.replace(
        "      weight: 80\n    - destination: {host: podinfo, subset: canary}\n      weight: 20\n",
        "      weight: 100\n",
    )
    with pytest.raises(RouteError, match=r"ambiguous: 2 routes hold destination 'ga'"):
        editor.read(only_stable)


def test_httproute_several_objects_and_trafficsplit_by_name():
    routes = """apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: admin, namespace: test}
spec:
  rules:
  - backendRefs:
    - {name: admin, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: podinfo, namespace: test}
spec:
  rules:
  - backendRefs:
    - name: podinfo-primary
      port: 9898
      weight: 100
"""
    editor = editor_for("HTTPRoute", stable="podinfo-primary", canary="podinfo-canary", source="r.yaml")
    out = editor.write(routes, Weights.for_canary(10))
    assert out == routes.replace("weight: 100\n", "weight: 90\n") + (
        "    - name: podinfo-canary\n      port: 9898\n      weight: 10\n"
    )
    splits = """apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: podinfo-internal}
spec:
  service: podinfo
  backends:
  - {service: podinfo-primary, weight: 50}
  - {service: podinfo-canary, weight: 50}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: podinfo-public}
spec:
  service: podinfo-public
  backends:
  - {service: podinfo-primary, weight: 100}
  - {service: podinfo-canary, weight: 0}
"""
    ts = editor_for("TrafficSplit", stable="podinfo-primary", canary="podinfo-canary", source="ts.yaml")
    with pytest.raises(RouteError, match=r"ts\.yaml: ambiguous: 2 routes"):
        ts.read(splits)
    public = editor_for(
        "TrafficSplit",
        stable="podinfo-primary",
        canary="podinfo-canary",
        route_name="podinfo-public",
        source="t",
    )
    out = public.write(splits, Weights.for_canary(25))
    assert out == splits.replace("weight: 100}", "weight: 75}").replace("weight: 0}", "weight: 25}")


@st.composite
def stable_only_files(draw):
    """Guide-shaped files holding only the stable destination, with or without a weight key."""
    seq = draw(st.sampled_from(["", "  "]))
    weight = draw(st.sampled_from(["", "weight: 100", "weight: 100  # all to GA"]))
    tail = draw(st.sampled_from(["", "\n", "# trailing\n", "---\nkind: Service\napiVersion: v1\n"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    body = (
        "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata:\n  name: podinfo\n"
        f"spec:\n  http:\n  {seq}- route:\n  {seq}  {seq}- destination:\n  {seq}  {seq}    host: podinfo\n"
        f"  {seq}  {seq}    subset: ga\n"
    )
    if weight:
        body += f"  {seq}  {seq}  {weight}\n"
    return (body + tail).replace("\n", newline)


@given(stable_only_files(), st.integers(1, 100))
def test_property_adding_the_canary_keeps_every_original_line(text, canary):
    editor = editor_for("VirtualService", stable="ga", canary="canary", source="f")
    assert editor.read(text) == Weights(100, 0)
    out = editor.write(text, Weights.for_canary(canary))
    assert editor.read(out) == Weights.for_canary(canary)
    # Every original line is still there, in order, apart from the stable weight's digits.
    original = [line.replace("weight: 100", f"weight: {100 - canary}") for line in text.splitlines()]
    lines = out.splitlines()
    it = iter(lines)
    assert all(any(line == candidate for candidate in it) for line in original)
    assert len(lines) - len(original) in {4, 5}  # the new entry (+ the stable weight when it had none)
    assert ("\r\n" in out) == ("\r\n" in text)
