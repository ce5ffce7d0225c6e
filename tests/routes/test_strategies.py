"""Strategy edits (A/B match route, mirror, session affinity, blue/green) as the smallest changes."""

from __future__ import annotations

import difflib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.routes import RouteError, Weights, editor_for
from rollouts.routes.strategies import (
    Match,
    Request,
    RequestMatch,
    SessionAffinity,
    StringMatch,
    affinity_value,
    cookie_condition,
    header,
)
from tests.routes.test_httproute_trafficsplit import HTTPROUTE, TRAFFICSPLIT
from tests.routes.test_virtualservice import FLAGGER, GUIDE, assert_only_weights_changed, vs, vs_files


def inserted_block(before: str, after: str) -> list[str]:
    """The lines ``after`` adds to ``before``, asserting that it adds one contiguous block (and or
    blocks at one more place) and changes or removes nothing."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    added: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        assert tag in ("equal", "insert"), f"{tag}: {old[i1:i2]!r} -> {new[j1:j2]!r}"
        if tag == "insert":
            added.extend(new[j1:j2])
    return added


def hr(**kw):
    return editor_for("HTTPRoute", stable="podinfo-primary", canary="podinfo-canary", source="r.yaml", **kw)


HTTPROUTE_DEFAULT_ONLY = HTTPROUTE.replace(
    """  - name: insiders
    matches:
    - headers:
      - name: x-canary
        value: insider
    backendRefs:
    - name: podinfo-canary
      port: 9898
""",
    "",
)

BETA = Match((header("x-user", "exact", "beta"),))


# -- A/B match ---------------------------------------------------------------------------------------


def test_match_route_goes_right_before_the_default_route_and_comes_out_byte_for_byte():
    editor = vs()
    match = Match(
        (
            header("x-canary", "exact", "insider"),
            RequestMatch(headers=(cookie_condition("canary", "always"),)),
            RequestMatch(query=(("beta", StringMatch("exact", "1")),)),
        )
    )
    out = editor.set_match(GUIDE, match)
    added = inserted_block(GUIDE, out)
    assert added[0] == "  # gitops-rollouts: canary match route\n"
    assert "".join(added[1:]) == (
        "  - match:\n"
        "    - headers:\n"
        "        x-canary:\n"
        "          exact: insider\n"
        "    - headers:\n"
        "        cookie:\n"
        "          regex: '^(.*?;\\s*)?canary=always(;.*)?$'\n"
        "    - queryParams:\n"
        "        beta:\n"
        "          exact: '1'\n"
        "    route:\n"
        "    - destination:\n"
        "        host: podinfo\n"
        "        subset: canary\n"
    )
    assert editor.read(out) == Weights(90, 10)  # the weights are the default route's, still
    assert editor.set_match(out, match) == out  # idempotent
    assert editor.set_match(out, None) == GUIDE
    table = editor.table(out)
    assert [r.weights for r in table.rules] == [Weights(0, 100), Weights(90, 10)]
    assert table.route(Request(headers=(("X-Canary", "insider"),))) is table.rules[0]
    assert table.route(Request(headers=(("Cookie", "a=1; canary=always"),))) is table.rules[0]
    assert table.route(Request(headers=(("Cookie", "canary=never"),))) is table.rules[1]
    assert table.route(Request(query=(("beta", "1"),))) is table.rules[0]
    assert table.route(Request()) is table.rules[1]


def test_comments_above_the_default_route_stay_with_it():
    text = GUIDE.replace("  http:\n  - route:", "  http:\n  # the only route, edited by people\n  - route:")
    out = vs().set_match(text, BETA)
    assert (
        out.index("canary match route")
        < out.index("# the only route")
        < out.index("  - route:\n    - destination")
    )
    assert vs().set_match(out, None) == text


def test_weights_still_change_only_their_scalars_with_a_match_route_in_place():
    editor = vs()
    with_match = editor.set_match(GUIDE, BETA)
    out = editor.write(with_match, Weights.for_canary(0))
    assert_only_weights_changed(with_match, out)
    assert editor.set_match(out, None) == editor.write(GUIDE, Weights.for_canary(0))


def test_changing_the_match_replaces_only_our_route():
    editor = vs()
    first = editor.set_match(GUIDE, BETA)
    second = editor.set_match(first, Match((header("x-user", "prefix", "alpha"),)))
    assert "exact: beta" not in second and "prefix: alpha" in second
    assert editor.set_match(second, None) == GUIDE


def test_the_default_routes_conditions_are_carried_into_ours():
    text = GUIDE.replace("  - route:\n", "  - match:\n    - uri:\n        prefix: /api\n    route:\n", 1)
    editor = vs()
    out = editor.set_match(text, BETA)
    table = editor.table(out)
    ours = table.rules[0]
    assert ours.matches == (
        RequestMatch(headers=(("x-user", StringMatch("exact", "beta")),), path=StringMatch("prefix", "/api")),
    )
    # A request the default route would not take is not taken by ours either.
    assert table.route(Request(path="/web", headers=(("x-user", "beta"),))) is None
    assert table.route(Request(path="/api/x", headers=(("x-user", "beta"),))) is ours
    assert editor.set_match(out, None) == text
    clash = text.replace(
        "prefix: /api\n", "prefix: /api\n      headers:\n        x-user:\n          exact: alpha\n"
    )
    with pytest.raises(RouteError, match=r"http\[0\]: both constrain header 'x-user'"):
        editor.set_match(clash, BETA)


def test_an_earlier_route_a_person_wrote_with_our_conditions_is_refused_by_name():
    editor = editor_for("VirtualService", stable="podinfo-primary", canary="podinfo-canary", source="f.yaml")
    with pytest.raises(
        RouteError, match=r"f\.yaml: VirtualService test/podinfo http\[0\] \(headers\): already takes"
    ):
        editor.set_match(FLAGGER, Match((header("x-canary", "exact", "insider"),)))
    out = editor.set_match(FLAGGER, BETA)  # a different header: placed after theirs, before the default
    assert editor.set_match(out, None) == FLAGGER
    assert out.index("name: headers") < out.index("canary match route") < out.index("name: primary")


def test_unsupported_match_fields_of_the_default_route_are_named():
    text = GUIDE.replace("  - route:\n", "  - match:\n    - sourceLabels:\n        app: x\n    route:\n", 1)
    with pytest.raises(
        RouteError, match=r"http\[0\]: match\[0\]: match field 'sourceLabels' is not supported"
    ):
        vs().set_match(text, BETA)


def test_httproute_match_rule_and_gateway_precedence():
    editor = hr()
    out = editor.set_match(HTTPROUTE_DEFAULT_ONLY, Match((header("x-user", "prefix", "beta-"),)))
    added = inserted_block(HTTPROUTE_DEFAULT_ONLY, out)
    assert "".join(added) == (
        "  # gitops-rollouts: canary match route\n"
        "  - matches:\n"
        "    - headers:\n"
        "      - name: x-user\n"
        "        type: RegularExpression\n"
        "        value: 'beta\\-.*'\n"
        "    backendRefs:\n"
        "    - name: podinfo-canary\n"
        "      port: 9898\n"
    )
    assert editor.set_match(out, None) == HTTPROUTE_DEFAULT_ONLY
    assert editor.table(out).route(Request(headers=(("x-user", "beta-7"),))).weights == Weights(0, 100)
    assert editor.table(out).route(Request(headers=(("x-user", "gamma"),))).weights == Weights(80, 20)
    # The person's "insiders" rule has one header: a rule of ours with two would outrank it.
    two = Match(
        (
            RequestMatch(
                headers=(("x-canary", StringMatch("exact", "insider")), ("x-user", StringMatch("exact", "b")))
            ),
        )
    )
    with pytest.raises(RouteError, match=r"rules\[0\] \(insiders\): a match rule on the same path"):
        editor.set_match(HTTPROUTE, two)
    assert editor.set_match(editor.set_match(HTTPROUTE, BETA), None) == HTTPROUTE  # a tie: theirs comes first


def test_trafficsplit_names_the_field_it_cannot_express():
    editor = editor_for("TrafficSplit", stable="podinfo-primary", canary="podinfo-canary", source="ts.yaml")
    for call, field in (
        (lambda: editor.set_match(TRAFFICSPLIT, BETA), "analysis.match"),
        (lambda: editor.set_mirror(TRAFFICSPLIT, 50), "analysis.mirror"),
        (lambda: editor.set_affinity(TRAFFICSPLIT, SessionAffinity("s", "v")), "analysis.sessionAffinity"),
    ):
        with pytest.raises(RouteError, match=rf"ts\.yaml: {field}: a TrafficSplit has no"):
            call()
    assert editor.set_match(TRAFFICSPLIT, None) == TRAFFICSPLIT
    assert editor.table(TRAFFICSPLIT).rules[0].weights == Weights(100, 0)


# -- mirror ------------------------------------------------------------------------------------------


def test_virtualservice_mirror_block_and_percentage():
    editor = vs()
    out = editor.set_mirror(GUIDE, 25)
    assert "".join(inserted_block(GUIDE, out)) == (
        "    mirror:\n      host: podinfo\n      subset: canary\n    mirrorPercentage:\n      value: 25\n"
    )
    changed = editor.set_mirror(out, 100)
    assert [a for a, b in zip(out.splitlines(), changed.splitlines(), strict=True) if a != b] == [
        "      value: 25"
    ]
    assert editor.table(changed).default.mirror == 100.0
    assert editor.set_mirror(out, None) == GUIDE
    assert editor.set_mirror(GUIDE, None) == GUIDE


def test_a_mirror_to_another_host_is_refused_by_route():
    text = GUIDE.replace("      weight: 10\n", "      weight: 10\n    mirror:\n      host: shadow-svc\n", 1)
    with pytest.raises(RouteError, match=r"http\[0\]: mirrors to 'shadow-svc' already"):
        vs().set_mirror(text, 10)
    with pytest.raises(RouteError, match=r"mirrors to 'shadow-svc' already"):
        vs().set_mirror(text, None)


def test_a_mirror_target_missing_from_the_destination_rule_is_refused():
    text = GUIDE.replace("      - name: canary\n", "      - name: canari\n")
    with pytest.raises(RouteError, match=r"subset 'canary' is not declared by the DestinationRule"):
        vs().set_mirror(text, 10)


def test_httproute_request_mirror_filter():
    editor = hr()
    out = editor.set_mirror(HTTPROUTE, 10)
    assert "".join(inserted_block(HTTPROUTE, out)) == (
        "    filters:\n    - type: RequestMirror\n      requestMirror:\n        backendRef:\n"
        "          name: podinfo-canary\n          port: 9898\n        percent: 10\n"
    )
    assert editor.table(out).default.mirror == 10.0
    fine = editor.set_mirror(out, 12.5)
    assert "fraction:\n          numerator: 1250\n          denominator: 10000\n" in fine
    assert editor.table(fine).default.mirror == 12.5
    full = editor.set_mirror(out, 100)
    assert "percent" not in full
    assert editor.set_mirror(full, None) == HTTPROUTE
    other = full.replace("name: podinfo-canary\n          port", "name: elsewhere\n          port")
    with pytest.raises(RouteError, match=r"rules\[1\]: mirrors to 'elsewhere' already"):
        editor.set_mirror(other, 10)


# -- session affinity ----------------------------------------------------------------------------------


def test_virtualservice_session_affinity_cookie_and_sticky_route():
    editor = vs()
    affinity = SessionAffinity("rollouts-podinfo", affinity_value("test/podinfo", "6.5.1"))
    out = editor.set_affinity(GUIDE, affinity)
    added = "".join(inserted_block(GUIDE, out))
    assert "# gitops-rollouts: session affinity route" in added
    assert f"Set-Cookie: 'rollouts-podinfo={affinity.value}; Max-Age=86400; Path=/'" in added
    table = editor.table(out)
    assert table.default.set_cookie == (("canary", affinity.set_cookie),)
    holder = Request(headers=(("cookie", f"x=1; rollouts-podinfo={affinity.value}"),))
    assert table.route(holder).weights == Weights(0, 100)
    assert table.route(Request()).weights == Weights(90, 10)  # new sessions follow the step
    assert editor.set_affinity(out, affinity) == out
    stepped = editor.write(out, Weights.for_canary(50))
    assert_only_weights_changed(out, stepped)
    assert editor.set_affinity(out, None) == GUIDE
    assert affinity_value("test/podinfo", "6.5.2") != affinity.value


@pytest.mark.parametrize("kind", ["vs", "hr"])
def test_a_primary_cookie_keeps_gas_users_on_ga_too(kind):
    editor, text = (vs(), GUIDE) if kind == "vs" else (hr(), HTTPROUTE_DEFAULT_ONLY)
    affinity = SessionAffinity(
        "canary-session", "v7", primary_cookie_name="primary-session", primary_max_age=60
    )
    out = editor.set_affinity(text, affinity)
    inserted_block(text, out)
    table = editor.table(out)
    assert dict(table.default.set_cookie) == {
        "canary": "canary-session=v7; Max-Age=86400; Path=/",
        "stable": "primary-session=v7; Max-Age=60; Path=/",
    }
    assert table.route(Request(headers=(("cookie", "primary-session=v7"),))).weights == Weights(100, 0)
    assert table.route(Request(headers=(("cookie", "canary-session=v7"),))).weights == Weights(0, 100)
    assert table.route(Request(headers=(("cookie", "primary-session=v6"),))) is table.default
    assert editor.set_affinity(out, affinity) == out
    assert editor.set_affinity(out, None) == text
    plain = editor.set_affinity(out, SessionAffinity("canary-session", "v8"))  # next revision, no GA pin
    assert "primary-session" not in plain and editor.set_affinity(plain, None) == text


def test_affinity_needs_the_canary_destination_and_refuses_foreign_headers():
    alone = GUIDE.replace(
        "    - destination:\n        host: podinfo\n        subset: canary\n      weight: 10\n", ""
    ).replace("weight: 90  # GA", "weight: 100")
    with pytest.raises(RouteError, match=r"http\[0\]: no destination 'canary' to set the session cookie on"):
        vs().set_affinity(alone, SessionAffinity("s", "v"))
    foreign = GUIDE.replace(
        "      weight: 10\n", "      weight: 10\n      headers:\n        request:\n          set: {x: y}\n", 1
    )
    with pytest.raises(RouteError, match=r"subset 'canary': has response headers of its own"):
        vs().set_affinity(foreign, SessionAffinity("s", "v"))


def test_match_and_affinity_cannot_be_combined():
    with_match = vs().set_match(GUIDE, BETA)
    with pytest.raises(RouteError, match="cannot be combined"):
        vs().set_affinity(with_match, SessionAffinity("s", "v"))


def test_httproute_session_affinity():
    editor = hr()
    affinity = SessionAffinity("sess", "v1")
    out = editor.set_affinity(HTTPROUTE_DEFAULT_ONLY, affinity)
    inserted_block(HTTPROUTE_DEFAULT_ONLY, out)
    table = editor.table(out)
    assert table.route(Request(headers=(("Cookie", "sess=v1"),))).weights == Weights(0, 100)
    assert table.route(Request(headers=(("Cookie", "sess=v0"),))).weights == Weights(80, 20)
    assert dict(table.rules[-1].set_cookie) == {"canary": affinity.set_cookie}
    assert editor.set_affinity(out, None) == HTTPROUTE_DEFAULT_ONLY


# -- blue/green ---------------------------------------------------------------------------------------


def test_blue_green_is_one_weight_commit_each_way_with_the_preview_mirror_removed_first():
    editor = vs()
    preview = editor.set_mirror(editor.write(GUIDE, Weights.for_canary(0)), 100)
    switched = editor.write(editor.set_mirror(preview, None), Weights.for_canary(100))
    assert_only_weights_changed(editor.write(GUIDE, Weights.for_canary(0)), switched)
    assert editor.read(switched) == Weights(0, 100)
    back = editor.write(switched, Weights.for_canary(0))
    assert back == editor.write(GUIDE, Weights.for_canary(0))


# -- properties -----------------------------------------------------------------------------------------

names = st.sampled_from(["x-user", "x-canary", "x-beta-tester"])
values = st.text(alphabet=st.sampled_from(list("abcXYZ019-_.:/ ")), min_size=1, max_size=12)
conditions = st.builds(StringMatch, st.sampled_from(["exact", "prefix"]), values)
alternatives = st.one_of(
    st.builds(lambda n, c: RequestMatch(headers=((n, c),)), names, conditions),
    st.builds(
        lambda v: RequestMatch(headers=(cookie_condition("canary", v.strip() or "x"),)),
        st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
    ),
    st.builds(lambda c: RequestMatch(query=(("variant", c),)), conditions),
)
matches = st.builds(
    lambda alts: Match(tuple(alts)), st.lists(alternatives, min_size=1, max_size=3, unique=True)
)


@settings(max_examples=60, deadline=None)
@given(vs_files(), matches, st.integers(0, 100), st.sampled_from([None, 1, 50.5, 100]))
def test_property_strategies_add_blocks_and_remove_them_byte_for_byte(text, match, canary, mirror):
    editor = vs()
    with_match = editor.set_match(text, match)
    inserted_block(text, with_match)
    assert editor.read(with_match) == Weights(50, 50)
    table = editor.table(with_match)
    assert table.rules[-1].weights == Weights(50, 50) and table.rules[-2].weights == Weights(0, 100)
    assert table.rules[-2].matches == match.alternatives
    stepped = editor.write(with_match, Weights.for_canary(canary))
    assert_only_weights_changed(with_match, stepped)
    mirrored = editor.set_mirror(stepped, mirror)
    if mirror is not None:
        inserted_block(stepped, mirrored)
        assert editor.table(mirrored).default.mirror == float(mirror)
    assert editor.set_mirror(mirrored, None) == stepped
    assert editor.set_match(stepped, None) == editor.write(text, Weights.for_canary(canary))
    affinity = SessionAffinity("rollouts", "abc", primary_cookie_name="ga-pin" if canary % 2 else None)
    sticky = editor.set_affinity(text, affinity)
    inserted_block(text, sticky)
    assert editor.set_affinity(sticky, None) == text


@st.composite
def httproute_files(draw):
    seq_indent = draw(st.sampled_from(["", "  "]))
    i = " " * draw(st.sampled_from([2, 4]))
    d = seq_indent + "- "
    pad = " " * len(d)
    path = draw(st.sampled_from(["", "/", "/api"]))
    matches = (
        f"{i}{pad}matches:\n{i}{pad}{seq_indent}- path:\n{i}{pad}{seq_indent}  {i}type: PathPrefix\n"
        f"{i}{pad}{seq_indent}  {i}value: {path}\n"
        if path
        else ""
    )
    filters = draw(
        st.sampled_from(
            [
                "",
                f"{i}{pad}filters:\n{i}{pad}{seq_indent}- type: RequestHeaderModifier\n"
                f"{i}{pad}{seq_indent}  requestHeaderModifier:\n"
                f"{i}{pad}{seq_indent}  {i}set:\n{i}{pad}{seq_indent}  {i}{seq_indent}- name: x-via\n"
                f"{i}{pad}{seq_indent}  {i}{seq_indent}  value: gw\n",
            ]
        )
    )
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        f"metadata:\n{i}name: podinfo\nspec:\n{i}rules:\n"
        f"{i}{d}backendRefs:\n"
        f"{i}{pad}{seq_indent}- name: podinfo-primary\n{i}{pad}{seq_indent}  port: 9898\n"
        f"{i}{pad}{seq_indent}  weight: 50\n"
        f"{i}{pad}{seq_indent}- name: podinfo-canary\n{i}{pad}{seq_indent}  port: 9898\n"
        f"{i}{pad}{seq_indent}  weight: 50\n"
        f"{matches}{filters}" + draw(st.sampled_from(["", "# end\n"]))
    )


@settings(max_examples=60, deadline=None)
@given(httproute_files(), matches, st.sampled_from([None, 10, 100]))
def test_property_httproute_strategies_round_trip(text, match, mirror):
    editor = hr()
    assert editor.read(text) == Weights(50, 50)
    with_match = editor.set_match(text, match)
    inserted_block(text, with_match)
    table = editor.table(with_match)
    for alternative in match.alternatives:
        request = _satisfying(alternative, "/api/x")
        assert table.route(request).weights == Weights(0, 100), (alternative, with_match)
    assert editor.set_match(with_match, None) == text
    mirrored = editor.set_mirror(text, mirror)
    if mirror is not None:
        inserted_block(text, mirrored)
        assert editor.table(mirrored).default.mirror == float(mirror)
    assert editor.set_mirror(mirrored, None) == text
    sticky = editor.set_affinity(text, SessionAffinity("s", "v"))
    inserted_block(text, sticky)
    assert editor.set_affinity(sticky, None) == text


def _satisfying(match: RequestMatch, path: str) -> Request:
    """A request that satisfies ``match`` (exact and prefix conditions, cookies)."""
    headers: list[tuple[str, str]] = []
    for name, condition in match.headers:
        if name == "cookie":
            cookie = condition.value.split("canary=", 1)[1].split("(", 1)[0].replace("\\", "")
            headers.append(("cookie", f"canary={cookie}"))
        else:
            headers.append((name, condition.value))
    query = tuple((name, condition.value) for name, condition in match.query)
    return Request(path=path, headers=tuple(headers), query=query)


# -- the default route's other settings come along; damaged files ---------------------------------------


def test_the_default_routes_retries_cors_and_rewrites_are_copied_into_ours():
    from tests.routes.test_realworld import FLAGGER_STYLE

    editor = editor_for("VirtualService", stable="podinfo-primary", canary="podinfo-canary", source="f")
    out = editor.set_match(FLAGGER_STYLE, BETA)
    added = "".join(inserted_block(FLAGGER_STYLE, out))
    assert '    corsPolicy:\n      allowOrigins:\n      - exact: "https://app.example.com"\n' in added
    assert "    retries:\n      attempts: 3\n" in added
    assert "mirror" not in added and "name: main" not in added  # routing keys stay the default's
    assert editor.set_match(out, None) == FLAGGER_STYLE
    with pytest.raises(RouteError, match=r"http\[1\] \(main\): mirrors to 'podinfo-shadow' already"):
        editor.set_mirror(FLAGGER_STYLE, 10)


def test_httproute_filters_of_the_default_rule_are_copied_but_not_a_mirror():
    text = HTTPROUTE_DEFAULT_ONLY.replace(
        "      weight: 20   # canary\n",
        "      weight: 20   # canary\n    filters:\n    - type: URLRewrite\n      urlRewrite:\n"
        "        path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}\n",
    )
    editor = hr()
    out = editor.set_match(text, BETA)
    assert "    filters:\n    - type: URLRewrite\n" in "".join(inserted_block(text, out))
    assert editor.set_match(out, None) == text
    mirrored = editor.set_mirror(text, 50)
    with pytest.raises(RouteError, match=r"rules\[0\]: has a RequestMirror filter"):
        editor.set_match(mirrored, BETA)


@st.composite
def damaged(draw):
    """A strategy-bearing file with a random slice replaced by random text."""
    base = draw(st.sampled_from([GUIDE, FLAGGER, HTTPROUTE]))
    kind = "HTTPRoute" if "HTTPRoute" in base else "VirtualService"
    editor = (
        hr()
        if kind == "HTTPRoute"
        else vs()
        if base is GUIDE
        else editor_for("VirtualService", stable="podinfo-primary", canary="podinfo-canary", source="f")
    )
    text = draw(st.sampled_from([base, editor.set_mirror(base, 50)]))
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 30)))
    junk = draw(st.text(alphabet=st.sampled_from(list(" -:#\n[]{}'\"0123456789abcmatchroute")), max_size=10))
    return editor, text[:start] + junk + text[end:]


@settings(max_examples=150, deadline=None)
@given(damaged(), matches)
def test_property_damaged_files_fail_only_with_route_errors(case, match):
    editor, text = case
    for edit in (
        lambda t: editor.set_match(t, match),
        lambda t: editor.set_mirror(t, 25),
        lambda t: editor.set_mirror(t, None),
        lambda t: editor.set_affinity(t, SessionAffinity("s", "v")),
        editor.table,
    ):
        try:
            edit(text)
        except RouteError:
            continue


def test_a_match_route_with_a_weight_splits_the_segment_and_is_never_the_default_route():
    """``Match(weight=...)`` (``analysis.matchWeight``): GA keeps serving part of the segment, so
    that the judge can compare the canary with GA on it; the steps still edit the default route."""
    editor = vs()
    half = Match(BETA.alternatives, weight=30)
    out = editor.set_match(GUIDE, half)
    assert "".join(inserted_block(GUIDE, out)) == (
        "  # gitops-rollouts: canary match route\n"
        "  - match:\n"
        "    - headers:\n"
        "        x-user:\n"
        "          exact: beta\n"
        "    route:\n"
        "    - destination:\n"
        "        host: podinfo\n"
        "        subset: ga\n"
        "      weight: 70\n"
        "    - destination:\n"
        "        host: podinfo\n"
        "        subset: canary\n"
        "      weight: 30\n"
    )
    assert editor.read(out) == Weights(90, 10)  # the default route's, not ours
    zero = editor.write(out, Weights.for_canary(0))
    assert_only_weights_changed(out, zero)
    assert editor.set_match(zero, half) == zero  # idempotent, also at weight 0
    assert [r.weights for r in editor.table(zero).rules] == [Weights(70, 30), Weights(100, 0)]
    assert editor.set_match(zero, None) == editor.write(GUIDE, Weights.for_canary(0))
    assert editor.set_match(editor.set_match(out, BETA), None) == GUIDE  # pure, then out
    routed = hr().set_match(HTTPROUTE_DEFAULT_ONLY, half)
    assert "    - name: podinfo-primary\n      port: 9898\n      weight: 70\n" in routed
    assert hr().table(routed).route(Request(headers=(("x-user", "beta"),))).weights == Weights(70, 30)
    assert hr().read(routed) == Weights(80, 20) and hr().set_match(routed, None) == HTTPROUTE_DEFAULT_ONLY
    for weight in (0, 101, True):
        with pytest.raises(RouteError, match="canary weight must be 1 to 100"):
            Match(BETA.alternatives, weight=weight)
