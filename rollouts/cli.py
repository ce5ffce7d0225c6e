"""Command line entry point of ``rollouts``.

Exit codes: 0 done (or nothing to do), 1 error (nothing pushed), 2 usage, 3 human override (the
remote's weights were changed by someone else; nothing pushed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rollouts.gitops import CommitResult, RecordResult, RolloutState, Workspace
    from rollouts.spec import Rollout

EXIT_ERROR = 1
EXIT_OVERRIDE = 3
_AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>\s]+)>\s*$")


def _weight(value: str) -> int:
    try:
        weight = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"WEIGHT must be an integer 0-100, got {value!r}") from None
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
    state = _workspace(args, rollout).read_state(rollout)
    if args.json:
        print(json.dumps(state.to_dict(), indent=2, sort_keys=True))
    else:
        print(format_status(rollout, state))
    return 0


def format_status(rollout: Rollout, state: RolloutState) -> str:
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
    return "\n".join(lines)


def _schema(args: argparse.Namespace) -> int:
    if args.markdown:
        from rollouts.docs import generated

        sys.stdout.write(generated())
        return 0
    from rollouts.spec import schema_text

    sys.stdout.write(schema_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``rollouts`` argument parser with every subcommand."""
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
    cmd = sub.add_parser("status", parents=[common], help="the rollout's state, read from Git")
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
    cmd = sub.add_parser("schema", help="print the JSON schema of a Rollout spec")
    cmd.add_argument(
        "--markdown", action="store_true", help="the configuration reference instead (docs/reference.md)"
    )
    cmd.set_defaults(func=_schema)
    from rollouts.controller.run import add_run_parser
    from rollouts.local.demo import add_demo_parser
    from rollouts.report.cli import add_parser as add_report_parser

    add_run_parser(sub)
    add_demo_parser(sub)
    add_report_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``rollouts`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command in ("schema", "run", "demo"):
        code: int = func(args)
        return code
    from rollouts.gitops import CredentialError, GitopsError, HumanOverrideError
    from rollouts.routes import RouteError
    from rollouts.spec import SpecError, load_spec

    try:
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
