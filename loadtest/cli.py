"""Command line entry point of ``loadtest``: hey's flags and output on Locust, and ``loadtest serve``.

Flags keep hey's single-dash spelling and meaning (``-n 200 -c 50 -q 0 -z 10s -disable-keepalive``),
so a script that calls hey works by changing the program name. Locust (and with it gevent's
monkey-patching) is imported only once the arguments are valid.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from analyzer.redaction import redact
from loadtest.options import PROFILES, RunPlan, parse_duration, parse_header, validate_method

if TYPE_CHECKING:
    from loadtest.report import Report

EXIT_OK = 0
EXIT_ALL_FAILED = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE, as the shell reports hey killed by it

DESCRIPTION = """\
A load generator with hey's interface, powered by Locust.

  loadtest -n 1000 -c 10 http://127.0.0.1:9898/version     closed model, like hey
  loadtest -z 60s --rate 200 http://127.0.0.1:9898/          open model: 200 req/s in total
  loadtest -z 30s -f locustfile.py http://127.0.0.1:9898     your own Locust scenario
  loadtest serve --token-file /etc/loadtest/token            the HTTP control API (see docs/loadtest.md)
"""


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our usage code and a one-line message naming the flag."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"loadtest: error: {message}\n")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``loadtest [flags] URL`` (hey's flags first, then ours)."""
    p = _Parser(
        prog="loadtest",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    hey = p.add_argument_group("hey's flags (same meaning as hey)")
    hey.add_argument("-n", type=int, default=None, metavar="N", help="number of requests (default 200)")
    hey.add_argument("-c", type=int, default=50, metavar="C", help="concurrent workers (default 50)")
    hey.add_argument("-q", type=float, default=0.0, metavar="QPS", help="rate limit per worker, requests/s")
    hey.add_argument("-z", type=_duration, default=None, metavar="DURATION", help="run for, e.g. 10s, 3m")
    hey.add_argument("-o", choices=["csv"], default=None, help="csv: one line per request")
    hey.add_argument("-m", default="GET", metavar="METHOD", help="HTTP method (default GET)")
    hey.add_argument("-H", action="append", default=[], metavar="HEADER", help="'Name: value', repeatable")
    hey.add_argument("-t", type=float, default=20.0, metavar="SECONDS", help="timeout per request, 0 = none")
    hey.add_argument("-A", default="", metavar="ACCEPT", help="Accept header")
    hey.add_argument("-d", default="", metavar="BODY", help="request body")
    hey.add_argument("-D", default="", metavar="FILE", help="request body from a file")
    hey.add_argument("-T", default="text/html", metavar="TYPE", help="Content-Type (default text/html)")
    hey.add_argument("-a", default="", metavar="USER:PASS", help="basic authentication")
    hey.add_argument("-U", default="", metavar="AGENT", help="User-Agent")
    hey.add_argument("-host", default="", metavar="HOST", help="Host header")
    hey.add_argument("-disable-keepalive", action="store_true", help="a new connection per request")
    hey.add_argument(
        "-disable-compression", action="store_true", help="accepted; responses are never compressed"
    )
    hey.add_argument("-disable-redirects", action="store_true", help="accepted; redirects are never followed")
    hey.add_argument("-cpus", type=int, default=None, metavar="N", help="same as --processes N")
    hey.add_argument("-h2", action="store_true", help=argparse.SUPPRESS)
    hey.add_argument("-x", default="", help=argparse.SUPPRESS)
    ours = p.add_argument_group("loadtest's own flags")
    ours.add_argument("--json", action="store_true", help="print the report as JSON")
    ours.add_argument(
        "--rate", type=float, default=None, metavar="R", help="open model: R requests/s in total"
    )
    ours.add_argument("-f", "--locustfile", default=None, metavar="FILE", help="run this Locust scenario")
    ours.add_argument("--profile", choices=sorted(PROFILES), default=None, help="built-in scenario")
    ours.add_argument("--processes", type=int, default=1, metavar="N", help="use N worker processes")
    ours.add_argument(
        "--sessions", type=float, default=0.0, metavar="SHARE", help="share of workers that keep cookies"
    )
    ours.add_argument("--quiet", action="store_true", help="no progress bar even on a terminal")
    dist = p.add_argument_group("Locust distributed mode")
    dist.add_argument("--master", action="store_true", help="be the master; workers connect to it")
    dist.add_argument("--master-bind-host", default="127.0.0.1", metavar="HOST")
    dist.add_argument("--master-bind-port", type=int, default=5557, metavar="PORT")
    dist.add_argument("--expect-workers", type=int, default=1, metavar="N", help="workers to wait for")
    dist.add_argument("--worker", action="store_true", help="be a worker of --master-host")
    dist.add_argument("--master-host", default="127.0.0.1", metavar="HOST")
    dist.add_argument("--master-port", type=int, default=5557, metavar="PORT")
    p.add_argument(
        "url", metavar="URL", nargs="?", default=None, help="the target (a --worker gets it from the master)"
    )
    return p


def plan_from_args(args: argparse.Namespace) -> RunPlan:
    """Turn parsed flags into a validated :class:`RunPlan` (raises ValueError naming the flag)."""
    return RunPlan(**_plan_fields(args, args.url))


#: Which plan fields each flag sets (a worker's claims: the flags it was given).
_FIELDS_OF_FLAG: dict[str, tuple[str, ...]] = {
    "url": ("url",),
    "n": ("requests",),
    "c": ("concurrency",),
    "q": ("qps",),
    "z": ("duration",),
    "m": ("method",),
    "t": ("timeout",),
    "d": ("body",),
    "D": ("body",),
    "a": ("basic_auth",),
    "host": ("host_header",),
    "disable_keepalive": ("keepalive",),
    "rate": ("rate",),
    "locustfile": ("locustfile",),
    "profile": ("profile",),
    "sessions": ("sessions",),
}


def given_flags(argv: list[str]) -> set[str]:
    """The ``dest`` of every flag written on the command line (not the defaults)."""
    sparse = build_parser()
    # argparse has no public "was this given?"; without defaults, the namespace holds only those.
    # (set_defaults(SUPPRESS) would not do: parser-level defaults are copied into append actions.)
    for action in sparse._actions:
        action.default = argparse.SUPPRESS
    return set(vars(sparse.parse_args(argv)))


def worker_claims(args: argparse.Namespace, given: set[str]) -> dict[str, Any]:
    """What a worker's own flags say about the plan (plan field -> value, ``headers``: the headers
    it set), to be checked against the master's plan; ``ValueError`` naming a flag that does not parse."""
    fields = _plan_fields(args, args.url or "http://worker.invalid/")
    claims = {f: fields[f] for dest in sorted(given) for f in _FIELDS_OF_FLAG.get(dest, ())}
    if "method" in claims:
        claims["method"] = validate_method(claims["method"])
    if "timeout" in claims:
        claims["timeout"] = claims["timeout"] or None  # hey: 0 means none
    headers: dict[str, str] = {}
    for text in args.H if "H" in given else []:
        name, value = parse_header(text)
        headers[name] = value
    for dest, name in (("A", "Accept"), ("U", "User-Agent"), ("T", "Content-Type")):
        if dest in given:
            headers[name] = getattr(args, dest)
    if headers:
        claims["headers"] = headers
    return claims


def _plan_fields(args: argparse.Namespace, url: str) -> dict[str, Any]:
    if args.h2:
        raise ValueError("-h2: HTTP/2 is not supported")
    if args.x:
        raise ValueError("-x: proxies are not supported")
    headers: dict[str, str] = {"Content-Type": args.T}
    for text in args.H:
        name, value = parse_header(text)
        headers[name] = value
    if args.A:
        headers["Accept"] = args.A
    if args.U:
        headers["User-Agent"] = args.U
    basic_auth = None
    if args.a:
        user, sep, password = args.a.partition(":")
        if not sep or not user or not password:
            raise ValueError(f"-a: expected user:password, got {args.a!r}")
        basic_auth = (user, password)
    body = args.d.encode()
    if args.D:
        try:
            body = Path(args.D).read_bytes()
        except OSError as exc:
            raise ValueError(f"-D {args.D}: {exc.strerror or exc}") from None
    if args.n is not None and args.z is not None:
        raise ValueError("-n and -z conflict: give a number of requests or a duration, not both")
    requests = None if args.z is not None else (args.n if args.n is not None else 200)
    return {
        "url": url,
        "method": args.m,
        "headers": headers,
        "body": body,
        "requests": requests,
        "concurrency": args.c,
        "qps": args.q,
        "duration": args.z,
        "timeout": args.t,
        "keepalive": not args.disable_keepalive,
        "rate": args.rate,
        "profile": args.profile,
        "locustfile": str(Path(args.locustfile).absolute()) if args.locustfile else None,
        "csv": args.o == "csv",
        "basic_auth": basic_auth,
        "host_header": args.host or None,
        "sessions": args.sessions,
    }


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(x) for x in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the ``loadtest`` command; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from loadtest.serve_args import build_parser as serve_parser

        serve_parser().parse_args(argv[1:])  # --help and usage errors before Locust is imported
        from loadtest.serve import main as serve_main

        return serve_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.worker:
        return _worker(args, argv)
    if args.url is None:
        return _usage_error(
            "the following arguments are required: URL (only a --worker gets it from the master)"
        )
    try:
        plan = plan_from_args(args)
    except ValidationError as exc:
        return _usage_error(_explain(exc))
    except ValueError as exc:
        return _usage_error(str(exc))
    processes = args.cpus if args.cpus is not None else args.processes
    if processes < 1:
        return _usage_error(f"--processes must be at least 1 (got {processes})")
    if plan.csv and (processes > 1 or args.master or args.worker):
        return _usage_error(
            "-o csv streams from one process: it cannot be combined with --processes/--master"
        )
    if plan.csv and args.json:  # both on stdout would be neither valid CSV nor JSON
        return _usage_error("-o csv and --json conflict: choose one output format")
    return _run(plan, args, processes, argv)


def _usage_error(message: str) -> int:
    sys.stderr.write(f"loadtest: error: {message}\n")
    return EXIT_USAGE


def _worker(args: argparse.Namespace, argv: list[str]) -> int:
    """``--worker``: get the plan from the master; flags given here must agree with it."""
    if args.master:
        return _usage_error("--master and --worker conflict")
    try:
        claims = worker_claims(args, given_flags(argv))
    except ValidationError as exc:
        return _usage_error(_explain(exc))
    except ValueError as exc:
        return _usage_error(str(exc))
    import logging

    from loadtest.runner import RunError, run_worker

    logging.basicConfig(level=logging.ERROR, format="loadtest: %(levelname)s: %(message)s")
    try:
        run_worker(claims, args.master_host, args.master_port)
    except RunError as exc:
        return _usage_error(str(exc))
    return EXIT_OK


def _run(plan: RunPlan, args: argparse.Namespace, processes: int, argv: list[str]) -> int:
    import logging

    from loadtest.runner import Distributed, RunError, run_local, run_local_processes, run_master

    # Locust logs spawning chatter at INFO; a load generator's output is its report
    logging.basicConfig(level=logging.ERROR, format="loadtest: %(levelname)s: %(message)s")
    import gevent.event

    out = sys.stdout
    csv_sink = None
    # A reader that goes away (`loadtest -o csv URL | head`) ends the run, like hey's SIGPIPE.
    reader_gone = gevent.event.Event()
    if plan.csv:
        from loadtest.report import CSV_HEADER

        out.write(CSV_HEADER + "\n")

        def csv_sink(row: str) -> None:
            if reader_gone.is_set():
                return
            try:
                out.write(row + "\n")
            except BrokenPipeError:
                reader_gone.set()

    bar = _ProgressBar(plan) if not args.quiet and sys.stderr.isatty() else None
    progress = bar.progress if bar is not None else None
    try:
        if args.master:
            where = Distributed(args.master_bind_host, args.master_bind_port, args.expect_workers)
            report = run_master(plan, where, progress)
        elif processes > 1:
            report = run_local_processes(plan, processes, progress)
        else:
            report = run_local(plan, progress, stop_event=reader_gone, csv_sink=csv_sink, handle_signals=True)
    except RunError as exc:
        return _usage_error(str(exc))
    finally:
        if bar is not None:
            bar.stop()
    try:
        if reader_gone.is_set():
            raise BrokenPipeError
        if args.json:
            out.write(report.json() + "\n")
        elif not plan.csv:
            out.write(report.text())
        out.flush()
    except BrokenPipeError:
        # Nothing more can reach the reader; point stdout at /dev/null so that the interpreter's
        # own flush at exit does not fail again, and exit as a process killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return _verdict(report)


def _verdict(report: Report) -> int:
    """Non-zero, with a one-line summary on stderr, when not a single request got a response."""
    results = report.results
    if results.requests == 0:
        sys.stderr.write("loadtest: error: no request was sent\n")
        return EXIT_ALL_FAILED
    if results.responses == 0:
        top = max(results.errors.items(), key=lambda kv: kv[1])[0] if results.errors else "unknown"
        sys.stderr.write(
            f"loadtest: error: all {results.requests} requests to {redact(report.url)} failed; "
            f"most frequent error: {top}\n"
        )
        return EXIT_ALL_FAILED
    return EXIT_OK


class _ProgressBar:
    """A rich progress bar on stderr: requests out of -n, or seconds out of -z."""

    def __init__(self, plan: RunPlan) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from loadtest.runner import Progress as LiveFigures

        self._by_time = plan.duration is not None
        total = plan.duration if plan.duration is not None else float(plan.requests or 0)
        self._bar = Progress(
            TextColumn("[bold]loadtest[/bold]"),
            BarColumn(),
            TextColumn("{task.fields[requests]} requests, {task.fields[rps]:.0f} req/s"),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self._task = self._bar.add_task("run", total=total, requests=0, rps=0.0)
        self.progress = LiveFigures(listeners=[self._update])
        self._bar.start()

    def _update(self, requests: int, elapsed: float) -> None:
        done = elapsed if self._by_time else requests
        rps = requests / elapsed if elapsed > 0 else 0.0
        self._bar.update(self._task, completed=done, requests=requests, rps=rps)

    def stop(self) -> None:
        """Remove the bar from the terminal."""
        self._bar.stop()
