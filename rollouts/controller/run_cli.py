"""The ``rollouts run`` command line: its parser, apart from the controller.

It exists so that ``rollouts run --help`` (and every tool that only builds the parser, such as the
documented-flags check) does not import the controller, the scheduler, the Kubernetes client and
the statistics: over half a second of start-up. It must never hold the command's behaviour: the
command is :func:`rollouts.controller.run.run_command`, imported when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rollouts.gitops.credentials import add_credential_arguments


def add_run_parser(sub: Any) -> None:
    """Register ``rollouts run`` on the CLI's subparsers."""
    cmd = sub.add_parser("run", help="run the controller: every rollout, hands off")
    cmd.add_argument("specs", metavar="SPEC", nargs="*", type=Path, help="Rollout spec files")
    cmd.add_argument(
        "--repo", metavar="URL", help="discover every kind: Rollout and Pipeline in a Git repo directory"
    )
    cmd.add_argument("--path", default=".", help="directory of --repo to search (default: the whole repo)")
    cmd.add_argument("--branch", default="main", help="branch of --repo (default main)")
    cmd.add_argument("--resync", type=float, default=60.0, help="seconds between re-reads of --repo")
    add_credential_arguments(cmd, "--repo")
    where = cmd.add_mutually_exclusive_group()
    where.add_argument("--mesh", metavar="URL", help="local mesh admin URL: its /status is the sync gate")
    where.add_argument(
        "--kubernetes", action="store_true", help="the Kubernetes API (in-cluster or kubeconfig)"
    )
    cmd.add_argument(
        "--ga-url",
        metavar="URL",
        help="with --mesh and finalize promote-ga: the GA service, whose /version must name the new tag",
    )
    cmd.add_argument(
        "--flux-kustomization",
        default=None,
        metavar="NAMESPACE/NAME",
        help="with --kubernetes: also wait for this Flux Kustomization to apply the commit",
    )
    cmd.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    cmd.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only the holder of a Lease commits (default: on with --kubernetes)",
    )
    cmd.add_argument(
        "--lease",
        default=None,
        metavar="NAMESPACE/NAME",
        help="the Lease (default: rollouts-controller in $POD_NAMESPACE or the pod's namespace)",
    )
    cmd.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="apprise URL told about every rollout (repeatable; also $ROLLOUTS_NOTIFY_URLS)",
    )
    cmd.add_argument(
        "--metrics-address",
        default=None,
        metavar="HOST:PORT",
        help="/metrics and /healthz (default 127.0.0.1:9797, 0.0.0.0:9797 in a pod; port 0: any; 'off')",
    )
    cmd.add_argument("--log-format", choices=("text", "json"), default="text")
    cmd.add_argument("--log-level", default="INFO")
    cmd.add_argument("--cache-dir", type=Path, default=None, help="where Git workspaces are cloned")
    cmd.add_argument("--settle", type=float, default=2.0, help="seconds of scrape lag after a window ends")
    cmd.add_argument("--once", action="store_true", help="one tick of every rollout, then exit")
    cmd.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    cmd.set_defaults(func=_run_command)


def _run_command(args: argparse.Namespace) -> int:
    """``rollouts run``: the controller's module, imported only now."""
    from rollouts.controller.run import run_command

    return run_command(args)
