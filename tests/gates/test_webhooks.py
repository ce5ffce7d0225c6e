"""Flagger-compatible webhooks against real HTTP servers on loopback: payload, answers, timeouts,
retries, garbage, and what each hook type's failure means."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rollouts.gates.webhooks import (
    FailedChecks,
    GateDecision,
    HookResult,
    Payload,
    Webhooks,
    call,
    checksum,
    decide,
    shown_url,
)
from rollouts.spec_gates import WebhookSpec
from tests.gates.hookserver import HookServer, serve

PAYLOAD = Payload("podinfo", "test", "Progressing", checksum("test/podinfo", "0.2.0"))


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    yield from serve()


def spec(server: HookServer, path: str, kind: str = "pre-rollout", **extra) -> WebhookSpec:
    return WebhookSpec.model_validate(
        {"name": path.strip("/"), "type": kind, "url": server.url + path, **extra}
    )


def test_payload_is_flaggers_canary_webhook_payload(hooks: HookServer) -> None:
    result = call(spec(hooks, "/ok", metadata={"cmd": "hey -z 1m http://podinfo-canary.test:9898/"}), PAYLOAD)
    assert result.ok and result.status == 200 and result.attempts == 1 and result.reason == "passed"
    path, body = hooks.calls[0]
    assert path == "/ok"
    assert body == {
        "name": "podinfo",
        "namespace": "test",
        "phase": "Progressing",
        "checksum": PAYLOAD.checksum,
        "metadata": {"cmd": "hey -z 1m http://podinfo-canary.test:9898/"},
    }
    # Without metadata the key is omitted, as Flagger's omitempty.
    call(spec(hooks, "/ok"), PAYLOAD)
    assert "metadata" not in hooks.calls[1][1]
    assert checksum("test/podinfo", "0.2.0") != checksum("test/podinfo", "0.2.1")


@pytest.mark.parametrize(
    ("path", "ok", "status", "reason"),
    [
        ("/accepted", True, 202, "passed"),
        ("/nocontent", False, 204, "HTTP 204"),  # Flagger: anything above 202 fails
        ("/forbidden", False, 403, "HTTP 403: Forbidden"),
        ("/missing", False, 404, "HTTP 404: no such hook"),
        ("/garbage", False, None, "answered with something that is not HTTP"),
    ],
)
def test_answers_are_read_as_flagger_reads_them(hooks: HookServer, path, ok, status, reason) -> None:
    result = call(spec(hooks, path), PAYLOAD)
    assert (result.ok, result.status) == (ok, status)
    assert result.reason.startswith(reason)


def test_a_hanging_webhook_times_out_with_a_clear_reason(hooks: HookServer) -> None:
    start = time.monotonic()
    result = call(spec(hooks, "/hang", timeout="300ms"), PAYLOAD)
    assert not result.ok and result.reason == "no answer in 0.3s" and result.status is None
    assert time.monotonic() - start < 2


def test_retries_on_5xx_are_bounded_and_then_pass(hooks: HookServer) -> None:
    hooks.flaky = 2
    result = call(spec(hooks, "/flaky", retries=2), PAYLOAD, backoff=0.01)
    assert result.ok and result.attempts == 3
    hooks.flaky = 5
    failed = call(spec(hooks, "/flaky", retries=1), PAYLOAD, backoff=0.01)
    assert not failed.ok and failed.attempts == 2 and failed.status == 503
    assert failed.reason == "HTTP 503: upstream not ready (after 2 attempts)"
    # A 4xx is an answer, not a transient failure: never retried.
    hooks.calls.clear()
    assert not call(spec(hooks, "/forbidden", retries=3), PAYLOAD, backoff=0.01).ok
    assert hooks.paths() == ["/forbidden"]


def test_a_huge_answer_is_read_bounded_and_quoted_short(hooks: HookServer) -> None:
    result = call(spec(hooks, "/huge"), PAYLOAD, backoff=0.01)
    assert not result.ok and result.status == 500 and len(result.reason) < 260


def test_urls_in_messages_lose_tokens() -> None:
    assert shown_url("https://user:pw@hooks.example/x/y?token=abc#f") == "https://hooks.example/x/y"


def test_each_type_means_what_it_means_in_flagger(hooks: HookServer) -> None:
    gate = Webhooks(
        [
            spec(hooks, "/ok", "confirm-promotion"),
            spec(hooks, "/forbidden", "confirm-promotion"),
            spec(hooks, "/never-called", "confirm-promotion"),
            spec(hooks, "/forbidden", "pre-rollout"),
            spec(hooks, "/forbidden", "rollback"),
            spec(hooks, "/ok", "rollback"),
            spec(hooks, "/forbidden", "post-rollout"),
            spec(hooks, "/ok", "post-rollout"),
        ],
        backoff=0.01,
    )
    waiting = gate.run("confirm-promotion", PAYLOAD)
    assert waiting.outcome == "wait" and waiting.waiting_for == "forbidden"
    assert waiting.reasons == ("webhook forbidden (confirm-promotion): HTTP 403: Forbidden",)
    assert "/never-called" not in hooks.paths()  # stops at the first that holds
    assert gate.run("pre-rollout", PAYLOAD).outcome == "fail"
    rollback = gate.run("rollback", PAYLOAD)
    assert rollback.outcome == "rollback" and rollback.reasons == (
        "webhook ok (rollback) asked for a rollback",
    )
    post = gate.run("post-rollout", PAYLOAD)
    assert post.outcome == "pass" and len(post.results) == 2 and len(post.reasons) == 1  # logged only
    assert gate.run("confirm-rollout", PAYLOAD) == GateDecision("confirm-rollout", "pass")  # none configured


def test_event_metadata_as_flagger_sends_it(hooks: HookServer) -> None:
    gate = Webhooks([spec(hooks, "/ok", "event", metadata={"eventType": "mine", "team": "a"})])
    assert gate.event(PAYLOAD, "step 2/3: canary 60%", "Normal").outcome == "pass"
    metadata = hooks.calls[0][1]["metadata"]
    assert metadata["eventMessage"] == "step 2/3: canary 60%" and metadata["eventType"] == "Normal"
    assert metadata["team"] == "a" and metadata["timestamp"].isdigit()


def _result(ok: bool, kind: str = "pre-rollout") -> HookResult:
    return HookResult("h", kind, ok, 200 if ok else 500, "passed" if ok else "HTTP 500", 1, 0.0)


@pytest.mark.parametrize(
    ("kind", "oks", "outcome"),
    [
        ("confirm-rollout", [False], "wait"),
        ("confirm-traffic-increase", [True, False], "wait"),
        ("confirm-promotion", [True], "pass"),
        ("pre-rollout", [False], "fail"),
        ("rollout", [True, False], "fail"),
        ("rollback", [False, False], "pass"),
        ("rollback", [False, True], "rollback"),
        ("post-rollout", [False], "pass"),
        ("event", [False], "pass"),
    ],
)
def test_decide_table(kind: str, oks: list[bool], outcome: str) -> None:
    assert decide(kind, [_result(ok, kind) for ok in oks]).outcome == outcome


def test_a_failing_pre_rollout_holds_then_rolls_back_at_the_threshold() -> None:
    failing = decide("pre-rollout", [_result(False)])
    checks = FailedChecks()
    for _ in range(4):
        checks = checks.after(failing)
        assert not checks.exhausted(5)  # hold: try again next interval
    assert checks.after(failing).exhausted(5)
    assert checks.after(decide("pre-rollout", [_result(True)])) == checks
