"""Gateway API HTTPRoute and SMI TrafficSplit editors, byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.routes import KINDS, RouteError, Weights, editor_for
from tests.routes.test_virtualservice import assert_only_weights_changed

HTTPROUTE = """---
# Gateway API canary split (Flagger's gatewayapi layout)
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: podinfo
  namespace: test
spec:
  parentRefs:
  - name: gateway
    namespace: istio-ingress
  hostnames: ["app.example.com"]
  rules:
  - name: insiders
    matches:
    - headers:
      - name: x-canary
        value: insider
    backendRefs:
    - name: podinfo-canary
      port: 9898
  - backendRefs:
    - name: podinfo-primary
      port: 9898
      weight: 80
    - kind: Service
      name: podinfo-canary
      port: 9898
      weight: 20   # canary
"""

TRAFFICSPLIT = """apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata:
  name: podinfo
  namespace: test
spec:
  # the root service that clients use
  service: podinfo
  backends:
    - service: podinfo-primary
      weight: 100
    - service: "podinfo-canary"
      weight: 0


"""


def test_httproute_rule_with_both_backends():
    editor = editor_for("HTTPRoute", stable="podinfo-primary", canary="podinfo-canary", source="r.yaml")
    assert editor.read(HTTPROUTE) == Weights(80, 20)
    out = editor.write(HTTPROUTE, Weights.for_canary(50))
    assert_only_weights_changed(HTTPROUTE, out)
    assert editor.read(out) == Weights(50, 50)
    named = editor_for(
        "HTTPRoute", stable="podinfo-primary", canary="podinfo-canary", route_name="insiders", source="r.yaml"
    )
    with pytest.raises(
        RouteError, match=r"r\.yaml: HTTPRoute test/podinfo rules\[0\] \(insiders\): no backend"
    ):
        named.read(HTTPROUTE)


def test_httproute_missing_weights_are_an_error_not_a_guess():
    text = HTTPROUTE.replace("      weight: 80\n", "")
    editor = editor_for("HTTPRoute", stable="podinfo-primary", canary="podinfo-canary", source="r.yaml")
    with pytest.raises(RouteError, match=r"backend 'podinfo-primary': weight is missing .*default 1"):
        editor.read(text)
    # ... but writing fills the missing key in, at the entry's key column.
    out = editor.write(text, Weights.for_canary(10))
    assert "      port: 9898\n      weight: 90\n    - kind: Service" in out
    assert editor.read(out) == Weights(90, 10)


def test_trafficsplit_round_trip_and_add_canary():
    editor = editor_for("TrafficSplit", stable="podinfo-primary", canary="podinfo-canary", source="ts.yaml")
    assert editor.read(TRAFFICSPLIT) == Weights(100, 0)
    out = editor.write(TRAFFICSPLIT, Weights.for_canary(10))
    assert_only_weights_changed(TRAFFICSPLIT, out)
    alone = TRAFFICSPLIT.replace('    - service: "podinfo-canary"\n      weight: 0\n', "")
    added = editor.write(alone, Weights.for_canary(10))
    assert (
        "    - service: podinfo-primary\n      weight: 90\n    - service: podinfo-canary\n      weight: 10\n"
        in added
    )
    assert added.endswith("\n\n\n")


def test_trafficsplit_errors():
    editor = editor_for("TrafficSplit", stable="podinfo-primary", canary="podinfo-canary", source="ts.yaml")
    with pytest.raises(
        RouteError, match=r"ts\.yaml: TrafficSplit test/podinfo backends: weights must sum to 100"
    ):
        editor.read(TRAFFICSPLIT.replace("weight: 0", "weight: 1"))
    with pytest.raises(RouteError, match=r"service 'podinfo-primary': weight must be an integer, got '500m'"):
        editor.read(TRAFFICSPLIT.replace("weight: 100", "weight: 500m"))
    with pytest.raises(RouteError, match="no service 'podinfo-primary'"):
        editor.read(TRAFFICSPLIT.replace("service: podinfo-primary", "service: podinfo-ga"))


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (
            "HTTPRoute",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
            "spec:\n  rules:\n  - backendRefs:\n    - {port: 9898}\n",
            r"^f\.yaml: HTTPRoute r rules\[0\]: every backendRef needs a name$",
        ),
        (
            "HTTPRoute",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
            "spec:\n  rules:\n  - backendRefs:\n    - {name: a, weight: [1]}\n",
            r"^f\.yaml: HTTPRoute r rules\[0\]: backend 'a': weight must be an integer$",
        ),
        (
            "TrafficSplit",
            "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: r}\n"
            "spec:\n  backends:\n  - {weight: 100}\n",
            r"^f\.yaml: TrafficSplit r backends: every backend needs a service$",
        ),
        (
            "TrafficSplit",
            "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: r}\n"
            "spec:\n  backends:\n  - {service: a, weight: {x: 1}}\n",
            r"^f\.yaml: TrafficSplit r backends: service 'a': weight must be an integer$",
        ),
    ],
)
def test_unnamed_entry_and_non_scalar_weight_name_the_api_field(kind, text, message):
    with pytest.raises(RouteError, match=message):
        editor_for(kind, stable="a", canary="b", source="f.yaml").read(text)


def test_editor_for_rejects_unknown_kind():
    assert KINDS == ("VirtualService", "HTTPRoute", "TrafficSplit")
    with pytest.raises(RouteError, match=r"x\.yaml: unknown route kind 'Ingress'"):
        editor_for("Ingress", stable="a", canary="b", source="x.yaml")
    with pytest.raises(RouteError, match="both 'a'"):
        editor_for("HTTPRoute", stable="a", canary="a", source="x.yaml")


@given(st.sampled_from(["HTTPRoute", "TrafficSplit"]), st.integers(0, 100))
def test_property_read_write(kind, canary):
    text = HTTPROUTE if kind == "HTTPRoute" else TRAFFICSPLIT
    editor = editor_for(kind, stable="podinfo-primary", canary="podinfo-canary", source="f")
    out = editor.write(text, Weights.for_canary(canary))
    assert editor.read(out) == Weights.for_canary(canary)
    assert_only_weights_changed(text, out)
    assert editor.write(out, editor.read(text)) == text
