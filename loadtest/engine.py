"""The Locust side: a lean User, batched reporting into Locust's stats, local and distributed runs.

Importing this module imports Locust, which monkey-patches the interpreter with gevent: only the
``loadtest`` process itself may import it (``rollouts`` and ``analyzer`` never do).

Design of the hot path (why it is not a FastHttpUser):

* each Locust user owns one keep-alive :class:`~loadtest.http.Connection` and loops over prebuilt
  request bytes inside a single task; there is no per-request object, event or dict;
* every request goes into the process's :class:`Recorder` (a fixed-size histogram and counters);
* once a second the recorder folds its batch into Locust's own ``RequestStats`` (one
  ``StatsEntry.extend`` per batch), and on a worker the batch also rides on Locust's
  ``report_to_master`` so the master merges exact histograms, not Locust's rounded ones.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gevent
from locust import User, task
from locust.env import Environment
from locust.exception import StopUser
from locust.stats import StatsEntry, StatsError, bucket_response_time

from analyzer.redaction import redact
from loadtest.histogram import bucket_value
from loadtest.http import Connection, CookieJar, RequestTemplate, TransportError, build_request
from loadtest.options import RunPlan
from loadtest.report import csv_row
from loadtest.results import Results

log = logging.getLogger("loadtest")

FLUSH_INTERVAL = 1.0
FINAL_MESSAGE = "loadtest_final"
SCHEDULE_SLACK = 0.002  # seconds of wake-up lateness that count as timer jitter, not queueing


def listen(hook: Any, listener: Callable[..., None]) -> None:
    """Add a listener to a Locust event hook (``EventHook.add_listener`` is untyped)."""
    hook.add_listener(listener)


def request_templates(plan: RunPlan) -> list[RequestTemplate]:
    """The request(s) one user cycles through: the URL itself or the profile's paths on its host."""
    base = plan.url.rstrip("/") if plan.profile else plan.url
    return [
        build_request(
            base + path,
            method=plan.method,
            headers=plan.headers,
            body=plan.body,
            keepalive=plan.keepalive,
            basic_auth=plan.basic_auth,
            host_header=plan.host_header,
        )
        for path in plan.paths()
    ]


@dataclass
class Recorder:
    """One process's aggregates: the batch being filled, and everything flushed so far.

    gevent is cooperative and single-threaded, so users write to ``pending`` without locks.
    """

    name: str
    method: str
    pending: Results = field(default_factory=Results)
    total: Results = field(default_factory=Results)
    unreported: Results = field(default_factory=Results)  # for the master, on a worker
    started_at: float | None = None  # wall clock of the first send
    finished_at: float | None = None  # wall clock of the last response
    users_started: int = 0
    users_finished: int = 0
    csv_sink: Callable[[str], None] | None = None
    keep_unreported: bool = False  # only a worker has a master to report to

    def flush(self, environment: Environment | None) -> Results:
        """Close the current batch: fold it into the totals and into Locust's stats."""
        batch, self.pending = self.pending, Results()
        if batch.requests:
            self.total.merge(batch)
            if self.keep_unreported:
                self.unreported.merge(batch)
            if environment is not None:
                _extend_locust_stats(environment, self.name, self.method, batch)
        return batch

    def take_unreported(self) -> Results:
        """The batches not yet sent to the master (and forget them)."""
        batch, self.unreported = self.unreported, Results()
        return batch

    def snapshot(self) -> Results:
        """Totals including the current batch (a copy)."""
        copy = Results()
        copy.merge(self.total)
        copy.merge(self.pending)
        return copy

    @property
    def elapsed(self) -> float:
        """Seconds from the first send to the last response (0 before any)."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(end - self.started_at, 0.0)


def _extend_locust_stats(environment: Environment, name: str, method: str, batch: Results) -> None:
    """Apply one batch to Locust's RequestStats, as one ``StatsEntry.extend`` (its merge operation)."""
    stats = environment.stats
    now = time.time()
    entry = StatsEntry(stats, name, method)
    entry.num_requests = batch.requests
    entry.num_failures = batch.failures
    entry.num_none_requests = batch.error_count  # no response, no response time
    lat = batch.latency
    # Locust keeps whole milliseconds; our own histogram keeps the precision
    entry.total_response_time = round(lat.total * 1000)
    if lat.count:
        entry.min_response_time = round(lat.minimum * 1000)
        entry.max_response_time = round(lat.maximum * 1000)
    for index, count in lat.buckets():
        key = bucket_response_time(bucket_value(index) * 1000)
        entry.response_times[key] = entry.response_times.get(key, 0) + count
    entry.num_reqs_per_sec = {int(now): batch.requests}
    if batch.failures:
        entry.num_fail_per_sec = {int(now): batch.failures}
    entry.total_content_length = batch.body_bytes
    entry.start_time = now - FLUSH_INTERVAL
    entry.last_request_timestamp = now
    stats.get(name, method).extend(entry)
    stats.total.extend(entry)
    for message, count in batch.errors.items():
        # not stats.log_error: it would count the failures a second time
        error_key = StatsError.create_key(method, name, message)
        error = stats.errors.get(error_key)
        if error is None:
            error = StatsError(method, name, message, first_seen=now)
            stats.errors[error_key] = error
        error.occurrences += count
        error.last_seen = now


class LeanUser(User):
    """A Locust user that runs hey's worker loop on one keep-alive connection.

    Configured per run by :func:`make_user_class` (class attributes, as Locust instantiates users).
    """

    abstract = True
    plan: ClassVar[RunPlan]
    recorder: ClassVar[Recorder]
    templates: ClassVar[list[RequestTemplate]]

    def wait_time(self) -> float:
        """No think time: the loop paces itself."""
        return 0.0

    @task
    def run_loop(self) -> None:
        """Send this user's share of the run, then stop the user."""
        recorder = self.recorder
        recorder.users_started += 1
        if recorder.started_at is None:
            recorder.started_at = time.time()
        try:
            self._loop()
        finally:
            recorder.users_finished += 1
            recorder.finished_at = time.time()
        raise StopUser()

    def _loop(self) -> None:  # noqa: PLR0915  (the hot loop is inlined on purpose: calls cost)
        plan = self.plan
        recorder = self.recorder
        templates = self.templates
        cycle = len(templates)
        turn = random.randrange(cycle)
        jar = CookieJar() if keeps_session(recorder.users_started - 1, plan.sessions) else None
        conn = Connection(templates[0], plan.timeout, jar)
        conns = [conn] if cycle == 1 else [Connection(t, plan.timeout, jar) for t in templates]
        clock = time.perf_counter
        begin = clock()
        quota = plan.per_user_requests
        remaining = quota if quota is not None else -1
        deadline = begin + plan.duration if plan.duration is not None else float("inf")
        open_model = plan.rate is not None
        interval = 0.0
        if open_model:
            assert plan.rate is not None
            interval = plan.concurrency / plan.rate
        elif plan.qps:
            interval = 1.0 / plan.qps
        intended = begin + random.random() * interval if open_model else begin
        csv_sink = recorder.csv_sink
        sleep = gevent.sleep
        run_start = begin
        watchdog = gevent.spawn(_watchdog, conns, plan.timeout) if plan.timeout else None
        try:
            while remaining != 0:
                now = clock()
                if open_model:
                    if intended >= deadline:
                        break
                    if intended > now:
                        sleep(intended - now)
                elif interval:
                    # hey's ticker: at most one request per interval, missed ticks are dropped
                    if intended > now:
                        sleep(intended - now)
                    intended = max(intended + interval, clock())
                    if intended - interval >= deadline:
                        break
                elif now >= deadline:
                    break
                remaining -= 1
                if cycle > 1:
                    turn = (turn + 1) % cycle
                    conn = conns[turn]
                sent = clock()
                try:
                    status, size, dialup, write, wait = conn.exchange()
                except TransportError as exc:
                    t = conn.template
                    recorder.pending.record_error(redact(f'{t.method.capitalize()} "{t.url}": {exc}'))
                    if open_model:
                        intended += interval
                    continue
                end = clock()
                batch = recorder.pending
                if open_model:
                    # Waking up to 2 ms late is the event loop's timer granularity (epoll counts
                    # milliseconds), not the target's doing; later than that, the send was queued
                    # behind slow responses and the whole wait counts (no coordinated omission).
                    origin = intended if sent - intended > SCHEDULE_SLACK else sent
                    batch.latency.record(end - origin)
                    batch.service.record(end - sent)
                    intended += interval
                else:
                    batch.latency.record(end - sent)
                phases = batch.phases
                read = end - sent - dialup - write - wait
                phases[0].add(dialup)
                phases[1].add(write)
                phases[2].add(wait)
                phases[3].add(read)
                codes = batch.status
                codes[status] = codes.get(status, 0) + 1
                batch.body_bytes += size
                if status >= 400:
                    batch.failures += 1
                if csv_sink is not None:
                    csv_sink(csv_row(end - sent, (dialup, write, wait, read), status, sent - run_start))
        finally:
            if watchdog is not None:
                watchdog.kill(block=False)
            for c in conns:
                c.close()


def keeps_session(index: int, share: float) -> bool:
    """Whether user ``index`` (0, 1, ... in start order) keeps cookies: the users that do are
    spread evenly, and of the first ``n`` users exactly ``floor(n * share)`` do."""
    return math.floor((index + 1) * share) > math.floor(index * share)


def _watchdog(conns: list[Connection], timeout: float) -> None:
    """Abort requests that run past ``timeout`` (checked a few times per timeout, at least every second)."""
    period = min(timeout / 4, 1.0)
    clock = time.perf_counter
    while True:
        gevent.sleep(period)
        now = clock()
        for conn in conns:
            conn.expire(now)


def make_user_class(plan: RunPlan, recorder: Recorder) -> type[LeanUser]:
    """A concrete LeanUser for this run (Locust matches users across workers by class name)."""
    return type(
        "HeyUser",
        (LeanUser,),
        {
            "abstract": False,
            "plan": plan,
            "recorder": recorder,
            "templates": request_templates(plan),
            "host": plan.url,
            "__module__": __name__,
        },
    )


def attach_request_listener(environment: Environment, recorder: Recorder) -> None:
    """For user locustfiles: record every Locust request event into the recorder (the slow path)."""

    def on_request(
        *,
        request_type: str,
        name: str,
        response_time: float | None,
        response_length: int,
        exception: BaseException | None = None,
        response: Any = None,
        **_: Any,
    ) -> None:
        if recorder.started_at is None:
            recorder.started_at = time.time()
        recorder.finished_at = time.time()
        batch = recorder.pending
        if exception is not None and getattr(response, "status_code", 0) in (0, None):
            batch.record_error(f'{request_type.capitalize()} "{name}": {exception}')
            return
        batch.latency.record((response_time or 0.0) / 1000)
        status = int(getattr(response, "status_code", 0) or 0)
        batch.status[status] = batch.status.get(status, 0) + 1
        batch.body_bytes += response_length or 0
        if exception is not None or status >= 400:
            batch.failures += 1

    listen(environment.events.request, on_request)
