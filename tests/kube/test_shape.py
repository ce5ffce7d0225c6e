"""The strategy's shape of a route (match routes, mirror), read alike from Git's YAML and the API
server's JSON, so that the sync gate can compare them."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.kube.shape import RouteShape, shape_difference, shape_of
from rollouts.routes import editor_for
from rollouts.spec_strategy import StrategySpec, apply_state, plan
from rollouts.yamlsafe import ROUTE, load_all
from tests.routes.test_httproute_trafficsplit import HTTPROUTE
from tests.routes.test_virtualservice import GUIDE, vs

AB = {"iterations": 2, "match": [{"headers": {"x-user": {"exact": "beta"}}}]}
PLANS = [
    plan(StrategySpec.model_validate(AB), [100]),
    plan(StrategySpec.model_validate({"iterations": 2, "mirror": True, "mirrorWeight": 40}), [10, 100]),
    plan(
        StrategySpec.model_validate({"sessionAffinity": {"cookieName": "s"}}), [20, 50], affinity_value="v1"
    ),
]
HR = editor_for("HTTPRoute", stable="podinfo-primary", canary="podinfo-canary", source="r")


def documents(text: str, kind: str) -> tuple[dict, dict]:
    """The route object as Git has it (parsed YAML) and as the API server answers it (JSON)."""
    doc = next(d for d in load_all(text, "r.yaml", ROUTE) if isinstance(d, dict) and d.get("kind") == kind)
    return doc, json.loads(json.dumps(doc))


def test_a_mirror_and_a_match_route_are_in_the_shape() -> None:
    editor = vs()
    stages = {s.name: apply_state(editor, GUIDE, s.state) for s in (*PLANS[0], *PLANS[1])}
    plain = shape_of(documents(GUIDE, "VirtualService")[0], "VirtualService", stable="ga", canary="canary")
    assert plain == RouteShape()
    mirrored = shape_of(
        documents(stages["mirror"], "VirtualService")[1], "VirtualService", stable="ga", canary="canary"
    )
    assert mirrored.mirror is not None and mirrored.mirror_percent == 40.0 and mirrored.matches == ()
    matched = shape_of(
        documents(stages["match"], "VirtualService")[1], "VirtualService", stable="ga", canary="canary"
    )
    assert len(matched.matches) == 1 and "beta" in matched.matches[0] and matched.mirror is None
    assert shape_difference(mirrored, plain) == (
        "mirror differs (Git: 0 match route(s) to the canary, a mirror to "
        f"{mirrored.mirror} (40%); live: 0 match route(s) to the canary, no mirror)"
    )
    assert (shape_difference(matched, plain) or "").startswith("match routes differ")
    assert shape_difference(matched, matched) is None
    # A percentage written 40 in Git and 40.0 by the API server is the same.
    doc = documents(stages["mirror"], "VirtualService")[1]
    doc["spec"]["http"][0]["mirrorPercentage"]["value"] = 40.0
    assert shape_of(doc, "VirtualService", stable="ga", canary="canary") == mirrored


def test_httproute_mirror_filter_and_match_rules() -> None:
    mirrored = apply_state(HR, HTTPROUTE, PLANS[1][0].state)
    shape = shape_of(
        documents(mirrored, "HTTPRoute")[1], "HTTPRoute", stable="podinfo-primary", canary="podinfo-canary"
    )
    base = shape_of(
        documents(HTTPROUTE, "HTTPRoute")[1], "HTTPRoute", stable="podinfo-primary", canary="podinfo-canary"
    )
    assert base.matches and base.mirror is None  # the person's insiders rule to the canary
    assert shape.mirror is not None and shape.mirror_percent == 40.0 and shape.matches == base.matches
    assert shape_of({"spec": {"backends": []}}, "TrafficSplit", stable="a", canary="b") == RouteShape()


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0, 1, 2]), st.integers(0, 3)), min_size=1, max_size=5), st.booleans()
)
def test_property_git_and_live_read_the_same_shape_and_blocks_change_it(stages, gateway) -> None:
    """Whatever stages were applied, Git's YAML and the API server's JSON of the same text have one
    shape; two states have the same shape exactly when their match and mirror blocks agree."""
    editor, text, kind = (HR, HTTPROUTE, "HTTPRoute") if gateway else (vs(), GUIDE, "VirtualService")
    names = (
        {"stable": "podinfo-primary", "canary": "podinfo-canary"}
        if gateway
        else {"stable": "ga", "canary": "canary"}
    )
    seen: dict[tuple[object, ...], RouteShape] = {}
    for which, index in stages:
        stage = PLANS[which][min(index, len(PLANS[which]) - 1)]
        text = apply_state(editor, text, stage.state)
        git_doc, live_doc = documents(text, kind)
        shape = shape_of(git_doc, kind, **names)
        assert shape_of(live_doc, kind, **names) == shape
        blocks = (
            stage.state.match,
            stage.state.mirror,
            stage.state.affinity,
            stage.state.weights.canary in (0, 100),
        )
        if blocks in seen:
            assert seen[blocks] == shape
        seen[blocks] = shape
        assert (shape.mirror is not None) == (stage.state.mirror is not None)


def test_the_live_weights_are_the_default_routes_not_the_match_routes() -> None:
    from rollouts.kube.routes import weights_of
    from rollouts.routes import Weights

    matched = apply_state(vs(), GUIDE, PLANS[0][0].state)  # the match route (canary alone) comes first
    assert weights_of(
        documents(matched, "VirtualService")[1], "VirtualService", stable="ga", canary="canary"
    ) == (Weights(100, 0))
    live = documents(HTTPROUTE, "HTTPRoute")[1]  # the person's insiders rule to the canary comes first
    assert weights_of(live, "HTTPRoute", stable="podinfo-primary", canary="podinfo-canary") == Weights(80, 20)


def test_a_match_route_that_splits_the_segment_is_a_match_route_with_its_split() -> None:
    split = plan(StrategySpec.model_validate({**AB, "matchWeight": 50}), [100])[0].state
    pure = PLANS[0][0].state
    for editor, kind, text, stable, canary in (
        (vs(), "VirtualService", GUIDE, "ga", "canary"),
        (HR, "HTTPRoute", HTTPROUTE, "podinfo-primary", "podinfo-canary"),
    ):
        shapes = {}
        for name, state in (("split", split), ("pure", pure)):
            doc, live = documents(apply_state(editor, text, state), kind)
            shapes[name] = shape_of(doc, kind, stable=stable, canary=canary)
            assert shape_of(live, kind, stable=stable, canary=canary) == shapes[name]
        plain = shape_of(documents(text, kind)[0], kind, stable=stable, canary=canary)
        assert any(m.endswith(" canary 50%") for m in shapes["split"].matches)
        assert shape_difference(shapes["split"], shapes["pure"]) is not None
        assert shape_difference(shapes["split"], plain) is not None
