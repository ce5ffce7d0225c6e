"""The forge clients (PyGithub, python-gitlab) against recorded response shapes over HTTP on loopback:
find-then-create with the branch as the key, never a duplicate (also when two controllers race or a
create's answer is lost), states, auto-merge, retries with backoff, and the token kept secret."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from rollouts.forge import ForgeConfig, ForgeError, ForgeUnavailableError, Review, forge_for
from rollouts.forge.base import Retry
from tests.forge.forgeapi import TOKEN, ForgeApi, serve

BRANCH = "rollouts/test/podinfo/0.2.0/step-2"
BODY = 'Step 2/3 of test/podinfo: canary 10% -> 60%.\n\nEvidence: {"verdict": "promote"}\n'
KINDS = ("github", "gitlab")


@pytest.fixture
def api() -> Iterator[ForgeApi]:
    yield from serve()


def client(api: ForgeApi, kind: str, *, attempts: int = 4, **config):
    repository = "org/cluster" if kind == "github" else "group/cluster"
    cfg = ForgeConfig(kind=kind, repository=repository, token=TOKEN, url=api.base, **config)
    sleeps: list[float] = []
    return forge_for(
        cfg, retry=Retry(attempts=attempts, backoff=0.01, sleep=sleeps.append), timeout=5
    ), sleeps


@pytest.mark.parametrize("kind", KINDS)
def test_open_finds_before_creating_and_reads_states(api: ForgeApi, kind: str) -> None:
    forge, _ = client(api, kind)
    assert forge.find(BRANCH) is None
    review = forge.open(BRANCH, "main", "podinfo: canary 60% (approval)", BODY)
    assert (
        isinstance(review, Review)
        and review.state == "open"
        and review.branch == BRANCH
        and review.base == "main"
    )
    stored = api.pulls if kind == "github" else api.mrs
    assert (stored[review.number].get("body") or stored[review.number].get("description")) == BODY
    again = forge.open(BRANCH, "main", "podinfo: canary 60% (approval)", BODY)
    assert again == review and api.creates() == 1  # found, not created twice
    assert forge.find(BRANCH) == review
    api.merge(review.number)
    assert forge.get(review.number).state == "merged"
    assert forge.find(BRANCH).state == "merged"


@pytest.mark.parametrize("kind", KINDS)
def test_a_request_closed_unmerged_reads_closed_and_a_new_open_one_wins(api: ForgeApi, kind: str) -> None:
    forge, _ = client(api, kind)
    first = forge.open(BRANCH, "main", "t", BODY)
    api.close(first.number)
    assert forge.get(first.number).state == "closed"
    assert forge.find(BRANCH).state == "closed"  # a rejected approval: the controller rolls back
    reopened = forge.open(BRANCH, "main", "t", BODY)  # asked again (e.g. a new attempt): a new request
    assert reopened.number != first.number and forge.find(BRANCH) == reopened


@pytest.mark.parametrize("kind", KINDS)
def test_close_comments_then_closes_and_leaves_a_merged_one_alone(api: ForgeApi, kind: str) -> None:
    forge, _ = client(api, kind)
    first = forge.open(BRANCH, "main", "t", BODY)
    forge.close(first, "superseded by 0.2.1")
    assert forge.get(first.number).state == "closed" and api.comments[first.number] == ["superseded by 0.2.1"]
    forge.close(first, "again")  # closed already: no second comment
    assert api.comments[first.number] == ["superseded by 0.2.1"]
    merged = forge.open("rollouts/other", "main", "t", BODY)
    api.merge(merged.number)
    forge.close(merged, "superseded")
    assert forge.get(merged.number).state == "merged" and merged.number not in api.comments


@pytest.mark.parametrize("kind", KINDS)
def test_two_controllers_racing_make_one_request(api: ForgeApi, kind: str) -> None:
    api.race = threading.Barrier(2, action=lambda: setattr(api, "race", None))  # both list, then both create
    results: list[Review] = []
    errors: list[BaseException] = []

    def controller() -> None:
        forge, _ = client(api, kind)
        try:
            results.append(forge.open(BRANCH, "main", "t", BODY))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=controller) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and len(results) == 2
    assert results[0] == results[1]
    assert (
        api.creates() == 2 and len(api.pulls if kind == "github" else api.mrs) == 1
    )  # the second was refused


@pytest.mark.parametrize("kind", KINDS)
def test_a_lost_create_answer_is_found_not_repeated(api: ForgeApi, kind: str) -> None:
    forge, sleeps = client(api, kind)
    api.lose_create = True  # the forge makes it, then answers 502
    review = forge.open(BRANCH, "main", "t", BODY)
    assert api.creates() == 1 and review.number in (api.pulls if kind == "github" else api.mrs)
    assert len(sleeps) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_rate_limits_and_5xx_are_retried_with_backoff(api: ForgeApi, kind: str) -> None:
    forge, sleeps = client(api, kind, attempts=5)
    # GitHub: 429 and the rate-limit 403 are ours to retry; python-gitlab retries its 429s itself
    # (honouring Retry-After), so GitLab's three are 5xx here.
    api.fail = [429, 502, 403] if kind == "github" else [502, 503, 500]
    assert forge.open(BRANCH, "main", "t", BODY).state == "open"
    assert sleeps == [0.01, 0.02, 0.04]  # exponential
    api.fail = [503] * 10
    with pytest.raises(ForgeUnavailableError, match=r"HTTP 503 .*\(after 5 attempts\)") as caught:
        forge.get(1)
    assert TOKEN not in str(caught.value)


def test_gitlab_rate_limit_is_obeyed_by_the_library(api: ForgeApi) -> None:
    forge, sleeps = client(api, "gitlab")
    api.fail = [429]
    assert forge.open(BRANCH, "main", "t", BODY).state == "open" and api.creates() == 1 and sleeps == []


@pytest.mark.parametrize("kind", KINDS)
def test_final_errors_are_not_retried(api: ForgeApi, kind: str) -> None:
    forge, sleeps = client(api, kind)
    with pytest.raises(ForgeError, match="HTTP 404") as caught:
        forge.get(99)
    assert sleeps == [] and not isinstance(caught.value, ForgeUnavailableError)
    bad = ForgeConfig(
        kind=kind,
        repository="org/cluster" if kind == "github" else "group/cluster",
        token="wrong",
        url=api.base,
    )
    with pytest.raises(ForgeError, match="HTTP 401"):
        forge_for(bad, retry=Retry(attempts=2, backoff=0.01, sleep=lambda s: None)).find(BRANCH)


def test_github_auto_merge_is_the_graphql_mutation(api: ForgeApi) -> None:
    forge, _ = client(api, "github", merge_method="squash")
    review = forge.open(BRANCH, "main", "t", BODY)
    forge.enable_auto_merge(review)
    (call,) = api.graphql
    assert "enablePullRequestAutoMerge" in call["query"]
    assert call["variables"]["input"] == {
        "pullRequestId": api.pulls[review.number]["node_id"],
        "mergeMethod": "SQUASH",
    }
    assert api.pulls[review.number]["auto_merge"] == {"merge_method": "squash"}


def test_gitlab_auto_merge_merges_when_the_pipeline_succeeds(api: ForgeApi) -> None:
    forge, _ = client(api, "gitlab")
    review = forge.open(BRANCH, "main", "t", BODY)
    forge.enable_auto_merge(review)
    assert api.mrs[review.number]["merge_when_pipeline_succeeds"] is True
    put = [r for r in api.requests if r[0] == "PUT"]
    assert put and put[0][1].endswith(f"/merge_requests/{review.number}/merge")


@pytest.mark.parametrize("kind", KINDS)
def test_the_token_is_never_logged(api: ForgeApi, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    forge, _ = client(api, kind)
    api.fail = [502]
    forge.open(BRANCH, "main", "t", BODY)
    assert caplog.records and TOKEN not in caplog.text
    assert TOKEN not in repr(forge.config)


def test_token_sources(tmp_path) -> None:
    (tmp_path / "t").write_text(" tok \n")
    assert ForgeConfig.read_token(str(tmp_path / "t"), None) == "tok"
    assert ForgeConfig.read_token(None, "FORGE_TOKEN", {"FORGE_TOKEN": "x"}) == "x"
    with pytest.raises(ForgeError, match="environment variable FORGE_TOKEN is not set"):
        ForgeConfig.read_token(None, "FORGE_TOKEN", {})
    with pytest.raises(ForgeError, match="cannot read"):
        ForgeConfig.read_token(str(tmp_path / "missing"), None)
