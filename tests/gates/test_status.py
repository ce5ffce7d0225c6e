"""The waiting texts: what is awaited, where and since when."""

from __future__ import annotations

from rollouts.gates.approval import ApprovalStatus
from rollouts.gates.status import approval_fields, approval_text, webhook_text
from rollouts.gates.webhooks import GateDecision, HookResult

BRANCH = "rollouts/test/podinfo/0.2.0/step-2"
SINCE = 1796117400.0  # 2026-12-01 09:30:00Z
URL = "https://github.com/org/cluster/pull/7"


def test_a_waiting_approval_says_what_where_and_since_when() -> None:
    status = ApprovalStatus("waiting", "waiting for approval", BRANCH, URL, SINCE)
    assert approval_text("test/podinfo", "2/3", status, now=SINCE + 720) == (
        f"test/podinfo: step 2/3 waiting for approval: merge {URL} (branch {BRANCH}), "
        "since 2026-12-01 09:30:00Z (12 min)"
    )
    plain = ApprovalStatus("waiting", "w", BRANCH, None, SINCE)
    assert approval_text("test/podinfo", None, plain, now=SINCE + 30).endswith(
        f"merge branch {BRANCH}, since 2026-12-01 09:30:00Z (30 s)"
    )
    fields = approval_fields(status, now=SINCE + 90)
    assert fields == {
        "state": "waiting",
        "branch": BRANCH,
        "request": URL,
        "since": "2026-12-01 09:30:00Z",
        "waited_seconds": 90.0,
        "reason": "waiting for approval",
    }


def test_decided_approvals_and_webhooks_say_why() -> None:
    rejected = ApprovalStatus(
        "rejected", f"approval rejected: {URL} was closed without merging", BRANCH, URL, SINCE
    )
    assert (
        approval_text("test/podinfo", "2/3", rejected)
        == f"test/podinfo: step 2/3: approval rejected: {URL} was closed without merging"
    )
    held = HookResult("gate", "confirm-promotion", False, 403, "HTTP 403: Forbidden", 1, 0.01)
    decision = GateDecision(
        "confirm-promotion", "wait", ("webhook gate (confirm-promotion): HTTP 403: Forbidden",), (held,)
    )
    assert webhook_text("test/podinfo", decision) == (
        "test/podinfo: waiting for webhook gate (confirm-promotion): HTTP 403: Forbidden"
    )
    assert (
        webhook_text("test/podinfo", GateDecision("pre-rollout", "pass"))
        == "test/podinfo: pre-rollout webhooks passed"
    )
