"""Notifications through apprise's json:// target to a local receiver that records the posts."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollouts.notify import Kind, Notice, Notifier, NotifyConfigError, read_url_files
from tests.fixtures.httpjson import json_server


def rollback_notice() -> Notice:
    return Notice(
        rollout="test/podinfo",
        kind=Kind.ROLLBACK,
        summary="canary 0.2.1 rolled back at 10 %",
        reasons=("canary latency is worse than GA (e-value 41 > 20)",),
        evidence={"latency_harm_e": 41.25, "canary_p99_ms": 812.0},
        revision="0.2.1",
        commit="a" * 40,
    )


def test_messages_reach_every_target_with_the_evidence_in_words() -> None:
    with json_server(lambda _: (200, {})) as one, json_server(lambda _: (200, {})) as two:
        targets = [one.url.replace("http://", "json://") + "/", two.url.replace("http://", "json://") + "/"]
        notifier = Notifier(targets)
        assert notifier.send(rollback_notice())
        assert notifier.send(Notice("test/podinfo", Kind.START, "canary 0.2.1 detected, analysis starts"))
    for server in (one, two):
        rollback, start = (r.body for r in server.requests)
        assert rollback["title"] == "[test/podinfo] rollback (0.2.1)"
        assert rollback["type"] == "failure"
        assert rollback["message"].splitlines() == [
            "canary 0.2.1 rolled back at 10 %",
            "- canary latency is worse than GA (e-value 41 > 20)",
            "Evidence: canary_p99_ms 812, latency_harm_e 41.25.",
            "Commit: aaaaaaaaaaaa",
        ]
        assert (start["type"], start["message"]) == ("info", "canary 0.2.1 detected, analysis starts")


def test_failed_delivery_is_reported_not_raised() -> None:
    with json_server(lambda _: (500, {})) as server:
        notifier = Notifier([server.url.replace("http://", "json://") + "/"])
        assert not notifier.send(rollback_notice())
    assert notifier.failures == 1


def test_no_targets_is_fine() -> None:
    assert Notifier([]).send(rollback_notice())


def test_unsupported_url_names_it_without_the_secret() -> None:
    with pytest.raises(NotifyConfigError, match=r"nosuchservice://hooks\.example/\.\.\.") as info:
        Notifier(["nosuchservice://hooks.example/T000/B000/XXXXSECRET"])
    assert "SECRET" not in str(info.value)


def test_url_files(tmp_path: Path) -> None:
    path = tmp_path / "slack"
    path.write_text("# team channel\njson://127.0.0.1:1/\n\n")
    assert read_url_files([path]) == ["json://127.0.0.1:1/"]
    with pytest.raises(NotifyConfigError, match="missing"):
        read_url_files([tmp_path / "missing"])
