"""The strategies' spec (Flagger's names) and the pure plan of route states it makes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rollouts.routes import Weights, editor_for
from rollouts.routes.strategies import Request, SessionAffinity
from rollouts.spec import format_errors
from rollouts.spec_strategy import (
    RouteState,
    StrategySpec,
    apply_state,
    check_route_kind,
    is_blue_green,
    load_misses_match,
    plan,
    rollback_state,
)
from tests.routes.test_httproute_trafficsplit import HTTPROUTE
from tests.routes.test_virtualservice import GUIDE, vs

AB = {
    "iterations": 10,
    "match": [
        {"headers": {"X-User": {"exact": "beta"}}},
        {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
        {"queryParams": {"variant": {"exact": "b"}}},
    ],
}


def errors(data: dict) -> str:
    with pytest.raises(ValidationError) as info:
        StrategySpec.model_validate(data)
    return format_errors("r.yaml", info.value)


def test_flagger_shaped_ab_spec_becomes_a_match_stage_then_the_steps():
    strategy = StrategySpec.model_validate(AB)
    assert strategy.kind == "ab"
    stages = plan(strategy, [100])
    assert [s.name for s in stages] == ["match", "step 100%"]
    match = stages[0].state.match
    assert stages[0].state.weights == Weights(100, 0) and stages[0].windows == 10
    assert match is not None and match.holds(Request(headers=(("x-user", "beta"),)))
    assert match.holds(Request(headers=(("cookie", "a=1;canary=always"),)))
    assert match.holds(Request(query=(("variant", "b"),)))
    assert not match.holds(Request(headers=(("x-user", "alpha"),)))
    assert stages[1].state == RouteState(Weights(0, 100))  # promotion routes everyone, match removed
    assert is_blue_green(strategy, [100]) and not is_blue_green(strategy, [10, 100])


def test_mirror_then_shift_and_session_affinity_follow_the_steps():
    strategy = StrategySpec.model_validate(
        {"iterations": 3, "mirror": True, "mirrorWeight": 50, "sessionAffinity": {"cookieName": "sess"}}
    )
    stages = plan(strategy, [10, 60, 100], affinity_value="abc")
    assert [(s.name, s.state.weights.canary, s.state.mirror) for s in stages] == [
        ("mirror", 0, 50.0),
        ("step 10%", 10, None),
        ("step 60%", 60, None),
        ("step 100%", 100, None),
    ]
    assert stages[1].state.affinity == SessionAffinity("sess", "abc", 86400)
    pinned = StrategySpec.model_validate({"sessionAffinity": {"cookieName": "s", "primaryCookieName": "g"}})
    affinity = plan(pinned, [10], affinity_value="abc", interval=30)[0].state.affinity
    assert affinity is not None and affinity.primary_set_cookie == "g=abc; Max-Age=30; Path=/"
    assert stages[3].state.affinity is None
    with pytest.raises(ValueError, match="cookie value"):
        plan(strategy, [10])
    canary = StrategySpec()
    assert canary.kind == "canary" and [s.name for s in plan(canary, [10, 100])] == ["step 10%", "step 100%"]
    assert StrategySpec.model_validate({"iterations": 5}).kind == "preview"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"match": AB["match"]}, "match needs iterations"),
        ({"mirror": True}, "mirror needs iterations"),
        ({**AB, "mirror": True}, "match and mirror cannot be combined"),
        ({**AB, "sessionAffinity": {"cookieName": "s"}}, "match and sessionAffinity cannot be combined"),
        ({"iterations": 0}, "r.yaml: iterations: Input should be greater than or equal to 1"),
        ({"iterations": 2, "match": [{}]}, "r.yaml: match[0]: needs headers or queryParams"),
        (
            {"iterations": 2, "match": [{"headers": {"x": {"exact": "a", "prefix": "b"}}}]},
            "r.yaml: match[0].headers.x: must have exactly one of exact, prefix, regex",
        ),
        ({"iterations": 2, "match": [{"headers": {"x": {"regex": "("}}}]}, "invalid regex"),
        ({"iterations": 2, "match": [{"header": {}}]}, "r.yaml: match[0].header: unknown field"),
        ({"mirrorWeight": 0}, "mirrorWeight: Input should be greater than or equal to 1"),
        ({"previewService": {"name": "p"}}, "previewService needs iterations"),
        ({"iterations": 2, "mirror": True, "previewService": {"name": "p"}}, "cannot be combined with"),
        ({"iterations": 2, "previewService": {}}, "previewService.name: required field is missing"),
    ],
)
def test_bad_strategy_specs_name_the_field(data, message):
    assert message in errors(data)


def test_trafficsplit_cannot_express_matches_mirrors_or_affinity():
    check_route_kind(StrategySpec(), "TrafficSplit")
    check_route_kind(StrategySpec.model_validate(AB), "VirtualService")
    with pytest.raises(ValueError, match=r"analysis\.match: a TrafficSplit cannot express it"):
        check_route_kind(StrategySpec.model_validate(AB), "TrafficSplit")
    with pytest.raises(ValueError, match=r"analysis\.mirror"):
        check_route_kind(StrategySpec.model_validate({"iterations": 1, "mirror": True}), "TrafficSplit")


def test_a_load_that_does_not_carry_the_match_is_a_reason_to_hold():
    match = StrategySpec.model_validate(AB).to_match()
    assert match is not None
    reason = load_misses_match(match, "http://podinfo.test:9898/version", {})
    assert reason is not None and reason.startswith("analysis.match: the load sends no request that matches")
    assert "header x-user; or header cookie; or query variant" in reason
    assert load_misses_match(match, "http://podinfo.test:9898/version", {"X-User": "beta"}) is None
    assert load_misses_match(match, "http://podinfo.test:9898/version?variant=b", {}) is None


stage_lists = st.lists(st.sampled_from([0, 1, 2, 3]), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(stage_lists, st.sampled_from(["vs", "hr"]))
def test_property_any_sequence_of_stages_then_rollback_leaves_only_weights(order, kind):
    editor, text = (
        (vs(), GUIDE)
        if kind == "vs"
        else (
            editor_for("HTTPRoute", stable="podinfo-primary", canary="podinfo-canary", source="r"),
            HTTPROUTE,
        )
    )
    strategies = [
        plan(StrategySpec.model_validate(AB), [100]),
        plan(StrategySpec.model_validate({"iterations": 2, "mirror": True}), [10, 100]),
        plan(
            StrategySpec.model_validate({"sessionAffinity": {"cookieName": "s"}}),
            [20, 50],
            affinity_value="v1",
        ),
        plan(StrategySpec.model_validate({"iterations": 2}), [100]),
    ]
    current = text
    for index in order:
        for stage in strategies[index]:
            current = apply_state(editor, current, stage.state)
            assert editor.read(current) == stage.state.weights
            table = editor.table(current)
            assert (stage.state.mirror is not None) == (table.default.mirror is not None)
    rolled_back = apply_state(editor, current, rollback_state())
    assert rolled_back == editor.write(text, Weights.for_canary(0))


def test_the_rollout_spec_takes_session_affinity_and_names_what_a_strategy_lacks():
    from rollouts.spec import SpecError, parse_spec
    from tests.fixtures.gitrepo import guide_rollout

    rollout = parse_spec(guide_rollout("x", analysis={"sessionAffinity": {"cookieName": "s", "maxAge": 600}}))
    assert rollout.spec.analysis.session_affinity is not None
    assert rollout.spec.analysis.session_affinity.max_age == 600
    mirrored = parse_spec(guide_rollout("x", analysis={"iterations": 2, "mirror": True, "mirrorWeight": 50}))
    assert mirrored.spec.analysis.kind == "mirror" and mirrored.spec.analysis.mirror_weight == 50
    assert parse_spec(guide_rollout("x", analysis=AB)).spec.analysis.kind == "ab"
    preview = {"iterations": 2, "previewService": {"name": "podinfo-preview", "url": "http://p.test:9898/"}}
    previewed = parse_spec(guide_rollout("x", analysis=preview, steps=[100]))
    assert previewed.spec.analysis.kind == "preview"
    assert previewed.spec.analysis.preview_service is not None
    assert previewed.spec.analysis.preview_service.name == "podinfo-preview"
    for analysis, load, field in (
        ({"iterations": 2}, {}, "analysis.previewService: required with analysis.iterations"),
        (
            {"iterations": 2, "previewService": {"name": "p"}},
            {"mode": "local", "target": "http://podinfo.test:9898/"},
            "analysis.previewService.url: required with load.mode local",
        ),
    ):
        with pytest.raises(SpecError, match=rf"r\.yaml: spec: {field}"):
            parse_spec(
                guide_rollout("x", analysis=analysis, **({"load": load} if load else {})), source="r.yaml"
            )
    post = {
        **preview,
        "postPromotionAnalysis": {"iterations": 2, "stableService": {"name": "podinfo-stable"}},
    }
    assert parse_spec(guide_rollout("x", analysis=post, steps=[100])).spec.analysis.post_promotion is not None
    for analysis, steps, load, field in (
        (post, [10, 100], {}, "analysis.postPromotionAnalysis: only for blue/green"),
        (
            post,
            [100],
            {"mode": "local", "target": "http://podinfo.test:9898/"},
            "analysis.postPromotionAnalysis.stableService.url: required with load.mode local",
        ),
    ):
        with pytest.raises(SpecError, match=rf"r\.yaml: spec: {field}"):
            parse_spec(
                guide_rollout("x", analysis=analysis, steps=steps, **({"load": load} if load else {})),
                source="r.yaml",
            )
    # without load of ours (mode none) the preview's own traffic is judged: no url needed
    assert parse_spec(guide_rollout("x", analysis={"iterations": 2, "previewService": {"name": "p"}}))
    split = {"kind": "TrafficSplit", "path": "ts.yaml", "stable": "a", "canary": "b"}
    with pytest.raises(SpecError, match=r"spec: analysis.sessionAffinity: a TrafficSplit cannot express it"):
        parse_spec(
            guide_rollout("x", analysis={"sessionAffinity": {"cookieName": "s"}}, route=split), source="r"
        )
    with pytest.raises(
        SpecError, match=r"spec.analysis.sessionAffinity.cookieName: required field is missing"
    ):
        parse_spec(guide_rollout("x", analysis={"sessionAffinity": {}}), source="r")


def test_a_segment_label_is_for_ab_on_a_route_that_can_match_and_names_the_field():
    from rollouts.spec import SpecError, parse_spec
    from tests.fixtures.gitrepo import guide_rollout

    segment = {"name": "request_segment", "value": "match"}
    ab = parse_spec(guide_rollout("x", analysis={**AB, "segmentLabel": segment}))
    label = ab.spec.analysis.segment_label
    assert label is not None and (label.name, label.value) == ("request_segment", "match")
    assert StrategySpec.model_validate({**AB, "segmentLabel": {}}).segment_label == label  # the defaults
    for analysis, message in (
        ({"iterations": 2, "mirror": True, "segmentLabel": segment}, "segmentLabel: only for A/B testing"),
        ({"segmentLabel": segment}, "segmentLabel: only for A/B testing"),
        ({**AB, "segmentLabel": {"name": "x-user"}}, "segmentLabel.name: String should match pattern"),
        ({**AB, "segmentLabel": {"name": "response_code"}}, "one of Istio's standard labels"),
        ({**AB, "segmentLabel": {"name": "destination_version"}}, "one of Istio's standard labels"),
        ({**AB, "segmentLabel": {"value": ""}}, "segmentLabel.value: String should have at least 1"),
    ):
        with pytest.raises(SpecError, match=r"r\.yaml: spec\.analysis") as info:
            parse_spec(guide_rollout("x", analysis=analysis), source="r.yaml")
        assert message in str(info.value)
    split = StrategySpec.model_validate({**AB, "matchWeight": 40, "segmentLabel": segment})
    stage = plan(split, [100])[0]
    assert stage.state.match is not None and stage.state.match.weight == 40
    assert StrategySpec.model_validate(AB).to_match().weight == 100  # type: ignore[union-attr]
    for bad, message in (
        ({"iterations": 2, "mirror": True, "matchWeight": 50}, "matchWeight: only for A/B testing"),
        ({**AB, "matchWeight": 0}, "matchWeight: Input should be greater than or equal to 1"),
    ):
        assert message in errors(bad)
    with pytest.raises(ValueError, match=r"analysis\.match, analysis\.segmentLabel: a TrafficSplit cannot"):
        check_route_kind(StrategySpec.model_validate({**AB, "segmentLabel": segment}), "TrafficSplit")
