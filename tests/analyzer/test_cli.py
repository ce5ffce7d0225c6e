"""``analyzer judge`` and ``analyzer simulate`` as users run them: subprocesses, JSON lines."""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from analyzer.cli import main, run_judge
from analyzer.policy import Policy
from tests.analyzer.windows import make_window

LE = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, "+Inf"]
ANALYZER = [sys.executable, "-m", "analyzer.cli"]


def _line(rollout: str | None, weight: float = 10, **overrides) -> str:
    data = {
        "rollout": rollout,
        "weight": weight,
        "baseline": {
            "le": LE,
            "buckets": [0, 3, 40, 300, 800, 1100, 1170, 1180, 1180, 1180, 1180, 1180],
            "requests": 1180,
            "errors": 4,
        },
        "canary": {
            "le": LE,
            "buckets": [0, 0, 5, 30, 90, 120, 128, 130, 130, 130, 130, 130],
            "requests": 130,
            "errors": 0,
        },
    }
    for key, value in overrides.items():
        side, _, field = key.partition("__")
        if field:
            data[side][field] = value
        else:
            data[side] = value
    return json.dumps(data)


def test_judge_subprocess_answers_each_line_at_once() -> None:
    """A driver can send a window and read its verdict before sending the next."""
    proc = subprocess.Popen(
        [*ANALYZER, "judge"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(_line("test/podinfo") + "\n")
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())  # blocks only if the answer was not flushed
        assert first["rollout"] == "test/podinfo"
        assert first["action"] == "hold"
        assert any("min_windows" in r for r in first["reasons"])
        assert first["evidence"]["canary_requests"] == 130
        proc.stdin.write("{not json\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()) == {
            "rollout": None,
            "line": 2,
            "error": "not valid JSON: Expecting property name enclosed in double quotes at column 2",
        }
    finally:
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out == ""


def test_judge_errors_name_the_field_and_processing_goes_on() -> None:
    lines = [
        _line("a", canary__le=[0.1, 0.2, "+Inf"], canary__buckets=[1, 2, 3]),
        _line("a", canary__buckets=[0, 0, 5, 30, math.nan, 120, 128, 130, 130, 130, 130, 130]),
        _line("a", canary__errors=200),
        _line("a", canary__requests=-1),
        _line("b", baseline__le=LE[:-1], baseline__buckets=[0] * 11),
        _line(None),
        json.dumps({**json.loads(_line("a")), "extra": 1}),
        json.dumps({k: v for k, v in json.loads(_line("a")).items() if k != "weight"}),
        "[1, 2]",
        _line("a"),
    ]
    out = io.StringIO()
    errors = run_judge(lines, out, Policy())
    answers = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(answers) == len(lines)
    assert errors == len(lines) - 1
    messages = [a.get("error", "") for a in answers]
    assert messages[0] == "canary.le differs from baseline.le: both subsets need the same bucket bounds"
    assert messages[1].startswith("canary.buckets[4] (le=0.1) is NaN")
    assert messages[2] == "canary.errors (200) exceed requests (130)"
    assert messages[3] == "canary.requests is negative: -1.0"
    assert messages[4] == "baseline.le: the last bound must be +Inf, got 10.0"
    assert answers[4]["rollout"] == "b"
    assert messages[5] == "rollout must be a non-empty string" and answers[5]["rollout"] is None
    assert messages[6] == "unknown key 'extra'"
    assert messages[7] == "weight is missing"
    assert messages[8] == "each line must be a JSON object"
    assert answers[-1]["action"] == "hold" and answers[-1]["evidence"]["rollout_windows"] == 1


def test_judge_keeps_evidence_per_rollout_and_new_step_on_weight_change() -> None:
    rng = np.random.default_rng(2)

    def as_line(rollout: str, weight: float) -> str:
        w = make_window(rng, weight)
        side = lambda s: {  # noqa: E731
            "le": [b if math.isfinite(b) else "+Inf" for b in s.histogram.bounds],
            "buckets": list(s.histogram.cumulative),
            "requests": s.requests,
            "errors": s.errors,
        }
        return json.dumps(
            {"rollout": rollout, "weight": weight, "baseline": side(w.baseline), "canary": side(w.canary)}
        )

    lines = [as_line("x", 10), as_line("y", 10), as_line("x", 10), as_line("x", 60)]
    out = io.StringIO()
    assert run_judge(lines, out, Policy()) == 0
    ev = [json.loads(x)["evidence"] for x in out.getvalue().splitlines()]
    assert [e["rollout_windows"] for e in ev] == [1, 1, 2, 3]
    assert [e["step_windows"] for e in ev] == [1, 1, 2, 1]


def test_policy_file_errors_exit_2_naming_the_key(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("alpha: 0.05\nmax_window_per_step: 3\n")
    result = subprocess.run(
        [*ANALYZER, "judge", "--policy", str(policy)],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown key 'max_window_per_step'" in result.stderr
    assert result.stdout == ""


def test_simulate_subprocess_prints_the_rules_side_by_side() -> None:
    result = subprocess.run(
        [*ANALYZER, "simulate", "--rollouts", "20", "--seed", "3", "--scenario", "slow:latency=2", "--json"],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert [r["rule"] for r in rows] == ["judge", "flagger", "kayenta"]
    by_rule = {r["rule"]: r for r in rows}
    assert by_rule["judge"]["rolled_back"] == 1.0
    assert by_rule["flagger"]["rolled_back"] < 0.5  # a fixed 500 ms ceiling does not see a 2x slowdown


def test_simulate_table(capsys) -> None:
    assert main(["simulate", "--rollouts", "5", "--scenario", "identical"]) == 0
    out = capsys.readouterr().out
    assert "identical" in out and "kayenta" in out and "rolled back" in out


def test_simulate_bad_arguments_exit_2() -> None:
    result = subprocess.run(
        [*ANALYZER, "simulate", "--scenario", "x:speed=2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown key 'speed'" in result.stderr


def test_simulate_from_a_ga_histogram_file(tmp_path: Path, capsys) -> None:
    ga = tmp_path / "ga.json"
    ga.write_text(
        json.dumps({"le": LE, "buckets": [0, 3, 40, 300, 800, 1100, 1170, 1180, 1180, 1180, 1180, 1180]})
    )
    code = main(
        ["simulate", "--ga-histogram", str(ga), "--rollouts", "10", "--scenario", "slow:latency=2", "--json"]
    )
    assert code == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {r["rule"]: r["rolled_back"] for r in rows}["judge"] == 1.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"le": [0.1, 1], "buckets": [1, 2]}))
    assert main(["simulate", "--ga-histogram", str(bad), "--rollouts", "1"]) == 2
    assert "last bound must be +Inf" in capsys.readouterr().err


def test_judge_huge_numbers_are_errors_naming_the_field_not_a_crash() -> None:
    """Regression: an integer beyond float range, or counts overflowing the e-values, killed the process."""
    big = [0, 0, 5, 30, 90, 120, 128, 130, 130, 130, 130, 130]
    lines = [
        _line("a", canary__requests=10**400),
        _line("a", canary__requests=1e308, canary__errors=1e308),
        _line("a", canary__buckets=[x * 1e100 for x in big]),
        _line("a"),
    ]
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
    assert len(answers) == len(lines)
    # The number is not echoed: a JSON integer may have thousands of digits.
    assert answers[0] == {
        "rollout": "a",
        "line": 1,
        "error": "canary.requests is too large: an integer of 401 digits > 2**53 "
        "(it would be rounded as a float)",
    }
    assert answers[1]["error"] == "canary.requests is too large: 1e+308 > 2**53"
    assert answers[2]["error"].startswith("canary.histogram total is too large")
    # The refused windows changed nothing: the good line is the rollout's first window.
    assert answers[3]["action"] == "hold" and answers[3]["evidence"]["rollout_windows"] == 1


def test_simulate_odd_arguments_exit_2_naming_the_flag() -> None:
    """Regression: these ran (or died in numpy with a message naming nothing) instead of being refused."""
    cases = {
        ("--rate", "nan"): "rate must be a finite number > 0",
        ("--steps", "10,10,100"): "steps must be strictly ascending",
        ("--buckets", "0.1,0.05"): "bucket bounds must be strictly ascending",
        ("--flagger-success", "2"): "flagger_success must be in [0, 1]",
        ("--kayenta-alpha", "0"): "kayenta_alpha must be in (0, 1)",
        ("--flagger-threshold", "0"): "flagger_threshold must be >= 1",
        ("--scenario", "x:latency=nan"): "latency must be > 0",
        ("--ga-median", "nan"): "lognormal median and sigma must be > 0",
    }
    for args, message in cases.items():
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["simulate", "--rollouts", "2", *args])
        assert code == 2, args
        assert message in err.getvalue(), (args, err.getvalue())
        assert out.getvalue() == "", args


def test_judge_refusals_after_parsing_name_the_rollout() -> None:
    """Regression: an error raised by the judge itself (bounds changed) answered ``"rollout": null``."""
    le = [0.1, 0.5, "+Inf"]
    subset = {"le": le, "buckets": [1, 2, 3], "requests": 3, "errors": 0}
    other = json.dumps({"rollout": "a", "weight": 10, "baseline": subset, "canary": subset})
    out = io.StringIO()
    assert run_judge([_line("a"), other], out, Policy()) == 1
    answer = json.loads(out.getvalue().splitlines()[1])
    assert answer["rollout"] == "a"
    assert answer["error"].startswith("histogram bounds changed during the rollout")
