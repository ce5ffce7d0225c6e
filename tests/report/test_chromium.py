"""The page in a real browser: headless Chromium loads it without errors, and its screenshot shows the
charts (the Debian package ``chromium``; `make system` installs it)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from rollouts.report.render import CANARY_COLOR, CSP, TEST_COLORS
from tests.report.scenario import HUMAN_SUBJECT
from tests.support import require_binary

pytestmark = pytest.mark.integration

WIDTH, HEIGHT = 1280, 2000
# Runs after every image decoded (the load event) and writes what it found into the DOM for --dump-dom.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map((i) => {
    const r = i.getBoundingClientRect();
    return {id: i.id, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight, complete: i.complete,
            left: r.left + scrollX, top: r.top + scrollY, width: r.width, height: r.height};
  });
  document.documentElement.setAttribute("data-probe", JSON.stringify(images));
});
</script>"""


def chromium(binary: str, profile: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run, offline and quiet; console messages go to stderr."""
    argv = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        url,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)


def console_lines(stderr: str) -> list[str]:
    """The page's console output (errors, CSP violations, failed loads): a clean page logs nothing."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@dataclass(frozen=True)
class Browser:
    binary: str
    root: Path
    page: Path  # the report as written
    probe: Path  # the same report with the probe script
    images: dict[str, dict[str, Any]]  # what the probe found: id -> size, position, decoded
    probe_console: list[str]


@pytest.fixture(scope="module")
def browser(built, tmp_path_factory):
    binary = require_binary("chromium", "Debian package chromium; `make system` installs it")
    root = tmp_path_factory.mktemp("chromium")
    page = root / "report"
    shutil.copytree(built.directory, page)
    # The probe copy: the same page plus the probe script, which the page's own CSP (no scripts at
    # all) would block; the layout is the same, the script renders nothing.
    probe = root / "probe"
    shutil.copytree(built.directory, probe)
    text = (probe / "index.html").read_text()
    assert CSP in text
    text = text.replace(CSP, CSP + "; script-src 'unsafe-inline'").replace("</body>", PROBE + "</body>")
    (probe / "index.html").write_text(text)
    done = chromium(binary, root / "profile-probe", (probe / "index.html").as_uri(), "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<html[^>]* data-probe="([^"]*)"', done.stdout)
    assert found is not None, "the probe did not run"
    images = {i["id"]: i for i in json.loads(html.unescape(found[1]))}
    return Browser(binary, root, page, probe, images, console_lines(done.stderr))


def test_page_loads_without_errors_and_keeps_the_message_as_text(browser):
    done = chromium(
        browser.binary, browser.root / "profile-dom", (browser.page / "index.html").as_uri(), "--dump-dom"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_lines(done.stderr) == []
    dom = done.stdout
    assert "Rollout test/podinfo" in dom
    assert "<script" not in dom.lower()  # the commit message's <script> never became an element
    assert html.escape(HUMAN_SUBJECT, quote=False) in dom


def test_every_chart_decodes_at_its_size(browser):
    assert browser.probe_console == []
    assert sorted(browser.images) == ["chart-errors", "chart-evidence", "chart-latency", "chart-weights"]
    for name, image in browser.images.items():
        png = Image.open(browser.probe / f"{name.removeprefix('chart-')}.png")
        assert image["complete"] and (image["naturalWidth"], image["naturalHeight"]) == png.size, name


def test_screenshot_shows_the_charts(browser):
    shot = browser.root / "screenshot.png"
    url = (browser.page / "index.html").as_uri()
    done = chromium(browser.binary, browser.root / "profile-shot", url, f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_lines(done.stderr) == []
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape == (HEIGHT, WIDTH, 3)

    def rgb(color: str) -> np.ndarray:
        return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])

    # Each chart's own ink: the canary's series on the subset charts; on the evidence chart (e-values
    # per test, no subsets), the latency e-process, which every judged window has.
    colours = {name: rgb(CANARY_COLOR) for name in browser.images}
    colours["chart-evidence"] = rgb(TEST_COLORS["latency"])
    visible = 0
    for name, box in browser.images.items():  # where the probe run of the same page put each chart
        left, top = int(box["left"]), int(box["top"])
        right, bottom = left + int(box["width"]), min(top + int(box["height"]), HEIGHT)
        if bottom - top < 100:
            continue  # below the fold
        visible += 1
        region = image[top:bottom, left:right]
        ink = float((region.min(axis=2) < 200).mean())
        series = int((np.abs(region - colours[name]).max(axis=2) < 40).sum())
        assert ink > 0.01, f"{name}: only {ink:.1%} of the chart area is drawn"
        assert series > 100, f"{name}: none of its series' colour drawn ({series} pixels)"
    assert visible >= 2, "the charts should be above the fold"
    # Text above the charts: the page rendered, not only the images.
    assert (image[:60].min(axis=2) < 100).sum() > 200
