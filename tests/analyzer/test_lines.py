"""The input lines of ``analyzer judge`` (pydantic models in ``analyzer.lines``): hostile lines get
an error answer naming the line and the field, and judging goes on."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.cli import run_judge
from analyzer.lines import MAX_LINE_CHARS, InputError, bounded_lines, parse_window
from analyzer.policy import Policy
from tests.analyzer.test_cli import ANALYZER, _line


def _judge(lines: list[str]) -> list[dict[str, Any]]:
    out = io.StringIO()
    run_judge(lines, out, Policy())
    return [json.loads(x) for x in out.getvalue().splitlines()]


def _error(line: str) -> str:
    with pytest.raises(InputError) as caught:
        parse_window(line)
    return str(caught.value)


def test_a_3000_deep_line_is_answered_and_the_process_goes_on() -> None:
    lines = ["[" * 3000, '{"rollout": "a", "weight": ' + "[" * 3000, _line("a")]
    result = subprocess.run(
        [*ANALYZER, "judge"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(x) for x in result.stdout.splitlines()]
    assert [a.get("line") for a in answers] == [1, 2, None]
    assert answers[0] == {"rollout": None, "line": 1, "error": "not valid JSON here: nested too deeply"}
    assert answers[1]["error"] == "not valid JSON here: nested too deeply"
    assert answers[2]["rollout"] == "a" and answers[2]["action"] == "hold"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"weight": 2**53 + 1}, "weight is too large: 9007199254740993 > 2**53"),
        ({"canary__requests": -(2**60)}, "canary.requests is too large: -1152921504606846976 > 2**53"),
        ({"canary__errors": "9007199254740993"}, "canary.errors is too large: 9007199254740993 > 2**53"),
        ({"canary__errors": "1" * 60}, "canary.errors is too large: an integer of 60 digits > 2**53"),
        ({"canary__errors": "9" * 5000}, "canary.errors is too large: an integer of 5000 digits > 2**53"),
        ({"baseline__buckets": [0] * 4 + [2**54] + [0] * 7}, "baseline.buckets[4] is too large"),
        ({"weight": True}, "weight must be a number, got true"),
        ({"weight": "ten"}, 'weight is not a number: "ten"'),
        ({"weight": None}, "weight must be a number, got null"),
        ({"canary__le": "x"}, "canary.le must be a list"),
        ({"canary__le": [{"a": 1}]}, "canary.le[0] must be a number, got an object"),
        ({"canary": [1, 2]}, "canary must be an object with le, buckets, requests, errors"),
        ({"canary__extra": 1}, "canary: unknown key 'extra'"),
    ],
)
def test_errors_name_the_field(overrides: dict[str, Any], message: str) -> None:
    assert _error(_line("a", **overrides)).startswith(message)


def test_integers_up_to_2_53_are_exact_numbers() -> None:
    limit = 2**53
    rollout, window = parse_window(_line("a", canary__requests=limit, canary__errors=limit))
    assert rollout == "a" and window.canary.requests == float(limit)


def test_a_missing_subset_key_and_several_problems_are_all_named() -> None:
    data = json.loads(_line("a"))
    del data["canary"]["le"]
    data["weight"] = "x"
    assert _error(json.dumps(data)) == 'weight is not a number: "x"; canary.le is missing'


def test_an_error_never_echoes_a_long_input() -> None:
    message = _error(_line("a", weight="9" * 10_000 + "x"))
    assert message.startswith("weight is not a number: ") and len(message) < 100


def test_every_error_names_its_line_and_the_rollout_when_it_has_one() -> None:
    answers = _judge([_line("a"), _line("b", canary__errors=-1), "nope", _line("a")])
    assert [a.get("line") for a in answers] == [None, 2, 3, None]
    assert answers[1]["rollout"] == "b" and answers[1]["error"].startswith("canary.errors")
    assert answers[2] == {"rollout": None, "line": 3, "error": "not valid JSON: Expecting value at column 1"}
    assert answers[3]["evidence"]["rollout_windows"] == 2


def test_an_overlong_line_is_refused_without_being_kept_whole() -> None:
    huge = '{"rollout": "' + "x" * (3 * MAX_LINE_CHARS) + '"}'
    stream = io.StringIO(huge + "\n" + _line("a") + "\n")
    lines = list(bounded_lines(stream))
    assert len(lines) == 2 and len(lines[0]) == MAX_LINE_CHARS + 1
    answers = _judge(lines)
    assert answers[0] == {
        "rollout": None,
        "line": 1,
        "error": f"line longer than {MAX_LINE_CHARS} characters",
    }
    assert answers[1]["rollout"] == "a" and "action" in answers[1]


def test_lines_of_exactly_the_limit_are_read_whole() -> None:
    line = " " * (MAX_LINE_CHARS - len(_line("a"))) + _line("a")
    assert len(line) == MAX_LINE_CHARS
    lines = list(bounded_lines(io.StringIO(line + "\n" + line)))
    assert lines == [line + "\n", line]
    assert all("action" in answer for answer in _judge(lines))


def test_a_line_of_many_bad_numbers_names_the_first_few() -> None:
    message = _error(_line("a", canary__buckets=["x"] * 50_000))
    assert message.startswith('canary.buckets[0] is not a number: "x"; canary.buckets[1]')
    assert message.endswith("; and 49995 more") and len(message) < 500


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["+Inf", "-Inf", "NaN", "1e999", "9007199254740993", "0x10"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=40,
)
_FIELDS = ("rollout", "weight", "baseline", "canary", "baseline.le", "canary.buckets", "canary.errors")


@st.composite
def _hostile_line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["mutated", "json", "text", "deep"]))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "deep":
        depth = draw(st.integers(min_value=1, max_value=20_000))
        opener = draw(st.sampled_from(["[", '{"a":', '{"rollout": "a", "canary": {"le": ']))
        return opener * depth
    if kind == "json":
        return json.dumps(draw(_JSON))
    data = json.loads(_line("a"))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        field = draw(st.sampled_from(_FIELDS))
        side, _, key = field.partition(".")
        target = data[side] if key and isinstance(data.get(side), dict) else data
        target[key or side] = draw(_JSON)
    return json.dumps(data)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_hostile_line(), min_size=1, max_size=6))
def test_whatever_the_lines_hold_each_gets_one_answer_and_judging_goes_on(lines: list[str]) -> None:
    started = time.monotonic()
    answers = _judge([*lines, _line("sentinel")])
    assert time.monotonic() - started < 5
    assert len(answers) == len(lines) + 1
    for number, answer in enumerate(answers[:-1], start=1):
        assert ("action" in answer) != ("error" in answer), answer
        if "error" in answer:
            assert answer["line"] == number
            assert not answer["error"].startswith("internal error"), answer
            assert len(answer["error"]) < 2000
    assert answers[-1]["rollout"] == "sentinel" and "action" in answers[-1]


def test_the_cli_imports_no_statistics_before_a_line_arrives() -> None:
    probe = "import sys, analyzer.cli; print(sorted(m for m in ('numpy', 'scipy') if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
