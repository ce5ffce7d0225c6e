"""Runs a plan on Locust's runners: one process, master + local worker processes, or distributed.

* local: ``Environment.create_local_runner()``; the lean users stop themselves when their share is
  sent (``-n``) or the duration is over (``-z``).
* ``--processes N``: this process is Locust's master, N child processes (this same command with
  ``--worker``) are its workers on loopback: Locust's own multi-process mode.
* ``--master`` / ``--worker``: the same across machines or pods.

Workers send their exact aggregates twice: as deltas riding on Locust's ``report_to_master`` (for
the live figures) and once at the end as a custom ``loadtest_final`` message (the figures we print).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
from locust import User
from locust.env import Environment
from locust.runners import STATE_STOPPED, Runner, WorkerRunner

from loadtest.engine import (
    FINAL_MESSAGE,
    FLUSH_INTERVAL,
    Recorder,
    attach_request_listener,
    listen,
    make_user_class,
)
from loadtest.options import RunPlan
from loadtest.report import Report
from loadtest.results import Results

log = logging.getLogger("loadtest")

SPAWN_RATE_PER_USER = 1000.0  # hey starts all workers at once; so do we (one spawn step)
WORKER_WAIT_SECONDS = 60.0


class RunError(Exception):
    """The run could not start (bad locustfile, no workers, port in use...)."""


@dataclass
class Distributed:
    """Where the master listens and how many workers it waits for."""

    bind_host: str = "127.0.0.1"
    port: int = 5557
    expect_workers: int = 1


@dataclass
class Progress:
    """Live figures for the progress bar and for ``loadtest serve``."""

    requests: int = 0
    elapsed: float = 0.0
    listeners: list[Callable[[int, float], None]] = field(default_factory=list)

    def update(self, requests: int, elapsed: float) -> None:
        """Publish new figures."""
        self.requests, self.elapsed = requests, elapsed
        for listener in self.listeners:
            listener(requests, elapsed)


def load_user_classes(path: str) -> list[type[User]]:
    """The User classes of a locustfile; any import problem becomes one clear :class:`RunError`."""
    from locust.util.load_locustfile import load_locustfile

    if not os.path.isfile(path):
        raise RunError(f"-f {path}: no such locustfile")
    try:
        classes, _shapes = load_locustfile(path)
    except SystemExit as exc:
        raise RunError(f"-f {path}: could not be imported (exit {exc.code})") from None
    except Exception as exc:
        raise RunError(f"-f {path}: could not be imported: {type(exc).__name__}: {exc}") from None
    if not classes:
        raise RunError(f"-f {path}: defines no Locust User class")
    return list(classes.values())


def build_environment(plan: RunPlan, recorder: Recorder) -> Environment:
    """A Locust Environment running the lean user, or the locustfile's users with a request listener."""
    if plan.locustfile is not None:
        user_classes = load_user_classes(plan.locustfile)
        environment = Environment(user_classes=user_classes, host=plan.url.rstrip("/"))
        attach_request_listener(environment, recorder)
    else:
        environment = Environment(user_classes=[make_user_class(plan, recorder)], host=plan.url)
    return environment


def _flush(environment: Environment, recorder: Recorder, plan: RunPlan) -> None:
    # a locustfile's requests are already in Locust's stats, one event each
    recorder.flush(None if plan.locustfile else environment)


def _flusher(environment: Environment, recorder: Recorder, plan: RunPlan) -> gevent.Greenlet:
    def loop() -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL)
            _flush(environment, recorder, plan)

    return gevent.spawn(loop)


def _grace(plan: RunPlan) -> float:
    """How long after the duration in-flight requests may still finish."""
    return min(plan.timeout or 5.0, 5.0) + 0.5


@contextlib.contextmanager
def _interrupts(stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM end the run early (the report still prints), like hey."""
    if sys.platform == "win32":  # pragma: no cover
        yield
        return
    hub = gevent.get_hub()
    watchers = [hub.loop.signal(sig) for sig in (signal.SIGINT, signal.SIGTERM)]
    for watcher in watchers:
        watcher.start(stop)
    try:
        yield
    finally:
        for watcher in watchers:
            watcher.stop()


def _lean_done(recorder: Recorder, concurrency: int) -> bool:
    return recorder.users_started >= concurrency and recorder.users_finished >= recorder.users_started


def run_local(
    plan: RunPlan,
    progress: Progress | None = None,
    stop_event: Any = None,
    csv_sink: Callable[[str], None] | None = None,
    recorder: Recorder | None = None,
    *,
    handle_signals: bool | None = None,
) -> Report:
    """Run in this process on Locust's LocalRunner; returns the report when the run is over.

    ``stop_event`` (a ``gevent.event.Event``) ends the run early when set, ``recorder`` lets the
    caller read live figures (``loadtest serve``), ``csv_sink`` receives one CSV row per request.
    Ctrl-C and SIGTERM end the run when ``handle_signals`` is true (default: when no ``stop_event``
    is given; an embedding caller such as ``loadtest serve`` owns the signals).
    """
    if recorder is None:
        recorder = Recorder(name=plan.url, method=plan.method)
    recorder.csv_sink = csv_sink
    environment = build_environment(plan, recorder)
    runner = environment.create_local_runner()
    return _drive_local(
        plan=plan,
        environment=environment,
        runner=runner,
        recorder=recorder,
        progress=progress,
        stop_event=stop_event,
        handle_signals=stop_event is None if handle_signals is None else handle_signals,
    )


def _drive_local(
    *,
    plan: RunPlan,
    environment: Environment,
    runner: Runner,
    recorder: Recorder,
    progress: Progress | None,
    stop_event: Any,
    handle_signals: bool | None = None,
) -> Report:
    stopping = stop_event if stop_event is not None else gevent.event.Event()
    flusher = _flusher(environment, recorder, plan)
    start = time.monotonic()
    if plan.locustfile is not None:
        recorder.started_at = time.time()
    hard_deadline = start + plan.duration + _grace(plan) if plan.duration is not None else float("inf")
    soft_deadline = start + plan.duration if plan.duration is not None else float("inf")
    # an embedding caller (loadtest serve) owns the signals and stops us through stop_event
    if handle_signals is None:
        handle_signals = stop_event is None
    guard = _interrupts(stopping.set) if handle_signals else contextlib.nullcontext()
    try:
        with guard:
            runner.start(plan.concurrency, spawn_rate=SPAWN_RATE_PER_USER * plan.concurrency)
            while not stopping.is_set():
                stopping.wait(0.05)
                now = time.monotonic()
                snapshot = recorder.pending.requests + recorder.total.requests
                if progress is not None:
                    progress.update(snapshot, now - start)
                if plan.locustfile is not None:
                    if (plan.requests is not None and snapshot >= plan.requests) or now >= soft_deadline:
                        break
                elif _lean_done(recorder, plan.concurrency) or now >= hard_deadline:
                    break
    finally:
        runner.quit()
        flusher.kill()
        _flush(environment, recorder, plan)
        if plan.locustfile is not None:
            recorder.finished_at = time.time()
    return Report(recorder.total, recorder.elapsed, plan.url, plan.open_model, plan.rate)


def run_master(  # noqa: PLR0915  (one sequence: listen, wait, run, collect)
    plan: RunPlan,
    where: Distributed,
    progress: Progress | None = None,
    on_listening: Callable[[], None] | None = None,
) -> Report:
    """Be Locust's master: wait for the workers, hand out the users, merge the workers' results."""
    recorder = Recorder(name=plan.url, method=plan.method)
    environment = build_environment(plan, recorder)
    try:
        runner = environment.create_master_runner(
            master_bind_host=where.bind_host, master_bind_port=where.port
        )
    except Exception as exc:  # zmq raises its own errors for ports in use
        raise RunError(f"master cannot listen on {where.bind_host}:{where.port}: {exc}") from None
    live = Results()
    finals: dict[str, tuple[Results, float | None, float | None]] = {}

    def on_worker_report(client_id: str, data: dict[str, Any]) -> None:
        if "loadtest" in data:
            live.merge(Results.from_dict(data["loadtest"]))

    def on_final(environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        finals[msg.node_id] = (Results.from_dict(data["results"]), data["started_at"], data["finished_at"])

    listen(environment.events.worker_report, on_worker_report)
    runner.register_message(FINAL_MESSAGE, on_final)
    if on_listening is not None:
        on_listening()
    waited = time.monotonic()
    while runner.worker_count < where.expect_workers:
        if time.monotonic() - waited > WORKER_WAIT_SECONDS:
            runner.quit()
            raise RunError(
                f"only {runner.worker_count} of {where.expect_workers} workers connected within "
                f"{WORKER_WAIT_SECONDS:.0f}s to {where.bind_host}:{where.port}"
            )
        gevent.sleep(0.05)
    workers = runner.worker_count
    start = time.monotonic()
    hard_deadline = start + plan.duration + _grace(plan) + 3 if plan.duration is not None else float("inf")
    stopping = gevent.event.Event()
    try:
        with _interrupts(stopping.set):
            runner.start(plan.concurrency, spawn_rate=SPAWN_RATE_PER_USER * plan.concurrency)
            while not stopping.is_set() and len(finals) < workers:
                stopping.wait(0.05)
                now = time.monotonic()
                if progress is not None:
                    progress.update(live.requests, now - start)
                overdue = now >= hard_deadline
                enough = plan.locustfile is not None and (
                    (plan.requests is not None and live.requests >= plan.requests)
                    or (plan.duration is not None and now >= start + plan.duration)
                )
                if (overdue or enough) and runner.state != STATE_STOPPED:
                    runner.stop()  # workers fire test_stop and send their finals
            if stopping.is_set() and runner.state != STATE_STOPPED:
                runner.stop()
            waited = time.monotonic()
            while len(finals) < workers and time.monotonic() - waited < 10:
                gevent.sleep(0.05)
    finally:
        runner.quit()
    total = Results()
    starts, ends = [], []
    for results, started, finished in finals.values():
        total.merge(results)
        if started is not None:
            starts.append(started)
        if finished is not None:
            ends.append(finished)
    if len(finals) < workers:
        log.warning("%d of %d workers did not send their final results", workers - len(finals), workers)
    elapsed = max(ends) - min(starts) if starts and ends else time.monotonic() - start
    return Report(total, elapsed, plan.url, plan.open_model, plan.rate)


def run_worker(plan: RunPlan, master_host: str, master_port: int) -> None:
    """Be a Locust worker: run the users the master hands out, report, send the final figures."""
    recorder = Recorder(name=plan.url, method=plan.method, keep_unreported=True)
    environment = build_environment(plan, recorder)
    runner: WorkerRunner = environment.create_worker_runner(master_host=master_host, master_port=master_port)
    sent = {"final": False, "spawned": False}

    def on_report(client_id: str, data: dict[str, Any]) -> None:
        _flush(environment, recorder, plan)
        data["loadtest"] = recorder.take_unreported().to_dict()

    def send_final(**_: Any) -> None:
        if sent["final"]:
            return
        sent["final"] = True
        _flush(environment, recorder, plan)
        if recorder.finished_at is None:
            recorder.finished_at = time.time()
        runner.send_message(
            FINAL_MESSAGE,
            {
                "results": recorder.total.to_dict(),
                "started_at": recorder.started_at,
                "finished_at": recorder.finished_at,
            },
        )

    def on_spawned(**_: Any) -> None:
        sent["spawned"] = True

    listen(environment.events.report_to_master, on_report)
    listen(environment.events.test_stop, send_final)
    listen(environment.events.spawning_complete, on_spawned)

    def watch() -> None:
        # lean users stop themselves; tell the master as soon as they all have
        while not sent["final"]:
            gevent.sleep(0.05)
            if (
                plan.locustfile is None
                and sent["spawned"]
                and recorder.users_started
                and recorder.users_finished >= recorder.users_started
            ):
                send_final()

    watcher = gevent.spawn(watch)
    flusher = _flusher(environment, recorder, plan)
    try:
        runner.greenlet.join()
    finally:
        watcher.kill()
        flusher.kill()


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_local_processes(
    plan: RunPlan, processes: int, worker_argv: list[str], progress: Progress | None = None
) -> Report:
    """Locust's multi-process mode: this process is the master, ``processes`` local workers run the load.

    The workers are this same command with ``--worker`` (never a shell): they parse the same flags,
    so they build the same plan.
    """
    where = Distributed(bind_host="127.0.0.1", port=_free_port(), expect_workers=processes)
    children: list[subprocess.Popen[bytes]] = []

    def spawn_workers() -> None:
        command = [
            sys.executable,
            "-m",
            "loadtest",
            *worker_argv,
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(where.port),
        ]
        for _ in range(processes):
            children.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))

    try:
        return run_master(plan, where, progress, on_listening=spawn_workers)
    finally:
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
