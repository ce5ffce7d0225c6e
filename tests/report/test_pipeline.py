"""``rollouts report PIPELINE.yaml``: one lane per environment from the Git history of both repos.

The world of :mod:`tests.pipeline.world` (two bare repositories): 0.2.0 walks staging, is handed over
after its soak and walks production; 0.2.1 is rolled back in staging with a reason that is markup.
The page must show each revision's stay in each lane with the time it entered, and escape the reason.
"""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rollouts.cli import main
from rollouts.report.pipeline import KIND_COLORS, OUTCOME_COLORS, pipeline_timeline
from rollouts.routes import Weights
from rollouts.state import CommitVerdict, WeightChange
from tests.fixtures.gitrepo import GUIDE_CANARY, git
from tests.pipeline.world import _git_isolated, deployment, runner_at, walk, world
from tests.report.test_chromium import chromium, console_lines
from tests.support import require_binary

__all__ = ["_git_isolated", "world"]  # the fixtures, used below

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


class Lanes(HTMLParser):
    """The lanes of the page: environment -> [(revision, outcome, left %, width %)], and the marks."""

    def __init__(self) -> None:
        super().__init__()
        self.lanes: dict[str, list[tuple[str, str, float, float]]] = {}
        self.marks: dict[str, list[tuple[str, str]]] = {}
        self.tags: list[str] = []
        self._lane: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if "lane" in classes:
            self._lane = a["data-environment"]
            assert self._lane is not None
            self.lanes[self._lane] = []
            self.marks[self._lane] = []
        elif "stay" in classes and self._lane:
            style = a["style"] or ""
            left = float(re.search(r"left:([\d.]+)%", style)[1])  # type: ignore[index]
            width = float(re.search(r"width:([\d.]+)%", style)[1])  # type: ignore[index]
            self.lanes[self._lane].append((a["data-revision"] or "", a["data-outcome"] or "", left, width))
        elif "mark" in classes and self._lane:
            self.marks[self._lane].append((a["data-kind"] or "", a["data-revision"] or ""))


def _walk_the_story(loaded, workspaces, staging, production) -> datetime:
    """0.2.0 through both environments, then 0.2.1 rolled back in staging; returns the hand-over time."""
    walk(workspaces["staging"], loaded.stages[0].rollout)
    finalized = datetime.fromtimestamp(int(git(staging.bare, "log", "-1", "--format=%ct", "master")), UTC)
    time.sleep(1.1)  # commit times have a resolution of one second: the hand-over comes after
    tick = runner_at(loaded, workspaces, finalized + timedelta(minutes=11)).tick()
    assert [h.outcome for h in tick.handovers] == ["pushed"]
    handed = datetime.fromtimestamp(int(git(production.bare, "log", "-1", "--format=%ct", "master")), UTC)
    time.sleep(1.1)  # commit times have a resolution of one second
    walk(workspaces["production"], loaded.stages[1].rollout)
    staging.commit_file(GUIDE_CANARY, deployment("0.2.1"), "podinfo-canary: 0.2.1")
    rollout = loaded.stages[0].rollout
    ws = workspaces["staging"]
    ws.commit_weights(
        rollout, WeightChange(Weights.for_canary(10), CommitVerdict.PROMOTE, ("step 1",), step="1/3")
    )
    ws.commit_weights(
        rollout, WeightChange(Weights.for_canary(0), CommitVerdict.ROLLBACK, (HOSTILE,), step="1/3")
    )
    return handed


def test_the_report_draws_one_lane_per_environment(world, tmp_path: Path, capsys) -> None:
    loaded, workspaces, staging, production, specs = world
    handed = _walk_the_story(loaded, workspaces, staging, production)
    out = tmp_path / "reports"
    argv = ["report", str(specs / "pipeline.yaml"), "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    code = main(argv)
    assert code == 0, capsys.readouterr().err
    assert "pipeline report with 2 lane(s), 3 stay(s)" in capsys.readouterr().out
    page = (out / "test_podinfo" / "index.html").read_text()
    parser = Lanes()
    parser.feed(page)

    assert list(parser.lanes) == ["staging", "production"]
    staging_lane = {rev: (outcome, left, width) for rev, outcome, left, width in parser.lanes["staging"]}
    assert staging_lane["0.2.0"][0] == "finalized" and staging_lane["0.2.1"][0] == "rolled back"
    ((revision, outcome, left, width),) = parser.lanes["production"]
    assert (revision, outcome) == ("0.2.0", "finalized")
    # Production's bar starts where staging's 0.2.0 ended (plus the soak the test skipped): later.
    assert left > staging_lane["0.2.0"][1] and 0 < width <= 100 - left + 0.01
    assert ("handover", "0.2.0") in parser.marks["production"]
    assert [k for k, r in parser.marks["staging"] if r == "0.2.1"] == ["start", "rollback"]
    # The time 0.2.0 entered production is the hand-over commit's, in production's table.
    row = re.search(r'<table class="stays" id="stays-production">.*?</table>', page, re.S)
    assert row is not None and handed.strftime("%Y-%m-%d %H:%M:%S") in row[0]
    # The line stopped, and why; the reason is text, never markup.
    assert "0.2.1 stopped in staging" in page
    assert "<script>" not in page and "<img" not in page and "onerror=alert(1)>" not in page
    assert html.escape(HOSTILE, quote=True) in page
    assert "script" not in parser.tags and "img" not in parser.tags


def test_the_lanes_are_pure_and_ordered(world) -> None:
    loaded, workspaces, staging, production, _ = world
    _walk_the_story(loaded, workspaces, staging, production)
    runner = runner_at(loaded, workspaces, datetime.now(UTC))
    facts, _ = runner.read()
    from rollouts.pipeline.plan import plan

    now = datetime.now(UTC) + timedelta(minutes=30)
    timeline = pipeline_timeline(runner.key, facts, plan(loaded.pipeline, facts, now), now=now)
    assert timeline.end == now and timeline.start == min(e.at for f in facts for e in f.events)
    for lane in timeline.lanes:
        for stay in lane.stays:
            assert 0 <= stay.left <= 100 and stay.left + stay.width <= 100.5
            assert stay.ended is None or stay.ended >= stay.entered
    (staged, production_lane) = timeline.lanes
    first = next(s for s in staged.stays if s.revision == "0.2.0")
    entered = next(s for s in production_lane.stays if s.revision == "0.2.0")
    assert first.handed_over == entered.entered  # handed over from staging = entered production
    assert first.ended is not None and entered.entered > first.ended


@pytest.mark.integration
def test_the_lanes_in_a_real_browser(world, tmp_path: Path) -> None:
    """Headless Chromium loads the page with no console message (CSP included) and draws the bars:
    a finalized bar in each lane, a rolled-back one in staging's."""
    binary = require_binary("chromium", "Debian package chromium; `make system` installs it")
    loaded, workspaces, staging, production, specs = world
    _walk_the_story(loaded, workspaces, staging, production)
    out = tmp_path / "reports"
    argv = ["report", str(specs / "pipeline.yaml"), "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    assert main(argv) == 0
    url = (out / "test_podinfo" / "index.html").as_uri()
    dom = chromium(binary, tmp_path / "profile-dom", url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_lines(dom.stderr) == []
    assert 'id="lane-production"' in dom.stdout and "<script" not in dom.stdout.lower()
    shot = tmp_path / "shot.png"
    done = chromium(binary, tmp_path / "profile-shot", url, f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)

    def pixels(color: str) -> int:
        rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(image[:400] - rgb).max(axis=2) < 8).sum())  # the lanes are at the top

    assert pixels(OUTCOME_COLORS["finalized"]) > 200  # 0.2.0's bars, in both lanes
    assert pixels(OUTCOME_COLORS["rolled back"]) > 20  # 0.2.1's, in staging
    assert pixels(KIND_COLORS["handover"]) > 20  # the hand-over mark in production's lane


def test_bad_arguments_are_named_and_nothing_is_written(world, tmp_path: Path, capsys) -> None:
    _loaded, _ws, _staging, _production, specs = world
    out = tmp_path / "reports"
    argv = ["report", str(specs / "pipeline.yaml"), "--out", str(out), "--since", "1h", "--until", "2h"]
    assert main(argv) == 1
    assert "--until" in capsys.readouterr().err and not out.exists()
    (specs / "production.yaml").unlink()
    assert main(["report", str(specs / "pipeline.yaml"), "--out", str(out)]) == 1
    assert "spec.environments[1].rollout" in capsys.readouterr().err and not out.exists()
