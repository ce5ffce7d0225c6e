"""Runs a plan on Locust's runners: one process, master + local worker processes, or distributed.

* local: ``Environment.create_local_runner()``; the lean users stop themselves when their share is
  sent (``-n``) or the duration is over (``-z``).
* ``--processes N``: this process is Locust's master, N child processes (this same command with
  ``--worker``) are its workers on loopback: Locust's own multi-process mode.
* ``--master`` / ``--worker``: the same across machines or pods.

The plan travels from the master to the workers over Locust's own custom messages: a worker says
``loadtest_hello`` with the flags it was given (its claims), the master answers ``loadtest_plan``
(the whole :class:`RunPlan`) or ``loadtest_refused`` (the claims contradict the plan), and the
worker answers ``loadtest_ready`` (or ``loadtest_refused`` when it finds a contradiction itself, or
cannot load the plan's locustfile). The master starts only when ``--expect-workers`` workers are
ready and no other is connected, so no worker ever runs a plan of its own.

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
from locust import User, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import STATE_STOPPED, Runner, WorkerRunner

from loadtest.engine import (
    FINAL_MESSAGE,
    FLUSH_INTERVAL,
    Recorder,
    attach_request_listener,
    listen,
    make_user_class,
)
from loadtest.options import RunPlan, contradictions
from loadtest.report import Report
from loadtest.results import Results

log = logging.getLogger("loadtest")

SPAWN_RATE_PER_USER = 1000.0  # hey starts all workers at once; so do we (one spawn step)
WORKER_WAIT_SECONDS = 60.0
PLAN_WAIT_SECONDS = 30.0
HELLO, PLAN, READY, REFUSED = "loadtest_hello", "loadtest_plan", "loadtest_ready", "loadtest_refused"
ADVICE = "start workers with only --master-host (and --master-port): they get the plan from the master"


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


def _users(plan: RunPlan, recorder: Recorder) -> tuple[list[type[User]], str]:
    """The plan's user classes and host: the lean user, or the locustfile's users."""
    if plan.locustfile is not None:
        return load_user_classes(plan.locustfile), plan.url.rstrip("/")
    return [make_user_class(plan, recorder)], plan.url


def build_environment(plan: RunPlan, recorder: Recorder) -> Environment:
    """A Locust Environment running the lean user, or the locustfile's users with a request listener."""
    user_classes, host = _users(plan, recorder)
    environment = Environment(user_classes=user_classes, host=host)
    if plan.locustfile is not None:
        attach_request_listener(environment, recorder)
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
    handshake = _MasterHandshake(runner, plan)
    if on_listening is not None:
        on_listening()
    waited = time.monotonic()
    while not handshake.complete(where.expect_workers):
        if time.monotonic() - waited > WORKER_WAIT_SECONDS:
            runner.quit()
            raise RunError(handshake.shortfall(where, WORKER_WAIT_SECONDS))
        gevent.sleep(0.05)
    handshake.started = True
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


class _MasterHandshake:
    """The master's side of the plan hand-over: which workers are ready, which were refused."""

    def __init__(self, runner: Any, plan: RunPlan) -> None:
        self.runner = runner
        self.plan = plan
        self.ready: set[str] = set()
        self.refused: dict[str, str] = {}
        self.started = False
        runner.register_message(HELLO, self._hello)
        runner.register_message(READY, self._ready)
        runner.register_message(REFUSED, self._refused)
        # Locust hands users to any worker that connects while a test runs, in its own handling of
        # "client_ready" (MasterRunner.handle_message), before a custom message can say whether
        # the worker has the plan; the lost users leave the rate short. Once the run has started, a
        # newcomer gets only the "ack" it waits for (so it can say hello and hear the refusal) and is
        # never counted as a worker. No Locust hook runs before that dispatch, hence the wrapper.
        original = runner.handle_message

        def handle_message(client_id: str, msg: Any) -> None:
            if self.started and msg.type == "client_ready" and client_id not in runner.clients:
                runner.send_message("ack", client_id=client_id, data={"index": -1})
                return
            original(client_id, msg)

        runner.handle_message = handle_message

    def _refuse(self, worker: str, reason: str) -> None:
        self.refused[worker] = reason
        self.runner.send_message(REFUSED, {"reason": reason}, client_id=worker)
        sys.stderr.write(f"loadtest: error: refused worker {worker}: {reason}\n")
        sys.stderr.flush()

    def _hello(self, environment: Environment, msg: Any, **_: Any) -> None:
        worker = msg.node_id
        claims = (msg.data or {}).get("claims")
        if self.started:
            self._refuse(worker, "the run has already started (a worker must connect before it)")
            return
        if not isinstance(claims, dict):
            self._refuse(worker, "it sent no flags to check (a different loadtest version?)")
            return
        disagree = contradictions(claims, self.plan)
        if disagree:
            self._refuse(worker, "its flags contradict the master's: " + "; ".join(disagree) + f"; {ADVICE}")
            return
        self.runner.send_message(PLAN, {"plan": self.plan.model_dump()}, client_id=worker)

    def _ready(self, environment: Environment, msg: Any, **_: Any) -> None:
        if msg.node_id not in self.refused:
            self.ready.add(msg.node_id)

    def _refused(self, environment: Environment, msg: Any, **_: Any) -> None:
        reason = str((msg.data or {}).get("reason", "no reason given"))
        self.refused[msg.node_id] = reason
        self.ready.discard(msg.node_id)
        sys.stderr.write(f"loadtest: error: worker {msg.node_id} refused the plan: {reason}\n")
        sys.stderr.flush()

    def complete(self, expected: int) -> bool:
        """Enough workers are ready, and every connected worker is one of them."""
        connected = set(self.runner.clients)
        return len(connected & self.ready) >= expected and connected <= self.ready

    def shortfall(self, where: Distributed, waited: float) -> str:
        """Why the run could not start: the message of the :class:`RunError`."""
        connected = set(self.runner.clients)
        text = (
            f"only {len(connected & self.ready)} of {where.expect_workers} workers were ready within "
            f"{waited:.0f}s on {where.bind_host}:{where.port}"
        )
        waiting = connected - self.ready - set(self.refused)
        if waiting:
            text += f"; {len(waiting)} connected but never asked for the plan (a different loadtest version?)"
        if self.refused:
            text += (
                f"; {len(self.refused)} refused (" + "; ".join(sorted(set(self.refused.values())))[:500] + ")"
            )
        return text


@dataclass
class _WorkerPlan:
    """The plan a worker got from its master (None until then), or why it was refused."""

    plan: RunPlan | None = None
    refused: str | None = None
    settled: gevent.event.Event = field(default_factory=gevent.event.Event)


def _placeholder_user(holder: _WorkerPlan) -> type[User]:
    """The user class a worker has before the plan: Locust needs one to create the runner. Its
    users (only a late spawn could make one) wait for the plan and do nothing."""

    class HeyUser(User):  # the lean user's name: spawn messages name users by class name
        def wait_time(self) -> float:
            return 1.0

        @task
        def wait_for_plan(self) -> None:
            holder.settled.wait(PLAN_WAIT_SECONDS)
            raise StopUser()

    return HeyUser


def run_worker(claims: dict[str, Any], master_host: str, master_port: int) -> None:
    """Be a Locust worker: get the plan from the master (checked against ``claims``, the flags this
    worker was given), run the users the master hands out, report, send the final figures."""
    holder = _WorkerPlan()
    recorder = Recorder(name="", method="GET", keep_unreported=True)
    environment = Environment(user_classes=[_placeholder_user(holder)])
    try:
        runner: WorkerRunner = environment.create_worker_runner(
            master_host=master_host, master_port=master_port
        )
    except ConnectionError:
        raise RunError(f"cannot connect to the master at {master_host}:{master_port}") from None

    def refuse(reason: str) -> None:
        holder.refused = reason
        holder.settled.set()

    def on_plan(environment: Environment, msg: Any, **_: Any) -> None:
        plan = _accept(msg.data, claims, environment, recorder)
        if isinstance(plan, str):
            runner.send_message(REFUSED, {"reason": plan})
            refuse(plan)
            return
        holder.plan = plan
        holder.settled.set()
        runner.send_message(READY, {})

    def on_refused(environment: Environment, msg: Any, **_: Any) -> None:
        refuse(str((msg.data or {}).get("reason", "no reason given")))

    runner.register_message(PLAN, on_plan)
    runner.register_message(REFUSED, on_refused)
    runner.send_message(HELLO, {"claims": claims})
    if not holder.settled.wait(PLAN_WAIT_SECONDS) or holder.plan is None:
        reason = holder.refused or f"no plan from the master within {PLAN_WAIT_SECONDS:.0f}s"
        runner.send_message("quit")  # Locust's own: the master forgets this worker
        runner.quit()
        raise RunError(f"the master at {master_host}:{master_port} refused this worker: {reason}")
    _run_worker_plan(holder.plan, environment, runner, recorder)


def _adopt(environment: Environment, plan: RunPlan, recorder: Recorder) -> None:
    """Put the plan's users in place of the placeholder (before the master's first spawn)."""
    recorder.name, recorder.method = plan.url, plan.method
    environment.user_classes[:], environment.host = _users(plan, recorder)
    if plan.locustfile is not None:
        attach_request_listener(environment, recorder)


def _accept(data: Any, claims: dict[str, Any], environment: Environment, recorder: Recorder) -> RunPlan | str:
    """The master's plan, adopted, or why this worker refuses it (its flags contradict it, it does
    not validate here, its locustfile does not load)."""
    try:
        plan = RunPlan.model_validate(data["plan"])
    except (ValueError, KeyError, TypeError) as exc:
        return f"the master's plan does not validate here: {exc}"
    disagree = contradictions(claims, plan)
    if disagree:
        return "its flags contradict the master's: " + "; ".join(disagree) + f"; {ADVICE}"
    try:
        _adopt(environment, plan, recorder)
    except RunError as exc:
        return str(exc)
    return plan


def _run_worker_plan(
    plan: RunPlan, environment: Environment, runner: WorkerRunner, recorder: Recorder
) -> None:
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


def run_local_processes(plan: RunPlan, processes: int, progress: Progress | None = None) -> Report:
    """Locust's multi-process mode: this process is the master, ``processes`` local workers run the load.

    The workers are this same command with only ``--worker`` and the master's address (never a
    shell): they get the plan from the master, as remote workers do.
    """
    where = Distributed(bind_host="127.0.0.1", port=_free_port(), expect_workers=processes)
    children: list[subprocess.Popen[bytes]] = []

    def spawn_workers() -> None:
        command = [
            sys.executable,
            "-m",
            "loadtest",
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
