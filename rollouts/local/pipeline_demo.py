"""``rollouts demo --scenario pipeline``: one revision through two environments, on one machine.

Two local stacks play two clusters (``staging`` and ``production``): each has its own Git repo, mesh,
GA and canary services and Prometheus, and its own controller, as one controller per cluster would
run. Beside them runs the pipeline (``staging -> production``, with a soak), whose hand-over commit
writes the revision that staging finalized into production's canary manifest.

The story: 0.2.0 walks staging's steps and is finalized (GA gets it), soaks, is handed over, and walks
production's steps. Then image automation commits 0.2.1 (three times slower) to staging: it is rolled
back there, and the pipeline's status says it stopped in staging and never reaches production.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import git
from rich.console import Console

from rollouts.controller.run import Controller, Options
from rollouts.local.demo_world import (
    BASE,
    BEHAVIOUR,
    CANARY,
    GA,
    Kubelet,
    Story,
    commit,
    deployment,
    rollout_spec,
)
from rollouts.local.stack import LocalStack, ServiceOptions, StackConfig
from rollouts.pipeline.job import PipelineJob, format_status
from rollouts.pipeline.runner import PipelineRunner, load_pipeline
from rollouts.spec import load_spec
from rollouts.state import CommitVerdict, FinalizeStage, Phase, format_message

HUMAN = ("Demo Human", "human@demo.invalid")
AUTOMATION = ("fluxcdbot", "fluxcdbot@demo.invalid")


def pipeline_spec(soak: float) -> str:
    """The demo's Pipeline: staging, then production after a soak."""
    return f"""apiVersion: rollouts.dev/v1alpha1
kind: Pipeline
metadata: {{name: podinfo, namespace: demo}}
spec:
  environments:
    - name: staging
      rollout: staging.yaml
    - name: production
      rollout: production.yaml
      promotion: {{soak: {soak:g}s}}
"""


@dataclass
class PipelineDemo:
    """One run of the pipeline story."""

    interval: float = 5.0
    rate: float = 100.0
    soak: float = 10.0
    out: Path = Path("demo-output")
    timeout: float = 150.0
    console: Console = field(default_factory=Console)
    story: Story = field(default_factory=Story)

    def run(self) -> int:
        """Run the story; 0 when every act ended as told."""
        self.out.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="rollouts-pipeline-demo-"))
        self.story.echo = lambda line: self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        try:
            return self._run(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run(self, work: Path) -> int:
        console = self.console
        console.print(
            "[bold]starting two local stacks[/]: staging and production (Prometheus, GA, canary, mesh, repo)"
        )
        stacks = {
            name: LocalStack(
                StackConfig(
                    namespace=name,
                    ga=ServiceOptions(version="0.1.0", args=BASE),
                    canary=ServiceOptions(version=first, args=BEHAVIOUR[first]),
                ),
                workdir=work,
            )
            for name, first in (("staging", "0.2.0"), ("production", "0.1.0"))
        }
        specs = work / "specs"
        specs.mkdir()
        controllers: dict[str, Controller] = {}
        kubelets: dict[str, Kubelet] = {}
        ok = True
        try:
            for name, stack in stacks.items():
                stack.start()
                first = "0.2.0" if name == "staging" else "0.1.0"
                files = {
                    GA: deployment("podinfo-ga", "ga", "0.1.0"),
                    CANARY: deployment("podinfo-canary", "canary", first),
                }
                message = f"podinfo: GA 0.1.0, canary {first} ({name})"
                if name == "production":
                    # Production runs 0.1.0 already, finalized: the record a finished rollout leaves.
                    message = format_message(
                        f"{name}/podinfo",
                        message,
                        verdict=CommitVerdict.FINALIZE,
                        reasons=["seeded by the demo: production runs 0.1.0 on GA, finalized"],
                        step="3/3",
                        revision="0.1.0",
                        finalize=FinalizeStage.ROUTE_GA,
                    )
                commit(stack, files, message, HUMAN, work / "people")
                (specs / f"{name}.yaml").write_text(
                    rollout_spec(stack, self.interval, self.rate, url=str(stack.repo_path))
                )
                kubelets[name] = Kubelet(stack, first).start()
            (specs / "pipeline.yaml").write_text(pipeline_spec(self.soak))
            loaded = load_pipeline(specs / "pipeline.yaml")
            for name, stack in stacks.items():
                controller = Controller(
                    Options(
                        mesh=stack.mesh_admin_url,
                        cache_dir=work / "cache",
                        settle=1.5,
                        gate_interval=0.5,
                        ga_url=stack.ga_url,
                    ),
                    on_tick=self.story.record,
                )
                errors = controller.apply([load_spec(specs / f"{name}.yaml")])
                for line in errors:
                    console.print(f"[red]error:[/] {line}")
                controllers[name] = controller
            runner = PipelineRunner.for_pipeline(loaded, cache_dir=work / "cache")
            job = PipelineJob(runner, controllers["staging"].metrics)
            controllers["staging"].scheduler.add(job)  # the pipeline runs beside staging's rollout
            for controller in controllers.values():
                controller.scheduler.start()
            ok = self._acts(stacks, job, work, kubelets)
            console.print("\n[bold]pipeline status[/]")
            if job.last is not None:
                console.print(format_status(job.runner.key, job.last), markup=False, highlight=False)
        finally:
            for controller in controllers.values():
                controller.scheduler.stop()
            for kubelet in kubelets.values():
                kubelet.stop()
            logs = {name: _log(stack) for name, stack in stacks.items() if stack.repo_path.exists()}
            for stack in stacks.values():
                stack.stop()
        for name, text in logs.items():
            console.print(f"\n[bold]git log of {name}'s repo[/]")
            console.print(text, markup=False, highlight=False)
        (self.out / "pipeline.md").write_text(_report(logs, ok))
        console.print(f"report: {self.out / 'pipeline.md'}")
        return 0 if ok else 1

    def _acts(
        self, stacks: dict[str, LocalStack], job: PipelineJob, work: Path, kubelets: dict[str, Kubelet]
    ) -> bool:
        console = self.console

        def finalized(name: str, version: str) -> Callable[[], bool]:
            # promote-ga: GA runs the version and the rollout is promoted (traffic back on GA)
            return lambda: (
                kubelets[name].versions["ga"] == version and self._phase(f"{name}/podinfo") == Phase.PROMOTED
            )

        def handed_over(version: str) -> Callable[[], bool]:
            return lambda: job.last is not None and job.last.facts[1].canary_revision == version

        acts: list[tuple[str, Callable[[], bool]]] = [
            (
                "staging: 0.2.0 walks its steps and is finalized (GA gets 0.2.0)",
                finalized("staging", "0.2.0"),
            ),
            (
                f"pipeline: 0.2.0 soaks {self.soak:g}s in staging, then is handed over to production",
                handed_over("0.2.0"),
            ),
            ("production: 0.2.0 walks its steps and is finalized", finalized("production", "0.2.0")),
        ]
        for text, goal in acts:
            console.print(f"[bold]{text}[/]")
            if not _wait(goal, self.timeout):
                console.print(f"[red]not within {self.timeout:.0f}s[/]")
                return False
        console.print(
            "[bold]image automation commits podinfo-canary 0.2.1 (three times slower) to staging[/]"
        )
        commit(
            stacks["staging"],
            {CANARY: deployment("podinfo-canary", "canary", "0.2.1")},
            "podinfo-canary: 0.2.1 (image automation)",
            AUTOMATION,
            work / "people",
        )

        def stopped() -> bool:
            last = job.last
            return last is not None and any(
                s.revision == "0.2.1" and s.environment == "staging" for s in last.plan.stops
            )

        if not _wait(stopped, self.timeout):
            console.print("[red]0.2.1 was not rolled back in staging[/]")
            return False
        time.sleep(3 * self.interval)  # a few more pipeline ticks: 0.2.1 must stay out of production
        production = job.last.facts[1].canary_revision if job.last is not None else "?"
        console.print(f"0.2.1 stopped in staging; production runs {production}")
        return production == "0.2.0"

    def _phase(self, key: str) -> Phase | None:
        """The phase of the newest tick of rollout ``key``."""
        newest = [r for k, r in self.story.keyed() if k == key]
        return newest[-1].phase if newest else None


def _wait(goal: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if goal():
            return True
        time.sleep(0.5)
    return False


def _log(stack: LocalStack) -> str:
    return str(git.Repo(stack.repo_path).git.log("--format=%h %an: %s%n%(trailers:only,unfold)", "master"))


def _report(logs: dict[str, str], ok: bool) -> str:
    lines = ["# rollouts demo: pipeline", "", f"Outcome: {'as expected' if ok else 'NOT as expected'}", ""]
    for name, text in logs.items():
        lines += [f"## git log of {name}", "", "```", text, "```", ""]
    return "\n".join(lines)
