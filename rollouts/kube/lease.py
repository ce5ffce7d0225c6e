"""Leader election on a ``coordination.k8s.io/v1`` Lease: only the leader commits.

Why not ``kubernetes.leaderelection``: it talks through the process-global default client, runs a
blocking loop whose only exit is losing the lease, cannot release the lease on shutdown, and gives
the caller no "am I still the leader right now?" check to guard each commit with. The algorithm
here is client-go's:

* a candidate takes the Lease when it is free, or when the record it observed has not changed for
  ``lease_duration`` seconds of its *own* clock (no trust in other machines' clocks);
* every write carries the ``resourceVersion`` it read, so of two candidates racing for the same
  record the API server accepts one and answers 409 Conflict to the other;
* the leader counts its leadership from the moment *before* its last successful renew request and
  gives it up after ``renew_deadline`` (< ``lease_duration``): by the time another candidate may
  take over, the old leader has already stopped believing it leads. Two replicas never both commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    """Which Lease, who we are, and the timing (client-go's defaults: 15 s / 10 s / 2 s)."""

    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "lease timing must satisfy 0 < retry_period < renew_deadline < lease_duration, got "
                f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}"
            )


class LeaderElector:
    """One candidate for one Lease. ``is_leader()`` guards every commit.

    ``clock`` is a monotonic clock in seconds (injectable so tests can step time deterministically);
    ``wall`` gives the timestamps written into the Lease for people and other tools to read.
    """

    def __init__(
        self,
        api: k8s.ApiClient,
        config: LeaseConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._api = k8s.CoordinationV1Api(api)
        self.config = config
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._observed: tuple[str | None, str | None, int | None] | None = None
        self._observed_at = 0.0
        self._leading_since: float | None = None  # clock time before the last successful write
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one round -----------------------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One attempt to take or keep the Lease; True when we hold it now."""
        cfg = self.config
        started = self._clock()
        now_wall = self._wall()
        try:
            lease: k8s.V1Lease = self._api.read_namespaced_lease(cfg.name, cfg.namespace)
        except ApiException as exc:
            if exc.status != 404:
                log.info("lease %s/%s: read failed: %s", cfg.namespace, cfg.name, exc.reason)
                return self._failed()
            return self._create(started, now_wall)

        spec = lease.spec or k8s.V1LeaseSpec()
        holder = spec.holder_identity or None
        record = (holder, str(spec.renew_time) if spec.renew_time else None, spec.lease_transitions)
        if record != self._observed:
            self._observed, self._observed_at = record, started
        # The holder's own duration counts (a released Lease says 1 s), measured on our clock.
        duration = float(spec.lease_duration_seconds or cfg.lease_duration)
        if holder not in (None, cfg.identity) and started < self._observed_at + duration:
            self._leading_since = None
            return False

        ours = holder == cfg.identity
        spec.holder_identity = cfg.identity
        spec.lease_duration_seconds = math.ceil(cfg.lease_duration)
        spec.renew_time = now_wall
        if not ours:
            spec.acquire_time = now_wall
            spec.lease_transitions = (spec.lease_transitions or 0) + (1 if holder else 0)
        lease.spec = spec
        try:
            # The body carries the resourceVersion we read: a concurrent writer makes this a 409.
            self._api.replace_namespaced_lease(cfg.name, cfg.namespace, lease)
        except ApiException as exc:
            log.info("lease %s/%s: update failed (%s): %s", cfg.namespace, cfg.name, exc.status, exc.reason)
            return self._failed()
        return self._won(started, holder)

    def _create(self, started: float, now_wall: dt.datetime) -> bool:
        cfg = self.config
        body = k8s.V1Lease(
            metadata=k8s.V1ObjectMeta(name=cfg.name, namespace=cfg.namespace),
            spec=k8s.V1LeaseSpec(
                holder_identity=cfg.identity,
                lease_duration_seconds=math.ceil(cfg.lease_duration),
                acquire_time=now_wall,
                renew_time=now_wall,
                lease_transitions=0,
            ),
        )
        try:
            self._api.create_namespaced_lease(cfg.namespace, body)
        except ApiException as exc:  # 409 AlreadyExists: someone else created it first
            log.info("lease %s/%s: create failed (%s)", cfg.namespace, cfg.name, exc.status)
            return self._failed()
        return self._won(started, None)

    def _won(self, started: float, previous: str | None) -> bool:
        with self._lock:
            if self._leading_since is None:
                log.info(
                    "lease %s/%s: %s leads now (was %s)",
                    self.config.namespace,
                    self.config.name,
                    self.config.identity,
                    previous or "nobody",
                )
            self._leading_since = started
        self._observed = None  # our own write changed the record; re-observe on the next read
        return True

    def _failed(self) -> bool:
        # A failed renew does not end leadership at once: is_leader() lets it run out at the deadline.
        return False

    # -- the guard -----------------------------------------------------------------------------

    def is_leader(self) -> bool:
        """True while the last successful acquire/renew is younger than ``renew_deadline``."""
        with self._lock:
            since = self._leading_since
        return since is not None and self._clock() < since + self.config.renew_deadline

    def release(self) -> bool:
        """Give the Lease up at once (on shutdown) so another replica need not wait it out."""
        cfg = self.config
        with self._lock:
            was_leading, self._leading_since = self._leading_since is not None, None
        if not was_leading:
            return False
        try:
            lease: k8s.V1Lease = self._api.read_namespaced_lease(cfg.name, cfg.namespace)
            if lease.spec is None or lease.spec.holder_identity != cfg.identity:
                return False
            # client-go's release: empty holder, 1 s duration, so the next candidate takes it now.
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = self._wall()
            self._api.replace_namespaced_lease(cfg.name, cfg.namespace, lease)
        except ApiException as exc:
            log.info("lease %s/%s: release failed (%s)", cfg.namespace, cfg.name, exc.status)
            return False
        return True

    # -- background loop -----------------------------------------------------------------------

    def start(self) -> None:
        """Run acquire/renew every ``retry_period`` in a daemon thread until ``stop()``."""
        if self._thread is not None:
            raise RuntimeError("elector already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.config.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.try_acquire_or_renew()
            except Exception:  # network errors etc.: leadership just runs out at the deadline
                log.exception("lease %s/%s: round failed", self.config.namespace, self.config.name)
            self._stop.wait(self.config.retry_period)

    def stop(self, *, release: bool = True) -> None:
        """Stop the loop and (by default) release the Lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.retry_period + 5)
            self._thread = None
        if release:
            self.release()
