"""VirtualService editor: real-world-shaped files, byte for byte."""

from __future__ import annotations

import difflib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.routes import RouteError, Weights, editor_for

# The guide's layout: one host, subsets ga/canary; a leading comment, odd indentation, a trailing
# comment at document end, a DestinationRule in another document, trailing blank lines.
GUIDE = """# podinfo traffic split: edited by gitops-rollouts, reviewed by humans
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: podinfo
  namespace: test
  annotations:
    note: 'single quoted'   # keep me
spec:
  hosts:
  - podinfo.istio.weavedx.com
  - "podinfo"
  gateways:
  - mesh
  - podinfo-gateway
  http:
  - route:
    - destination:
        host: podinfo
        subset: ga
      weight: 90  # GA
    - destination:
        host: podinfo
        subset: canary
      weight: 10
# end of the VirtualService
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: podinfo
  namespace: test
spec:
  host: podinfo
  subsets:
      - name: ga
        labels: {version: ga}
      - name: canary
        labels:
          version: canary


"""

# The guide's initial state: the canary destination exists only as comment lines.
GUIDE_INITIAL = """apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: podinfo
  namespace: test
spec:
  hosts:
  - podinfo
  http:
  - route:
    - destination:
        host: podinfo
        subset: ga
      weight: 100
#    - destination:
#        host: podinfo
#        subset: canary
#      weight: 0
"""

# Flagger's layout: destinations by host, several http routes, v1beta1, 4-space sequences.
FLAGGER = """apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
    name: podinfo
    namespace: test
spec:
    gateways:
        - public-gateway.istio-system.svc.cluster.local
    hosts:
        - app.example.com
    http:
        -   name: headers
            match:
                -   headers:
                        x-canary:
                            exact: insider
            route:
                -   destination:
                        host: podinfo-canary
                    weight: 100
        -   name: primary
            route:
                -   destination:
                        host: podinfo-primary
                    weight: 100
                -   destination:
                        host: podinfo-canary
                    weight: 0
"""

WEIGHT_LINE = re.compile(r"^(\s*(?:-\s+)?weight:\s*)\d+(\s*(?:#.*)?)$")


def assert_only_weights_changed(before: str, after: str) -> None:
    """Every changed line is a ``weight: N`` line that differs only in its digits."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new), "line count changed"
    for a, b in zip(old, new, strict=True):
        if a == b:
            continue
        ma, mb = WEIGHT_LINE.match(a.rstrip("\r\n")), WEIGHT_LINE.match(b.rstrip("\r\n"))
        assert ma and mb, f"non-weight line changed: {a!r} -> {b!r}"
        assert ma.groups() == mb.groups() and a[len(a.rstrip("\r\n")) :] == b[len(b.rstrip("\r\n")) :]


def vs(stable="ga", canary="canary", **kw):
    return editor_for("VirtualService", stable=stable, canary=canary, source="apps/vs.yaml", **kw)


def test_guide_layout_round_trip_is_byte_exact():
    editor = vs()
    assert editor.read(GUIDE) == Weights(stable=90, canary=10)
    assert editor.write(GUIDE, Weights(stable=90, canary=10)) == GUIDE
    out = editor.write(GUIDE, Weights.for_canary(60))
    assert editor.read(out) == Weights(stable=40, canary=60)
    assert_only_weights_changed(GUIDE, out)
    diff = [line for line in difflib.ndiff(GUIDE.splitlines(), out.splitlines()) if line[:1] in "+-"]
    assert diff == [
        "-       weight: 90  # GA",
        "+       weight: 40  # GA",
        "-       weight: 10",
        "+       weight: 60",
    ]


def test_flagger_layout_by_host_and_route_name():
    editor = editor_for("VirtualService", stable="podinfo-primary", canary="podinfo-canary", source="f.yaml")
    # Two routes mention the canary, one holds both: that one is chosen.
    assert editor.read(FLAGGER) == Weights(stable=100, canary=0)
    out = editor.write(FLAGGER, Weights.for_canary(30))
    assert_only_weights_changed(FLAGGER, out)
    assert "weight: 70" in out and out.count("weight: 100") == 1  # the header route is untouched
    named = editor_for(
        "VirtualService", stable="podinfo-primary", canary="podinfo-canary", route_name="primary", source="f"
    )
    assert named.read(out) == Weights(stable=70, canary=30)


def test_host_with_domain_matches_by_first_label():
    text = FLAGGER.replace("host: podinfo-primary", "host: podinfo-primary.test.svc.cluster.local")
    editor = editor_for("VirtualService", stable="podinfo-primary", canary="podinfo-canary", source="f")
    assert editor.read(text) == Weights(stable=100, canary=0)


def test_ambiguous_routes_are_refused():
    text = FLAGGER.replace("x-canary", "x-canary2").replace(
        """            route:
                -   destination:
                        host: podinfo-canary
                    weight: 100
""",
        """            route:
                -   destination:
                        host: podinfo-primary
                    weight: 50
                -   destination:
                        host: podinfo-canary
                    weight: 50
""",
    )
    editor = editor_for("VirtualService", stable="podinfo-primary", canary="podinfo-canary", source="f.yaml")
    with pytest.raises(RouteError, match=r"f\.yaml: ambiguous: 2 routes .*set spec\.route\.name"):
        editor.read(text)
    named = editor_for(
        "VirtualService", stable="podinfo-primary", canary="podinfo-canary", route_name="headers", source="f"
    )
    assert named.read(text) == Weights(stable=50, canary=50)
    with pytest.raises(RouteError, match="no route named 'nope'"):
        editor_for(
            "VirtualService", stable="podinfo-primary", canary="c", route_name="nope", source="f"
        ).read(text)


def test_commented_canary_is_uncommented():
    editor = vs()
    assert editor.read(GUIDE_INITIAL) == Weights(stable=100, canary=0)
    out = editor.write(GUIDE_INITIAL, Weights.for_canary(10))
    assert editor.read(out) == Weights(stable=90, canary=10)
    assert "#" not in out
    assert len(out.splitlines()) == len(GUIDE_INITIAL.splitlines())
    # 0 % canary on a file that already routes everything to stable: no change at all.
    assert editor.write(GUIDE_INITIAL, Weights.for_canary(0)) == GUIDE_INITIAL


def test_absent_canary_is_added_after_stable():
    text = GUIDE_INITIAL.split("#", maxsplit=1)[0]
    out = vs().write(text, Weights.for_canary(10))
    assert out.startswith(text.replace("weight: 100", "weight: 90"))
    added = out[len(text) - 1 :]  # "100" became "90"
    assert added == "    - destination:\n        host: podinfo\n        subset: canary\n      weight: 10\n"


def test_single_destination_without_weight_gets_weights():
    # No weight key and no final newline.
    text = GUIDE_INITIAL.split("#", maxsplit=1)[0].replace("      weight: 100\n", "").rstrip("\n")
    editor = vs()
    assert editor.read(text) == Weights(stable=100, canary=0)
    out = editor.write(text, Weights.for_canary(25))
    assert editor.read(out) == Weights(stable=75, canary=25)
    assert out.startswith(text)


def test_comments_in_copied_entry_are_dropped():
    text = """kind: VirtualService
apiVersion: networking.istio.io/v1
metadata: {name: auth}
spec:
  http:
  - route:
    - destination:
        host: auth
        port:
          number: 80
        # This defines the 'stable' version of our service
        subset: stable
      weight: 100 # Send everything to stable
"""
    out = editor_for("VirtualService", stable="stable", canary="canary", source="a").write(
        text, Weights.for_canary(5)
    )
    assert out.endswith(
        "    - destination:\n        host: auth\n        port:\n          number: 80\n"
        "        subset: canary\n      weight: 5\n"
    )
    assert "weight: 95 # Send everything to stable" in out


def test_crlf_files_keep_crlf():
    text = GUIDE.replace("\n", "\r\n")
    out = vs().write(text, Weights.for_canary(50))
    assert out == text.replace("weight: 90", "weight: 50").replace("weight: 10", "weight: 50")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GUIDE.replace("weight: 10\n", "weight: 20\n"),
            r"apps/vs\.yaml: VirtualService test/podinfo http\[0\]: "
            r"weights must sum to 100",
        ),
        (
            GUIDE.replace("weight: 10\n", "weight: 110\n"),
            r"subset 'canary': weight must be between 0 and 100",
        ),
        (
            GUIDE.replace("weight: 10\n", "weight: '10'\n"),
            r"subset|destination 'canary': weight must be an integer",
        ),
        (GUIDE.replace("weight: 10\n", "weight: 1.5\n"), r"'canary': weight must be an integer"),
        (
            GUIDE.replace("subset: ga", "subset: gaa"),
            r"http\[0\]: no destination 'ga' \(found: 'gaa', 'canary'\)",
        ),
        (GUIDE.replace("  - route:", "  - route: [\n"), r"apps/vs\.yaml: malformed YAML"),
        ("kind: Service\napiVersion: v1\n", r"apps/vs\.yaml: no VirtualService with weighted routes"),
        (
            GUIDE.replace("networking.istio.io/v1alpha3\nkind: Virt", "networking.istio.io/v2\nkind: Virt"),
            r"unsupported apiVersion 'networking\.istio\.io/v2'",
        ),
    ],
)
def test_errors_name_file_route_and_subset(text, message):
    with pytest.raises(RouteError, match=message):
        vs().read(text)


def test_destination_rule_subsets_are_checked():
    text = GUIDE.replace("      - name: canary\n", "      - name: canari\n")
    with pytest.raises(
        RouteError, match=r"subset 'canary' is not declared by the DestinationRule \(declared: canari, ga\)"
    ):
        vs().read(text)
    alone = GUIDE.split("---", maxsplit=1)[0]
    assert vs(subsets={"ga", "canary"}).read(alone) == Weights(90, 10)
    with pytest.raises(RouteError, match="subset 'canary' is not declared"):
        vs(subsets={"ga"}).write(alone, Weights.for_canary(20))


def test_write_rejects_bad_weights():
    with pytest.raises(RouteError, match="sum to 100"):
        vs().write(GUIDE, Weights(50, 60))
    with pytest.raises(RouteError, match="weights must be a Weights"):
        vs().write(GUIDE, (50, 50))  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------------------------------


@st.composite
def vs_files(draw):
    """VirtualServices shaped like real ones, with random indentation, comments, quoting and separators."""
    seq_indent = draw(st.sampled_from(["", "  ", "    "]))
    map_indent = draw(st.sampled_from([2, 4]))
    comment = draw(st.sampled_from(["", "  # weight", " # x: 1"]))
    quote = draw(st.sampled_from(["", "'", '"']))
    lead = draw(st.sampled_from(["", "# leading comment\n", "---\n", "# c\n---\n"]))
    tail = draw(st.sampled_from(["", "\n", "\n\n", "# end\n", "---\n# next\n"]))
    other_doc = draw(st.booleans())
    i = " " * map_indent
    d = seq_indent + "- "
    pad = " " * len(d)
    body = (
        "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\n"
        f"metadata:\n{i}name: {quote}podinfo{quote}\n"
        f"spec:\n{i}hosts:\n{i}{d}podinfo\n{i}http:\n"
        f"{i}{d}route:\n"
        f"{i}{pad}{seq_indent}{d}destination:\n{i}{pad}{seq_indent}{pad}{i}host: podinfo\n"
        f"{i}{pad}{seq_indent}{pad}{i}subset: {quote}ga{quote}\n"
        f"{i}{pad}{seq_indent}{pad}weight: 50{comment}\n"
        f"{i}{pad}{seq_indent}{d}destination:\n{i}{pad}{seq_indent}{pad}{i}host: podinfo\n"
        f"{i}{pad}{seq_indent}{pad}{i}subset: {quote}canary{quote}\n"
        f"{i}{pad}{seq_indent}{pad}weight: 50\n"
    )
    if other_doc:
        body = "apiVersion: v1\nkind: Service\nmetadata:\n  name: podinfo\n---\n" + body
    return lead + body + tail


@given(vs_files(), st.integers(0, 100), st.integers(0, 100))
def test_property_read_write_round_trip_only_weights_change(text, first, second):
    editor = vs()
    assert editor.read(text) == Weights(50, 50)
    once = editor.write(text, Weights.for_canary(first))
    assert editor.read(once) == Weights.for_canary(first)
    assert_only_weights_changed(text, once)
    twice = editor.write(once, Weights.for_canary(second))
    assert editor.read(twice) == Weights.for_canary(second)
    assert_only_weights_changed(text, twice)
    assert editor.write(twice, Weights(50, 50)) == text


def test_commented_canary_above_the_stable_entry_is_uncommented():
    text = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: podinfo
spec:
  http:
  - route:
    # the canary, commented out until the first step:
#    - destination:
#        host: podinfo
#        subset: canary
#      weight: 0
    - destination:
        host: podinfo
        subset: ga
      weight: 100"""
    out = vs().write(text, Weights.for_canary(10))
    assert vs().read(out) == Weights(90, 10)
    changed = [(a, b) for a, b in zip(text.splitlines(), out.splitlines(), strict=True) if a != b]
    assert changed == [
        ("#    - destination:", "    - destination:"),
        ("#        host: podinfo", "        host: podinfo"),
        ("#        subset: canary", "        subset: canary"),
        ("#      weight: 0", "      weight: 10"),
        ("      weight: 100", "      weight: 90"),
    ]
    assert "# the canary, commented out" in out and not out.endswith("\n")


def test_a_third_destination_may_stay_at_zero_only():
    third = GUIDE.replace(
        "      weight: 10\n",
        "      weight: 10\n    - destination:\n        host: podinfo\n        subset: ga\n      weight: 0\n",
        1,
    ).replace("subset: ga\n      weight: 0", "subset: old\n      weight: 0")
    editor = vs(subsets={"ga", "canary", "old"})
    assert editor.read(third) == Weights(90, 10)
    assert editor.write(third, Weights.for_canary(30)).count("weight: 0\n") == 1
    heavy = third.replace("subset: old\n      weight: 0", "subset: old\n      weight: 5")
    for call in (lambda: editor.read(heavy), lambda: editor.write(heavy, Weights.for_canary(30))):
        with pytest.raises(
            RouteError, match=r"http\[0\]: subset 'old' carries weight 5; only 'ga' and 'canary' may"
        ):
            call()


def test_byte_order_mark_and_integer_spellings():
    editor = vs()
    bom = "\ufeff" + GUIDE
    assert editor.write(bom, Weights.for_canary(60)) == "\ufeff" + editor.write(GUIDE, Weights.for_canary(60))
    spelled = GUIDE.replace("weight: 10\n", "weight: 010\n").replace("weight: 90  #", "weight: 0x5A  #")
    assert editor.read(spelled) == Weights(90, 10)  # YAML 1.2: 010 is ten
    assert_only_weights_changed(spelled.replace("0x5A", "90"), editor.write(spelled, Weights.for_canary(60)))


@st.composite
def damaged(draw):
    """The guide's file with a random slice replaced by random text (typos, truncation, junk)."""
    text = draw(st.sampled_from([GUIDE, GUIDE_INITIAL, FLAGGER]))
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    junk = draw(
        st.text(alphabet=st.sampled_from(list(" -:#\n\t[]{}'\"&*!|>%@`0123456789abcweight")), max_size=12)
    )
    return text[:start] + junk + text[end:]


@given(damaged(), st.integers(0, 100))
def test_property_damaged_files_fail_only_with_route_errors(text, canary):
    for editor in (
        vs(),
        editor_for("VirtualService", stable="podinfo-primary", canary="podinfo-canary", source="f"),
    ):
        try:
            weights = editor.read(text)
        except RouteError as exc:
            assert str(exc).startswith(("apps/vs.yaml", "f:"))
            continue
        try:
            out = editor.write(text, Weights.for_canary(canary))
        except RouteError:
            continue
        assert editor.read(out) == Weights.for_canary(canary)
        assert editor.write(out, weights) == text or weights.canary == 0
