"""The local mesh serves the strategies as committed to Git: A/B matches (header, cookie, query),
mirroring (answers dropped, counted at the canary as Istio's destination sidecar counts them) and
session affinity, end to end against real services and a real Prometheus."""

from __future__ import annotations

import collections
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from analyzer.prometheus import PrometheusClient
from rollouts.local.mesh import SUBSET_HEADER
from rollouts.local.stack import LocalStack, StackConfig, guide_virtual_service
from rollouts.routes import Weights
from rollouts.routes.strategies import (
    Match,
    RequestMatch,
    SessionAffinity,
    StringMatch,
    cookie_condition,
    header,
)
from tests.local.services import CANARY, GA
from tests.support import require_binary

pytestmark = pytest.mark.integration

AB = Match(
    (
        header("x-user", "exact", "beta"),
        RequestMatch(headers=(cookie_condition("canary", "always"),)),
        RequestMatch(query=(("variant", StringMatch("exact", "b")),)),
    )
)


def send(
    stack: LocalStack, n: int, path: str = "/version", headers: dict[str, str] | None = None
) -> tuple[collections.Counter[str], list[tuple[str, str | None]]]:
    """``n`` requests, 8 at a time: how many each subset served, and (subset, Set-Cookie) per answer."""

    def one(_: int) -> tuple[str, str | None]:
        request = urllib.request.Request(stack.mesh_url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.headers[SUBSET_HEADER], response.headers.get("set-cookie")
        except urllib.error.HTTPError as error:
            return error.headers[SUBSET_HEADER] or "", error.headers.get("set-cookie")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(n)))
    return collections.Counter(subset for subset, _ in answers), answers


def prometheus_count(stack: LocalStack, query: str) -> float:
    """The sum of ``query``'s samples now (the analyzer's Prometheus client)."""
    return sum(sample.value for sample in PrometheusClient(stack.prometheus_url).query(query, time.time()))


def wait_for_count(stack: LocalStack, query: str, expected: float, timeout: float = 20.0) -> float:
    """Poll Prometheus until ``query`` sums to ``expected`` (bounded); the last value read."""
    deadline = time.monotonic() + timeout
    value = prometheus_count(stack, query)
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        value = prometheus_count(stack, query)
    return value


def settled_count(stack: LocalStack, query: str, timeout: float = 20.0) -> float:
    """``query``'s sum once two reads two scrape intervals apart agree (bounded)."""
    deadline = time.monotonic() + timeout
    value = prometheus_count(stack, query)
    while time.monotonic() < deadline:
        time.sleep(2 * stack.config.scrape_interval + 0.2)
        again = prometheus_count(stack, query)
        if again == value:
            return value
        value = again
    return value


CANARY_REQUESTS = 'sum(istio_requests_total{reporter="destination",destination_workload="podinfo-canary"})'
MIRRORED = 'sum(rollouts_mesh_mirrored_requests_total{destination_workload="podinfo-canary"})'


@pytest.fixture
def clean(stack: LocalStack) -> Iterator[LocalStack]:
    """The guide's route at 0 % before and after the test (other tests count requests per subset)."""
    stack.wait_for_revision(stack.commit_route(guide_virtual_service(0), "reset"))
    yield stack
    stack.wait_for_revision(stack.commit_route(guide_virtual_service(0), "reset"))


def test_ab_match_sends_only_matching_requests_to_the_canary(clean):
    stack = clean
    sha = stack.edit_route(lambda editor, text: editor.set_match(text, AB), "podinfo: A/B match")
    assert stack.wait_for_revision(sha)["weights"] == {"stable": 100, "canary": 0}
    before = settled_count(stack, CANARY_REQUESTS)
    assert send(stack, 20, headers={"X-User": "beta"})[0] == {"canary": 20}
    assert send(stack, 20, headers={"Cookie": "theme=dark; canary=always"})[0] == {"canary": 20}
    assert send(stack, 20, "/version?variant=b&x=1")[0] == {"canary": 20}
    plain = send(stack, 20, headers={"X-User": "alpha", "Cookie": "canary=never"})[0]
    assert plain == {"ga": 20}
    assert send(stack, 10, "/version?variant=a")[0] == {"ga": 10}
    # Prometheus saw exactly the matching requests at the canary.
    assert wait_for_count(stack, CANARY_REQUESTS, before + 60) == before + 60
    sha = stack.edit_route(lambda editor, text: editor.set_match(text, None), "podinfo: match removed")
    stack.wait_for_revision(sha)
    assert send(stack, 10, headers={"X-User": "beta"})[0] == {"ga": 10}


def test_mirror_copies_requests_to_the_canary_and_users_only_get_ga_answers(clean):
    stack = clean
    stack.wait_for_revision(stack.edit_route(lambda e, text: e.set_mirror(text, 100), "podinfo: mirror"))
    before, mirrored_before = settled_count(stack, CANARY_REQUESTS), settled_count(stack, MIRRORED)
    served, _ = send(stack, 40)
    assert served == {"ga": 40}  # nobody is served by the canary
    # ... yet the canary received every request, and Prometheus counts them at the canary.
    assert wait_for_count(stack, CANARY_REQUESTS, before + 40) == before + 40
    assert wait_for_count(stack, MIRRORED, mirrored_before + 40) == mirrored_before + 40
    # Half: a binomial share of the copies.
    stack.wait_for_revision(stack.edit_route(lambda e, text: e.set_mirror(text, 50), "podinfo: mirror 50%"))
    start = settled_count(stack, MIRRORED)
    assert send(stack, 200)[0] == {"ga": 200}
    share = settled_count(stack, MIRRORED) - start
    assert 60 <= share <= 140  # 100 expected, sd ~7
    stack.wait_for_revision(stack.edit_route(lambda e, text: e.set_mirror(text, None), "podinfo: no mirror"))
    settled = settled_count(stack, MIRRORED)
    assert send(stack, 20)[0] == {"ga": 20}
    assert settled_count(stack, MIRRORED) == settled


PREVIEW_REQUESTS = (
    'sum(istio_requests_total{reporter="destination",destination_workload="podinfo-canary",'
    'destination_service_name="podinfo-preview"})'
)


STABLE_SERVICE_REQUESTS = (
    'sum(istio_requests_total{reporter="destination",destination_workload="podinfo-ga",'
    'destination_service_name="podinfo-stable"})'
)


def test_the_preview_service_sends_every_request_to_the_canary_while_users_stay_on_ga(clean):
    """Blue/green's preview Service: its port reaches only the canary (at canary weight 0), and its
    requests are the canary's, reported with the preview Service's name; GA's own Service likewise
    reaches only GA at canary weight 100."""
    stack = clean
    before, previewed_before = settled_count(stack, CANARY_REQUESTS), settled_count(stack, PREVIEW_REQUESTS)
    assert send(stack, 20)[0] == {"ga": 20}
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: urllib.request.urlopen(stack.preview_url + "/version", timeout=10), range(30))
        )
    assert {answer.headers[SUBSET_HEADER] for answer in answers} == {"canary"}
    assert wait_for_count(stack, PREVIEW_REQUESTS, previewed_before + 30) == previewed_before + 30
    assert wait_for_count(stack, CANARY_REQUESTS, before + 30) == before + 30
    stack.wait_for_revision(stack.set_canary_weight(100))
    stable_before = settled_count(stack, STABLE_SERVICE_REQUESTS)
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: urllib.request.urlopen(stack.stable_service_url + "/version", timeout=10), range(10)
            )
        )
    assert {answer.headers[SUBSET_HEADER] for answer in answers} == {"ga"}
    assert send(stack, 10)[0] == {"canary": 10}
    assert wait_for_count(stack, STABLE_SERVICE_REQUESTS, stable_before + 10) == stable_before + 10


def test_session_affinity_keeps_canary_users_on_the_canary(clean):
    stack = clean
    affinity = SessionAffinity("rollouts-podinfo", "c0ffee")
    stack.wait_for_revision(stack.set_canary_weight(30, "podinfo: canary 30%"))
    sha = stack.edit_route(lambda e, text: e.set_affinity(text, affinity), "podinfo: session affinity")
    assert stack.wait_for_revision(sha)["weights"] == {"stable": 70, "canary": 30}
    served, answers = send(stack, 300)
    assert 60 <= served["canary"] <= 120  # new sessions follow the step: 90 expected, sd ~8
    assert {cookie for subset, cookie in answers if subset == "canary"} == {affinity.set_cookie}
    assert {cookie for subset, cookie in answers if subset == "ga"} == {None}
    # A user holding the cookie stays on the canary, whatever the weights say.
    holder = {"Cookie": f"a=1; rollouts-podinfo={affinity.value}"}
    assert send(stack, 40, headers=holder)[0] == {"canary": 40}
    stack.wait_for_revision(stack.set_canary_weight(0, "podinfo: rollback weights"))
    assert send(stack, 20, headers=holder)[0] == {"canary": 20}  # still sticky until the route goes
    stack.wait_for_revision(
        stack.edit_route(lambda e, text: e.set_affinity(text, None), "podinfo: no affinity")
    )
    assert send(stack, 20, headers=holder)[0] == {"ga": 20}


HTTPROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: podinfo
  namespace: test
spec:
  parentRefs:
  - name: mesh
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /
    backendRefs:
    - name: ga
      port: 9898
      weight: 100
    - name: canary
      port: 9898
      weight: 0
"""


@pytest.fixture(scope="module")
def gateway_stack() -> Iterator[LocalStack]:
    require_binary("prometheus", "apt-get install prometheus")
    require_binary("git")
    config = StackConfig(
        ga=GA,
        canary=CANARY,
        poll_interval=0.25,
        route_kind="HTTPRoute",
        route_path="workloads/podinfo/httproute.yaml",
        route_text=HTTPROUTE,
    )
    with LocalStack(config) as running:
        yield running


def test_httproute_ab_match_and_mirror_end_to_end(gateway_stack):
    stack = gateway_stack
    sha = stack.edit_route(lambda e, text: e.set_match(text, AB), "podinfo: A/B match")
    stack.wait_for_revision(sha)
    assert send(stack, 20, headers={"x-user": "beta"})[0] == {"canary": 20}
    assert send(stack, 20, "/version?variant=b")[0] == {"canary": 20}
    assert send(stack, 20)[0] == {"ga": 20}
    stack.wait_for_revision(
        stack.edit_route(lambda e, text: e.set_mirror(e.set_match(text, None), 100), "podinfo: mirror")
    )
    before = settled_count(stack, CANARY_REQUESTS)
    assert send(stack, 30, headers={"x-user": "beta"})[0] == {"ga": 30}
    assert wait_for_count(stack, CANARY_REQUESTS, before + 30) == before + 30
    # Blue/green: one commit switches everyone, one switches back.
    switch = stack.edit_route(
        lambda e, text: e.write(e.set_mirror(text, None), Weights.for_canary(100)), "podinfo: switch to green"
    )
    stack.wait_for_revision(switch)
    assert send(stack, 20)[0] == {"canary": 20}
    stack.wait_for_revision(stack.set_canary_weight(0, "podinfo: back to blue"))
    assert send(stack, 20)[0] == {"ga": 20}


def test_loadtest_sessions_stick_to_the_canary_through_the_mesh(clean):
    import subprocess
    import sys

    stack = clean
    affinity = SessionAffinity("rollouts-podinfo", "5e55")
    stack.wait_for_revision(stack.set_canary_weight(30, "podinfo: canary 30%"))
    stack.wait_for_revision(
        stack.edit_route(lambda e, text: e.set_affinity(text, affinity), "podinfo: affinity")
    )
    query_ga = 'sum(istio_requests_total{reporter="destination",destination_workload="podinfo-ga"})'

    def share(sessions: str) -> float:
        ga, canary = settled_count(stack, query_ga), settled_count(stack, CANARY_REQUESTS)
        result = subprocess.run(
            [sys.executable, "-m", "loadtest", "-n", "400", "-c", "10", "--sessions", sessions,
             stack.mesh_url + "/version"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        ga, canary = settled_count(stack, query_ga) - ga, settled_count(stack, CANARY_REQUESTS) - canary
        assert ga + canary == 400
        return canary / 400

    # Without sessions every request is new: the step's 30 %. With every worker keeping its cookie,
    # a worker the canary served once stays there: most of the 40 requests per worker are canary's.
    assert 0.2 <= share("0") <= 0.4
    assert share("1") >= 0.6


def test_a_primary_cookie_keeps_gas_users_on_ga_as_the_weights_grow(clean):
    stack = clean
    affinity = SessionAffinity(
        "rollouts-canary", "ab12", primary_cookie_name="rollouts-ga", primary_max_age=60
    )
    stack.wait_for_revision(stack.set_canary_weight(20, "podinfo: canary 20%"))
    stack.wait_for_revision(
        stack.edit_route(lambda e, text: e.set_affinity(text, affinity), "podinfo: affinity")
    )
    _, answers = send(stack, 100)
    cookies = {subset: {c for s, c in answers if s == subset} for subset in ("ga", "canary")}
    assert cookies == {"ga": {affinity.primary_set_cookie}, "canary": {affinity.set_cookie}}
    stack.wait_for_revision(stack.set_canary_weight(90, "podinfo: canary 90%"))
    assert send(stack, 30, headers={"Cookie": "rollouts-ga=ab12"})[0] == {"ga": 30}
    assert send(stack, 30, headers={"Cookie": "rollouts-canary=ab12"})[0] == {"canary": 30}
