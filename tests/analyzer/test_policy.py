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
