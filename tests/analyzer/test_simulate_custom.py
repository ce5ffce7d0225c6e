"""The custom-metric planner: an identical canary passes, a regression rolls back, input errors."""

from __future__ import annotations

import pytest

from analyzer.cli import main
from analyzer.policy import Policy
from analyzer.simulate_custom import CustomScenario, plan


def test_identical_passes_and_regression_rolls_back():
    same = plan(CustomScenario.parse("lag:ga=0.4/0.04,canary=0.4/0.04"), Policy(), rollouts=60, seed=2)
    assert same.passed >= 0.9 and same.rolled_back == 0 and same.median_windows >= Policy().min_windows
    worse = plan(CustomScenario.parse("lag:ga=0.4/0.04,canary=0.72/0.04"), Policy(), rollouts=60, seed=2)
    assert worse.rolled_back == 1.0 and worse.passed == 0
    assert same.alpha == pytest.approx(Policy().alpha / 2)
    noisier = plan(CustomScenario.parse("lag:ga=0.4/0.12,canary=0.4/0.12"), Policy(), rollouts=60, seed=2)
    assert noisier.median_windows > same.median_windows  # more variation, longer to show


@pytest.mark.parametrize(
    "text",
    ["lag", "lag:ga=0.4", "lag:ga=0/0.1,canary=1/0.1", "lag:ga=1/0.1,canary=1/0.1,direction=up", "Lag:x"],
)
def test_bad_scenarios_name_the_problem(text):
    with pytest.raises(ValueError, match="--custom"):
        CustomScenario.parse(text)


def test_cli_prints_the_plan(capsys):
    assert main(["simulate", "--custom", "queue-lag:ga=0.4/0.02,canary=0.4/0.02", "--rollouts", "20"]) == 0
    out = capsys.readouterr().out
    assert "queue-lag" in out and "windows to pass" in out
