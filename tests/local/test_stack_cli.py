"""``python -m rollouts.local.stack``'s command line, as docs/local-stack.md writes it."""

from __future__ import annotations

import pytest

from rollouts.local.stack import parse_args


def test_documented_canary_args_parse() -> None:
    """Regression: ``--canary-args '--error-rate=0.05'`` (the documented call) exited 2."""
    args = parse_args(["--canary-weight", "10", "--canary-args", "--error-rate=0.05 --latency-factor=1.5"])
    assert args.canary_weight == 10
    assert args.canary_args.split() == ["--error-rate=0.05", "--latency-factor=1.5"]
    assert parse_args(["--canary-args=--seed=3"]).canary_args == "--seed=3"


def test_bad_weight_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--canary-weight", "101"])
    assert exc.value.code == 2
    assert "--canary-weight must be 0-100, got 101" in capsys.readouterr().err


def test_unknown_canary_flag_is_a_usage_error_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Regression: a bad --canary-args flag ended in a ProcessError traceback after Prometheus started."""
    with pytest.raises(SystemExit) as exc:
        parse_args(["--canary-args", "--bogus"])
    assert exc.value.code == 2
    assert "--canary-args: error: unrecognized arguments: --bogus" in capsys.readouterr().err
