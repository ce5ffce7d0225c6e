"""Policy: documented defaults, unknown keys and bad values named, files."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer import Policy, PolicyError


def test_defaults() -> None:
    p = Policy()
    assert p.alpha == 0.01
    assert p.harm_threshold == pytest.approx(100)
    assert p.safety_threshold == pytest.approx(20)
    assert p.slo_p99 is None and p.slo_error_rate is None
    assert p.on_max_windows == "pause"
    assert p.harm_weights.errors + p.harm_weights.latency + p.harm_weights.tail == pytest.approx(1)


def test_unknown_key_is_named() -> None:
    with pytest.raises(PolicyError, match="unknown key 'alpah'"):
        Policy.from_mapping({"alpah": 0.05})
    with pytest.raises(PolicyError, match=r"unknown key 'harm_weights\.latncy'"):
        Policy.from_mapping({"harm_weights": {"latncy": 0.5}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"alpha": 1.5}, "'alpha': Input should be less than 1"),
        ({"on_max_windows": "promote"}, "'on_max_windows'"),
        ({"harm_weights": {"errors": 0.5, "latency": 0.1, "tail": 0.1}}, "must sum to 1"),
        ({"error_margin_ratio": 0.5}, "'error_margin_ratio'"),
    ],
)
def test_bad_values_are_named(data, message) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.from_mapping(data)


def test_from_file_yaml_and_json(tmp_path: Path) -> None:
    y = tmp_path / "p.yaml"
    y.write_text("alpha: 0.05\nslo_p99: 0.5\nharm_weights: {errors: 0.5, latency: 0.25, tail: 0.25}\n")
    p = Policy.from_file(y)
    assert (p.alpha, p.slo_p99, p.harm_weights.tail) == (0.05, 0.5, 0.25)
    j = tmp_path / "p.json"
    j.write_text('{"max_windows_per_step": 5, "on_max_windows": "rollback"}')
    assert Policy.from_file(j).max_windows_per_step == 5
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(PolicyError, match="expected a mapping"):
        Policy.from_file(bad)
    with pytest.raises(PolicyError, match="cannot read policy file"):
        Policy.from_file(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert Policy.from_file(empty) == Policy()


def test_round_one_policy_files_keep_working(tmp_path: Path) -> None:
    """Every key of the round-1 policy is still a key; their values are read as before."""
    old = {
        "alpha": 0.02, "promote_alpha": 0.1, "harm_weights": {"errors": 0.6, "latency": 0.2, "tail": 0.2},
        "harm_error_ratio": 1.0, "harm_latency_margin": 0.0, "error_margin_ratio": 2.0,
        "error_margin_abs": 0.005, "latency_margin": 0.05, "tail_quantile": 0.95, "tail_bound": 0.25,
        "tail_margin_ratio": 2.0, "tail_margin_abs": 0.005, "tail_min_baseline": 50, "slo_p99": 0.5,
        "slo_error_rate": 0.05, "slo_min_requests": 20, "min_windows": 3, "min_canary_requests": 50,
        "max_windows_per_step": 20, "on_max_windows": "rollback", "latency_min_batch": 10, "latency_tau": 0.2,
    }  # fmt: skip
    p = Policy.from_mapping(old)
    assert {k: getattr(p, k) for k in old if k != "harm_weights"} == {
        k: v for k, v in old.items() if k != "harm_weights"
    }
    assert p.harm_error_ratio == 1.0 and p.harm_latency_margin == 0.0  # an explicit old value wins


def test_new_keys_and_their_bounds() -> None:
    p = Policy()
    assert p.harm_error_ratio == 1.1 and p.harm_latency_margin == 0.02 and p.harm_tail_ratio == 1.5
    assert p.window_latency_log_sd == 0.05 and p.window_error_cv == 0.5
    assert p.step_safety_threshold == pytest.approx(2.0) and p.safety_threshold == pytest.approx(20.0)
    with pytest.raises(PolicyError, match="'safety_carry'"):
        Policy.from_mapping({"safety_carry": 1.5})
    with pytest.raises(PolicyError, match="'window_error_cv'"):
        Policy.from_mapping({"window_error_cv": -1})
    # An intermediate step never needs more evidence than the last one.
    assert Policy(step_promote_alpha=0.01).step_safety_threshold == pytest.approx(20.0)
