"""``rollouts demo``: the guide's story on one machine, hands off, in a few minutes.

It starts the local stack (Prometheus, GA and canary podinfo-compatible services, the mesh that
follows a bare Git repo laid out like the guide's), puts the canary and GA manifests and a Rollout
spec into the repo, and runs the controller on it (spec discovered from Git, load from a local
``loadtest serve``). A small "kubelet" plays Kubernetes: when the image of the canary or GA manifest
changes in Git it restarts that service with the version's behaviour.

Scenarios: ``good`` (0.2.0 walks 10 -> 60 -> 100 %, then ``finalize: promote-ga``: GA gets 0.2.0 and
the traffic goes back to GA), ``slow`` (0.2.1, three times slower: rolled back), ``errors`` (0.2.2,
8 % errors: rolled back), ``all`` (good, then image automation commits 0.2.1, then 0.2.2),
``switchback`` (blue/green on the preview Service: 0.2.3 passes the preview, slows down once it
serves every user, and the post-promotion analysis switches it back 100 -> 0). At the
end it prints the repo's ``git log`` and writes a report. Without a terminal it prints one line per
decision instead of the live view, so ``make demo > log`` tells the story too.

``ab``, ``mirror`` and ``bluegreen`` walk a strategy instead (:mod:`rollouts.local.strategy_demo`):
its route states committed stage by stage and judged from Prometheus, without the controller (which
drives them too: docs/strategies.md).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from analyzer.prometheus.templates import ISTIO, Subset, error_ratio_query, quantile_query
from rollouts.controller.run import Controller, Options
from rollouts.gitops import discover
from rollouts.load import LoadRequest, LocalLoad
from rollouts.local.demo_world import (
    BASE,
    BEHAVIOUR,
    CANARY,
    GA,
    SPEC,
    Kubelet,
    Story,
    commit,
    deployment,
    rollout_spec,
)
from rollouts.local.reviewer import Reviewer
from rollouts.local.stack import LocalStack, ServiceOptions, StackConfig
from rollouts.state import Action, Phase

#: Scenarios walked by :mod:`rollouts.local.strategy_demo` (the strategies, judged; not the controller).
STRATEGY_SCENARIOS = ("ab", "bluegreen", "mirror")
STORY: dict[str, tuple[str, list[tuple[str | None, Action]]]] = {
    # scenario: (first canary version, [(version image automation commits or None, expected end)])
    "good": ("0.2.0", [(None, Action.FINALIZE)]),
    "slow": ("0.2.1", [(None, Action.ROLLBACK)]),
    "errors": ("0.2.2", [(None, Action.ROLLBACK)]),
    "all": ("0.2.0", [(None, Action.FINALIZE), ("0.2.1", Action.ROLLBACK), ("0.2.2", Action.ROLLBACK)]),
    # The 60 % step waits for the merge of its approval branch; the demo's reviewer merges it.
    "approval": ("0.2.0", [(None, Action.FINALIZE)]),
    # Blue/green on the preview Service, judged again after the switch: 0.2.3 degrades at 100 %
    # (AT_FULL_LOAD) and is switched back 100 -> 0.
    "switchback": ("0.2.3", [(None, Action.ROLLBACK)]),
}
# approval: how many analysis intervals the reviewer lets the 60 % step wait before merging.
REVIEW_INTERVALS = 4


def _query(prometheus: str, promql: str) -> dict[str, float]:
    try:
        answer = requests.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=2).json()
        return {
            item["metric"].get("destination_workload", "?"): float(item["value"][1])
            for item in answer["data"]["result"]
        }
    except (requests.RequestException, ValueError, KeyError):
        return {}


def view(stack: LocalStack, story: Story, scenario: str, kubelet: Kubelet) -> Group:
    """The live panel: weights, p99 and error rate per subset, the last decision, the commits."""
    try:
        status = requests.get(stack.status_url, timeout=2).json()
        weights = status.get("weights") or {}
    except (requests.RequestException, ValueError):
        weights = {}
    subsets = [Subset(namespace="test", workload=f"podinfo-{side}") for side in ("ga", "canary")]
    p99 = _query(stack.prometheus_url, quantile_query(ISTIO, 0.99, subsets, 15))
    errors = _query(stack.prometheus_url, error_ratio_query(ISTIO, subsets, 15))
    table = Table(title=f"rollouts demo: {scenario}  ({time.time() - story.started:.0f}s)", expand=False)
    for column in ("subset", "version", "weight", "p99 (15s)", "errors (15s)"):
        table.add_column(column, justify="right" if column != "subset" else "left")
    for subset, version in (("ga", kubelet.versions["ga"]), ("canary", kubelet.running)):
        workload = f"podinfo-{subset}"
        weight = weights.get("stable" if subset == "ga" else "canary", "?")
        latency = f"{p99[workload]:.0f} ms" if workload in p99 and p99[workload] == p99[workload] else "-"
        rate = (
            f"{errors[workload]:.1%}" if workload in errors and errors[workload] == errors[workload] else "-"
        )
        table.add_row(subset, version, f"{weight}%", latency, rate)
    last = story.last()
    decision = (
        Text("waiting for the first tick")
        if last is None
        else Text(
            f"{last.phase}: {last.action} - {'; '.join(last.reasons)[:300]}",
            style={Action.ROLLBACK: "bold red", Action.PROMOTE: "green", Action.FINALIZE: "bold green"}.get(
                last.action, ""
            ),
        )
    )
    lines = [
        Text(f"{time.strftime('%H:%M:%S', time.localtime(t))} {r.action:9} {'; '.join(r.reasons)[:140]}")
        for t, r in story.decisions()
        if r.action != Action.HOLD
    ][-8:]
    return Group(table, decision, Text("decisions:", style="bold"), *lines)


def _wait_for(story: Story, action: Action, since: int, timeout: float, refresh: Callable[[], None]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        refresh()
        with story.lock:
            # finalize ends with the route back to GA (promote-ga's last commit: phase promoted)
            if any(
                r.action == action and (action != Action.FINALIZE or r.phase == Phase.PROMOTED)
                for _, r in story.ticks[since:]
            ):
                return True
        time.sleep(0.5)
    return False


@dataclass
class Demo:
    """One run of the demo: a scenario and its settings."""

    scenario: str
    interval: float = 5.0
    rate: float = 200.0
    out: Path = Path("demo-output")
    timeout: float = 150.0
    console: Console = field(default_factory=Console)
    story: Story = field(default_factory=Story)
    strategy: str = ""  # more lines of the spec's analysis (see rollout_spec)
    load: str = ""  # more fields of the spec's load (see rollout_spec)
    steps: str = "[10, 60, 100]"  # the spec's steps (``[100]`` after a mirror or match: blue/green)
    # Requests per second of a second load beside the controller's, without its headers (for A/B:
    # GA's share of the traffic the match does not take); 0: none.
    background_rate: float = 0.0
    preview: bool = False  # analysis.previewService: the stack's preview Service (see rollout_spec)
    post_promotion: bool = False  # analysis.postPromotionAnalysis (see rollout_spec)

    def __post_init__(self) -> None:
        if self.scenario == "switchback" and not self.strategy:
            # Blue/green on the preview Service, judged again after the switch; users on a load
            # of their own (the controller's goes to the preview, then to GA's own Service).
            self.strategy, self.steps, self.preview, self.post_promotion = (
                "iterations: 3",
                "[100]",
                True,
                True,
            )
            self.background_rate = self.background_rate or 100.0
            self.rate = min(self.rate, 60.0)

    def run(self) -> int:
        """Run the scenario; 0 when every act ended as the story says."""
        import logging

        from rollouts.logs import JsonFormatter

        self.out.mkdir(parents=True, exist_ok=True)
        # The controller's decisions go to a JSON log beside the report; the terminal shows the view.
        log_file = logging.FileHandler(self.out / "controller.log", mode="w")
        log_file.setFormatter(JsonFormatter())
        root = logging.getLogger()
        saved = (list(root.handlers), root.level)
        # setLevel, not ``root.level =``: loggers cache isEnabledFor, and only setLevel clears it.
        root.handlers = [log_file]
        root.setLevel(logging.INFO)
        work = Path(tempfile.mkdtemp(prefix="rollouts-demo-"))
        try:
            return self._run(work)
        finally:
            root.handlers = saved[0]
            root.setLevel(saved[1])
            log_file.close()
            shutil.rmtree(work, ignore_errors=True)

    def _seed(self, stack: LocalStack, first: str) -> dict[str, str]:
        """The repo's first files: GA and canary manifests and the scenario's Rollout spec."""
        return {
            GA: deployment("podinfo-ga", "ga", "0.1.0"),
            CANARY: deployment("podinfo-canary", "canary", first),
            SPEC: rollout_spec(
                stack,
                self.interval,
                self.rate,
                approval=self.scenario == "approval",
                strategy=self.strategy,
                load=self.load,
                steps=self.steps,
                preview=self.preview,
                post_promotion=self.post_promotion,
            ),
        }

    def _reviewer(self, stack: LocalStack, work: Path) -> Reviewer | None:
        """In the approval scenario, the person who reviews the step's branch: merges it a few
        intervals later."""
        if self.scenario != "approval":
            return None
        console = self.console
        return Reviewer(
            stack.repo_path,
            work / "reviewer",
            delay=REVIEW_INTERVALS * self.interval,
            on_merge=lambda branch, waited: console.print(
                f"reviewer merged {branch} after {waited:.0f}s", markup=False, highlight=False
            ),
        ).start()

    def _run(self, work: Path) -> int:
        import git

        console, story = self.console, self.story
        first, acts = STORY[self.scenario]
        config = StackConfig(
            ga=ServiceOptions(version="0.1.0", args=BASE),
            canary=ServiceOptions(version=first, args=BEHAVIOUR[first]),
            canary_weight=0,
        )
        ok = True
        console.print(
            "[bold]starting the local stack[/] (Prometheus, GA and canary services, the mesh, a Git repo)"
        )
        with LocalStack(config, workdir=work) as stack:
            commit(
                stack,
                self._seed(stack, first),
                "podinfo: GA 0.1.0, canary manifest, Rollout spec",
                ("Demo Human", "human@demo.invalid"),
                work / "people",
            )
            kubelet = Kubelet(stack, first).start()
            background = LocalLoad() if self.background_rate else None
            if background is not None:
                duration = self.timeout * len(acts) + 60
                background.start(
                    LoadRequest(target=stack.mesh_url + "/", duration=duration, rate=self.background_rate)
                )
            controller = Controller(
                Options(
                    mesh=stack.mesh_admin_url,
                    cache_dir=work / "cache",
                    settle=1.5,
                    gate_interval=0.5,
                    ga_url=stack.ga_url,
                ),
                on_tick=story.record,
            )
            if not console.is_terminal:
                story.echo = lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)
            rollouts, errors = discover(str(stack.repo_path), "master", "rollouts", work / "cache")
            errors += controller.apply(rollouts)
            for line in errors:
                console.print(f"[red]error:[/] {line}")
            controller.scheduler.start()
            reviewer = self._reviewer(stack, work)
            try:
                with Live(
                    view(stack, story, self.scenario, kubelet),
                    console=console,
                    refresh_per_second=2,
                    transient=not console.is_terminal,
                ) as live:
                    for version, expected in acts:
                        mark = len(story.ticks)
                        if version is not None:
                            console.print(f"image automation commits podinfo-canary {version}")
                            commit(
                                stack,
                                {CANARY: deployment("podinfo-canary", "canary", version)},
                                f"podinfo-canary: {version} (image automation)",
                                ("fluxcdbot", "fluxcdbot@demo.invalid"),
                                work / "people",
                            )
                        done = _wait_for(
                            story,
                            expected,
                            mark,
                            self.timeout,
                            lambda: live.update(view(stack, story, self.scenario, kubelet)),
                        )
                        ok = ok and done
                        if not done:
                            console.print(f"[red]{expected} did not happen within {self.timeout:.0f}s[/]")
                            break
            finally:
                if reviewer is not None:
                    reviewer.stop()
                controller.scheduler.stop()
                kubelet.stop()
                if background is not None:
                    background.close()
            log_text = git.Repo(stack.repo_path).git.log(
                "--format=%h %an: %s%n%(trailers:only,unfold)", "master"
            )
            mirror = self.out / "repo.git"
            shutil.rmtree(mirror, ignore_errors=True)
            git.Repo.clone_from(str(stack.repo_path), mirror, bare=True)
        report = self.out / "report.md"
        report.write_text(_report(self.scenario, story, log_text, ok))
        console.print("\n[bold]git log of the demo repo[/]")
        console.print(log_text)
        console.print(f"report: {report}   controller log (JSON): {self.out / 'controller.log'}")
        console.print(f"repo: {mirror}  (git --git-dir {mirror} log)")
        return 0 if ok else 1


def _report(scenario: str, story: Story, log_text: str, ok: bool) -> str:
    lines = [
        f"# rollouts demo: {scenario}",
        "",
        f"Outcome: {'as expected' if ok else 'NOT as expected'}",
        "",
        "## Decisions",
        "",
    ]
    for t, r in story.decisions():
        lines.append(
            f"- {time.strftime('%H:%M:%S', time.localtime(t))} **{r.action}** ({r.phase}): "
            + "; ".join(r.reasons)
        )
    lines += ["", "## git log", "", "```", log_text, "```", ""]
    return "\n".join(lines)


def add_demo_parser(sub: Any) -> None:
    """Register ``rollouts demo``."""
    cmd = sub.add_parser("demo", help="the guide's story on one machine: good canary, then regressions")
    cmd.add_argument(
        "--scenario",
        choices=[*sorted(STORY), *sorted(STRATEGY_SCENARIOS), "pipeline"],
        default="all",
        help="the controller's story (all, good, slow, errors), a strategy walked with the judge "
        "(ab, mirror, bluegreen; see docs/strategies.md), or a pipeline through two environments "
        "(pipeline; see docs/pipeline.md)",
    )
    cmd.add_argument("--slow", action="store_true", help="strategy scenarios: a canary three times slower")
    cmd.add_argument("--interval", type=float, default=5.0, help="analysis interval in seconds (default 5)")
    cmd.add_argument("--rate", type=float, default=200.0, help="load in requests per second (default 200)")
    cmd.add_argument("--out", type=Path, default=Path("demo-output"), help="where the report and repo go")
    cmd.add_argument("--timeout", type=float, default=150.0, help="seconds each act may take")
    cmd.set_defaults(func=_run_demo)


def _run_demo(args: Any) -> int:
    if args.scenario in STRATEGY_SCENARIOS:
        from rollouts.local.strategy_demo import demo

        outcome = demo(args.scenario, slow=args.slow, rate=min(args.rate, 100.0))
        return 0 if outcome.ended != "held" else 1
    if args.scenario == "pipeline":
        from rollouts.local.pipeline_demo import PipelineDemo

        return PipelineDemo(interval=args.interval, rate=args.rate, out=args.out, timeout=args.timeout).run()
    return Demo(
        args.scenario, interval=args.interval, rate=args.rate, out=args.out, timeout=args.timeout
    ).run()
