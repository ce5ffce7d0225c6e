"""Leader election: two electors against the same (stateful, recorded-shape) Lease API."""

from __future__ import annotations

import threading
import time

import pytest

from rollouts.kube import LeaderElector, LeaseConfig, api_client
from tests.fixtures.kubeapi import RunningApi


class Clock:
    """A monotonic clock the test steps by hand: each elector has its own, as on two machines."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(api: RunningApi, identity: str, clock: Clock, **timing: float) -> LeaderElector:
    config = LeaseConfig(namespace="rollouts", name="controller", identity=identity, **timing)
    return LeaderElector(api_client(str(api.kubeconfig)), config, clock=clock)


def test_timing_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeaseConfig(namespace="a", name="b", identity="c", lease_duration=10, renew_deadline=10)


def test_first_creates_second_waits_then_takes_over_an_expired_lease(kube_api: RunningApi) -> None:
    clock_a, clock_b = Clock(), Clock()
    a, b = elector(kube_api, "a", clock_a), elector(kube_api, "b", clock_b)
    assert a.try_acquire_or_renew() and a.is_leader()
    assert not b.try_acquire_or_renew() and not b.is_leader()
    lease = kube_api.state.leases[("rollouts", "controller")]
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 15

    # a renews within the deadline; b sees the record change and restarts its wait
    clock_a.now += 5
    clock_b.now += 14
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()

    # a goes silent: its own belief ends at the renew deadline, before b may take over
    clock_a.now += 10.5
    assert not a.is_leader()
    clock_b.now += 14.9
    assert not b.try_acquire_or_renew()
    clock_b.now += 0.2
    assert b.try_acquire_or_renew() and b.is_leader()
    lease = kube_api.state.leases[("rollouts", "controller")]
    assert (lease["spec"]["holderIdentity"], lease["spec"]["leaseTransitions"]) == ("b", 1)

    # a comes back: the lease is b's and not expired by a's clock, so a stays a follower
    assert not a.try_acquire_or_renew() and not a.is_leader()


def test_racing_candidates_one_wins_by_resource_version(kube_api: RunningApi) -> None:
    clock = Clock()
    a, b, c = (elector(kube_api, name, clock) for name in "abc")
    assert a.try_acquire_or_renew()
    b.try_acquire_or_renew(), c.try_acquire_or_renew()  # both observe a's record
    clock.now += 16  # a is gone; both b and c see it expired
    # Interleave the two takeovers by hand: both read the same resourceVersion, then both write.
    results = []
    barrier = threading.Barrier(2)
    original_read = {}

    def racing(candidate: LeaderElector) -> None:
        api = candidate._api
        read = api.read_namespaced_lease
        original_read[candidate.config.identity] = read

        def read_then_wait(*args, **kwargs):
            lease = read(*args, **kwargs)
            barrier.wait(timeout=5)
            return lease

        api.read_namespaced_lease = read_then_wait  # type: ignore[method-assign]
        results.append((candidate.config.identity, candidate.try_acquire_or_renew()))

    threads = [threading.Thread(target=racing, args=(x,)) for x in (b, c)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(won for _, won in results) == [False, True]
    winner = next(name for name, won in results if won)
    assert kube_api.state.leases[("rollouts", "controller")]["spec"]["holderIdentity"] == winner
    assert [x.is_leader() for x in (b, c)].count(True) == 1


def test_release_hands_over_at_once(kube_api: RunningApi) -> None:
    clock = Clock()
    a, b = elector(kube_api, "a", clock), elector(kube_api, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert a.release() and not a.is_leader()
    assert b.try_acquire_or_renew()  # no need to wait out the 15 s
    assert not a.release()  # not the leader any more: nothing to release


def test_api_unreachable_means_leadership_runs_out(kube_api: RunningApi) -> None:
    clock = Clock()
    a = elector(kube_api, "a", clock)
    assert a.try_acquire_or_renew()
    kube_api.state.unavailable = True
    assert not a.try_acquire_or_renew()
    assert a.is_leader()  # still within the renew deadline
    clock.now += 10
    assert not a.is_leader()


def test_two_running_electors_never_lead_at_the_same_time(kube_api: RunningApi) -> None:
    timing = {"lease_duration": 0.8, "renew_deadline": 0.5, "retry_period": 0.05}
    a = LeaderElector(api_client(str(kube_api.kubeconfig)), LeaseConfig("rollouts", "run", "a", **timing))
    b = LeaderElector(api_client(str(kube_api.kubeconfig)), LeaseConfig("rollouts", "run", "b", **timing))
    both, history = 0, []

    def sample_until(condition, seconds: float) -> None:
        nonlocal both
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not condition():
            flags = (a.is_leader(), b.is_leader())
            both += all(flags)
            history.append(flags)
            time.sleep(0.005)

    try:
        a.start()
        sample_until(a.is_leader, 2)
        b.start()
        sample_until(lambda: False, 0.4)  # both running: a keeps renewing, b must stay a follower
        a.stop()  # the leader shuts down and releases the lease
        sample_until(b.is_leader, 2)
        sample_until(lambda: False, 0.1)
    finally:
        a.stop()
        b.stop()
    assert both == 0
    assert (True, False) in history and (False, True) in history
    assert history[-1] == (False, True)
