"""Command line entry point of ``rollouts``.

Exit codes: 0 done (or nothing to do), 1 error (nothing pushed), 2 usage, 3 human override (the
remote's weights were changed by someone else; nothing pushed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from rollouts.gitops import CommitResult, RecordResult, RolloutState, Workspace
    from rollouts.spec import Rollout
    from rollouts.state import Position

EXIT_ERROR = 1
EXIT_OVERRIDE = 3
_AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>\s]+)>\s*$")


def _weight(value: str) -> int:
    # Plain ASCII digits only: int() also takes ' 10', '+5', '1_0' and other scripts' digits ('١٠').
    if not re.fullmatch(r"[0-9]{1,3}", value):
        raise argparse.ArgumentTypeError(
            f"WEIGHT must be an integer 0-100, got {value[:20]!r} (plain ASCII digits only)"
        )
    weight = int(value)
    if not 0 <= weight <= 100:
        raise argparse.ArgumentTypeError(f"WEIGHT must be between 0 and 100, got {weight}")
    return weight


def _workspace(args: argparse.Namespace, rollout: Rollout) -> Workspace:
    from rollouts.gitops import Workspace
    from rollouts.spec import Author

    kwargs: dict[str, Any] = {}
    if args.author:
        match = _AUTHOR.match(args.author)
        if match is None:
            raise ValueError(f"--author must look like 'Name <email>', got {args.author!r}")
        kwargs["author"] = Author(name=match["name"], email=match["email"])
    return Workspace.for_spec(rollout, cache_dir=args.cache_dir, **kwargs)


def _report(rollout: Rollout, result: CommitResult | RecordResult, what: str) -> None:
    if result.changed:
        assert result.sha is not None
        print(f"{rollout.key}: {what}: pushed {result.sha[:12]} ({result.attempts} attempt(s))")
    else:
        print(f"{rollout.key}: {what}: already so at {result.head[:12]}, nothing to commit")


def _set_weight(args: argparse.Namespace, rollout: Rollout) -> int:
    from rollouts.routes import Weights
    from rollouts.state import CommitVerdict, WeightChange, step_label

    change = WeightChange(
        Weights.for_canary(args.weight),
        CommitVerdict.MANUAL,
        tuple(args.reason),
        step=step_label(rollout.spec.steps, args.weight),
    )
    result = _workspace(args, rollout).commit_weights(rollout, change)
    _report(rollout, result, f"canary {result.previous.canary}% -> {args.weight}%")
    return 0


def _promote(args: argparse.Namespace, rollout: Rollout) -> int:
    """Advance one step by hand: the next step's weight (100 after the last), one ``manual`` commit."""
    from rollouts.routes import Weights
    from rollouts.state import CommitVerdict, WeightChange, next_weight, step_label

    workspace = _workspace(args, rollout)
    current = workspace.read_weights(rollout)
    if current.canary >= 100:
        print(f"{rollout.key}: canary already at 100%, nothing to promote")
        return 0
    steps = rollout.spec.steps
    target = next_weight(steps, current.canary) or 100
    reasons = args.reason or [f"promoted by hand from {current.canary}% to {target}%"]
    change = WeightChange(
        Weights.for_canary(target),
        CommitVerdict.MANUAL,
        tuple(reasons),
        step=step_label(steps, target),
        expected=current,
    )
    result = workspace.commit_weights(rollout, change)
    _report(rollout, result, f"canary {current.canary}% -> {target}%")
    return 0


def _record(args: argparse.Namespace, rollout: Rollout) -> int:
    result = _workspace(args, rollout).record(rollout, args.command, reasons=args.reason)
    _report(rollout, result, args.command)
    return 0


def _abort(args: argparse.Namespace, rollout: Rollout) -> int:
    from rollouts.routes import Weights
    from rollouts.state import CommitVerdict, WeightChange

    workspace = _workspace(args, rollout)
    change = WeightChange(Weights.for_canary(0), CommitVerdict.ABORT, tuple(args.reason))
    result = workspace.commit_weights(rollout, change)
    if result.changed:  # the abort commit routes everything to stable and pauses the rollout
        _report(rollout, result, f"abort: canary {result.previous.canary}% -> 0%")
        return 0
    _report(rollout, workspace.record(rollout, "abort", reasons=args.reason), "abort")
    return 0


def _status(args: argparse.Namespace, rollout: Rollout) -> int:
    from rollouts.gates.status import approval_fields, approval_text, merge_fields
    from rollouts.gates.view import awaiting_merge, pending_approval
    from rollouts.workloads import series_of

    workspace = _workspace(args, rollout)
    state = workspace.read_state(rollout)
    series = series_of(rollout, workspace)  # the files of the head just read
    approval = pending_approval(workspace, rollout, state.weights, state.revision)
    awaiting = awaiting_merge(workspace, rollout, state.revision)  # protected branch: what holds it
    if args.json:
        where = state.position
        out = {**state.to_dict(), "series": series}
        out["position"] = {
            "phase": str(where.phase),
            "stage": stage_of(rollout, where),
            "step": where.step,
            "weight": where.weight,
            "reason": where.reason,
        }
        out["approval"] = approval_fields(approval) if approval is not None else None
        out["awaiting_merge"] = merge_fields(awaiting) if awaiting is not None else None
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        print(format_status(rollout, state, series))
        if approval is not None:
            print(f"approval      {approval_text(rollout.key, None, approval)}")
        if awaiting is not None:
            print(f"awaiting      {awaiting.text(rollout.key)}")
    return 0


#: The stages of a position, for people (``Position.stage``).
STAGE_TEXT = {
    "mirror": "mirror stage (canary 0%, GA's requests mirrored to it)",
    "match": "A/B match stage (canary 0%, the requests analysis.match takes go to it)",
    "preview": "blue/green preview (canary 0%, the load on its preview Service)",
    "switched": "blue/green switched (canary 100%, postPromotionAnalysis)",
}


def stage_of(rollout: Rollout, where: Position) -> str | None:
    """The stage of a position: the stage at 0 % or after a blue/green switch, ``step N/M`` at a
    weight step, or None."""
    if where.stage is not None:
        return str(where.stage)
    steps = rollout.spec.steps
    return f"step {where.step}/{len(steps)}" if where.step else None


def format_status(rollout: Rollout, state: RolloutState, series: list[str] | None = None) -> str:
    """The state of a rollout for people."""
    route = rollout.spec.route

    def when(ts: int) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")

    lines = [
        f"rollout       {state.rollout}",
        f"branch        {state.branch} at {state.head[:12]}",
        f"weights       {route.stable} {state.weights.stable}%, {route.canary} {state.weights.canary}%"
        f"  ({route.kind} {route.path})",
        f"canary        {state.revision}  ("
        + ", ".join(f"{name}={image}" for name, image in state.images.items())
        + ")",
    ]
    where = state.position
    stage = stage_of(rollout, where)
    shown = STAGE_TEXT.get(stage or "", f"{stage} ({where.weight}%)" if stage else "")
    lines.append(f"position      {where.phase}{', ' + shown if shown else ''}: {where.reason}")
    if state.last is not None:
        step = f" step {state.last.step}" if state.last.step else ""
        lines.append(
            f"last commit   {state.last.verdict}{step} at {state.last.sha[:12]} "
            f"({when(state.last.timestamp)}): {state.last.subject}"
        )
    else:
        lines.append("last commit   none by the controller")
    lines.append(f"paused        {'yes' if state.paused else 'no'}")
    override = f"yes, by {state.override_commit[:12]}" if state.override_commit else "yes"
    lines.append(f"human change  {override if state.human_override else 'no'}")
    lines.append(
        f"new revision  {'yes: analysis restarts from the first step' if state.new_revision else 'no'}"
    )
    for i, line in enumerate(series or ()):
        lines.append(f"{'series' if i == 0 else '':<14}{line}")
    return "\n".join(lines)


def _pipeline_runner(args: argparse.Namespace) -> Any:
    """The :class:`~rollouts.pipeline.runner.PipelineRunner` of the Pipeline file ``args.spec``."""
    from rollouts.pipeline.runner import PipelineRunner, load_pipeline

    return PipelineRunner.for_pipeline(load_pipeline(args.spec), cache_dir=args.cache_dir)


def _pipeline_status(args: argparse.Namespace) -> int:
    from rollouts.pipeline.job import format_status

    runner = _pipeline_runner(args)
    print(format_status(runner.key, runner.assess()))  # reads and plans; writes nothing
    return 0


def _approve(args: argparse.Namespace) -> int:
    runner = _pipeline_runner(args)
    result = runner.approve(args.environment, args.revision, args.reason)
    what = f"approve {args.revision} for {args.environment}"
    if result.changed:
        print(f"{runner.key}: {what}: pushed {result.sha[:12]} ({result.attempts} attempt(s))")
    else:
        print(f"{runner.key}: {what}: approved already, nothing to commit")
    return 0


def _schema(args: argparse.Namespace) -> int:
    if args.markdown:
        from rollouts.docs import generated

        sys.stdout.write(generated())
        return 0
    from rollouts.spec import schema_text

    sys.stdout.write(schema_text())
    return 0


# Subcommands whose parsers live beside heavy code (the controller imports the scheduler, the
# Kubernetes client and the statistics; the demo the whole local stack; the report matplotlib):
# name -> (help line, module, function that adds the parser). Their module is imported only when
# that subcommand is asked for; the help line is the real parser's (a test compares them).
HEAVY_COMMANDS: Final[Mapping[str, tuple[str, str, str]]] = {
    "run": ("run the controller: every rollout, hands off", "rollouts.controller.run_cli", "add_run_parser"),
    "demo": (
        "the guide's story on one machine: good canary, then regressions",
        "rollouts.local.demo",
        "add_demo_parser",
    ),
    # rollouts.report.cli is light, but importing it runs the package's __init__ (matplotlib).
    "report": (
        "HTML report (and PNG charts) of a rollout from Git history and Prometheus",
        "rollouts.report.cli",
        "add_parser",
    ),
}


def build_parser(load: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``rollouts`` argument parser with every subcommand.

    ``load``: the :data:`HEAVY_COMMANDS` whose full parsers are built (default: all); the others are
    listed by name and help line only, so that ``rollouts --help`` and ``rollouts status`` start
    without importing them.
    """
    parser = argparse.ArgumentParser(prog="rollouts", description="GitOps progressive delivery")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("spec", metavar="SPEC", type=Path, help="path to a Rollout spec file")
    common.add_argument("--cache-dir", type=Path, default=None, help="where workspaces are cloned")
    common.add_argument(
        "--author", default=None, help="commit author 'Name <email>' (default: from the spec)"
    )
    reasons = argparse.ArgumentParser(add_help=False)
    reasons.add_argument(
        "--reason", action="append", default=[], help="a line for the commit body (repeatable)"
    )

    cmd = sub.add_parser("set-weight", parents=[common, reasons], help="set the canary weight as one commit")
    cmd.add_argument("weight", metavar="WEIGHT", type=_weight, help="canary weight in percent (0-100)")
    cmd.set_defaults(func=_set_weight)
    cmd = sub.add_parser(
        "status", parents=[common], help="the rollout's state, read from Git (SPEC may be a Pipeline)"
    )
    cmd.add_argument("--json", action="store_true", help="as JSON")
    cmd.set_defaults(func=_status)
    for name, text in (("pause", "record a pause in Git"), ("resume", "record a resume in Git")):
        sub.add_parser(name, parents=[common, reasons], help=text).set_defaults(func=_record)
    sub.add_parser("abort", parents=[common, reasons], help="route 100%% to stable and pause").set_defaults(
        func=_abort
    )
    sub.add_parser(
        "promote", parents=[common, reasons], help="advance one step by hand (a commit)"
    ).set_defaults(func=_promote)
    cmd = sub.add_parser(
        "approve",
        parents=[common, reasons],
        help="approve a revision for a pipeline's environment (a commit)",
    )
    cmd.add_argument("--environment", required=True, help="the environment the revision may enter")
    cmd.add_argument("--revision", required=True, help="the revision (the canary image tag) to approve")
    cmd.set_defaults(func=_approve, pipeline=True)
    cmd = sub.add_parser("schema", help="print the JSON schema of a Rollout spec")
    cmd.add_argument(
        "--markdown", action="store_true", help="the configuration reference instead (docs/reference.md)"
    )
    cmd.set_defaults(func=_schema)
    for name, (text, module, function) in HEAVY_COMMANDS.items():
        if load is None or name in load:
            getattr(importlib.import_module(module), function)(sub)
        else:  # listed in `rollouts --help` without importing the controller or the demo
            sub.add_parser(name, help=text, add_help=False)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Run the ``rollouts`` command; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(load={_command(argv) or ""})
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command in ("schema", "run", "demo"):
        code: int = func(args)
        return code
    from rollouts.gitops import CredentialError, GitopsError, HumanOverrideError
    from rollouts.pipeline.spec import is_pipeline_file
    from rollouts.routes import RouteError
    from rollouts.spec import SpecError, load_spec

    try:
        if args.command == "report" and is_pipeline_file(args.spec):
            from rollouts.report.cli import run_pipeline

            return run_pipeline(args)
        if getattr(args, "pipeline", False) or (args.command == "status" and is_pipeline_file(args.spec)):
            code = _approve(args) if args.command == "approve" else _pipeline_status(args)
            return code
        rollout = load_spec(args.spec)
        code = func(args, rollout)
    except HumanOverrideError as exc:
        print(f"rollouts: human override: {exc}", file=sys.stderr)
        return EXIT_OVERRIDE
    except (SpecError, RouteError, GitopsError, CredentialError, ValueError) as exc:
        print(f"rollouts: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return code


if __name__ == "__main__":
    sys.exit(main())
