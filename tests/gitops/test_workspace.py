"""The Git workspace against real bare remotes on disk."""

from __future__ import annotations

import logging
import subprocess

import pytest

from rollouts.gitops import (
    Credentials,
    GitopsError,
    HumanOverrideError,
    PushRejectedError,
    RepoFileError,
    Workspace,
    redact,
)
from rollouts.routes import Weights
from rollouts.spec import Author
from tests.fixtures.gitrepo import VIRTUAL_SERVICE, deployment, git, make_spec, vs_with
from tests.routes.test_virtualservice import assert_only_weights_changed

VS = "workloads/podinfo/virtual-service.yaml"
CANARY = "workloads/podinfo/canary-deployment.yaml"


def test_set_weights_commits_only_the_weight_scalars(remote, spec, cache):
    before = remote.head()
    ws = Workspace.for_spec(spec, cache_dir=cache)
    result = ws.set_weights(
        spec, Weights.for_canary(60), verdict="promote", reasons=["p99 within 5% of GA"], step="2/3"
    )
    assert result.changed and result.sha == remote.head() and result.attempts == 1
    assert result.previous == Weights(90, 10)
    assert git(remote.bare, "rev-parse", f"{result.sha}^").strip() == before  # a fast-forward of one commit
    assert git(remote.bare, "diff", "--name-only", before, result.sha).split() == [VS]
    assert_only_weights_changed(VIRTUAL_SERVICE, remote.show(VS))
    assert remote.message(result.sha) == (
        "podinfo: canary 10% -> 60% (promote)\n\n"
        "- p99 within 5% of GA\n\n"
        "Rollout: test/podinfo\nRollout-Step: 2/3\nRollout-Revision: 0.2.0\nRollout-Verdict: promote\n\n"
    )
    author = git(remote.bare, "log", "-1", "--format=%an <%ae>|%cn <%ce>", result.sha).strip()
    assert author == "gitops-rollouts <rollouts@localhost>|gitops-rollouts <rollouts@localhost>"
    # Flux's parts are untouched: the tag, the notes ref, the image lines.
    assert git(remote.bare, "rev-parse", "v0.1.0").strip() == before
    assert git(remote.bare, "notes", "show", before).strip() == "flux: applied"
    assert remote.show(CANARY) == deployment("podinfo-canary", "0.2.0")


def test_same_weights_is_a_no_op(remote, spec, cache):
    with Workspace.for_spec(spec, cache_dir=cache) as ws:
        before = remote.head()
        result = ws.set_weights(spec, Weights(90, 10), verdict="manual")
        assert not result.changed and result.head == before == remote.head()
    assert ws._repo is None  # helper processes stopped; the workspace can be used again
    assert ws.read_weights(spec) == Weights(90, 10)


def test_state_from_git(remote, spec, cache):
    ws = Workspace.for_spec(spec, cache_dir=cache)
    state = ws.read_state(spec)
    assert state.weights == Weights(90, 10) and state.last is None and not state.human_override
    assert state.images == {"init": "busybox:1.36", "podinfod": "ghcr.io/stefanprodan/podinfo:0.2.0"}
    assert state.revision == "0.2.0"
    ws.set_weights(spec, Weights.for_canary(60), verdict="promote", step="2/3")
    state = ws.read_state(spec)
    assert state.weights == Weights(40, 60)
    assert state.last is not None and state.last.verdict == "promote" and state.last.step == "2/3"
    assert state.last.sha == remote.head() and not state.human_override and not state.new_revision
    # Flux image automation bumps the canary: a new revision, not an override.
    remote.commit_file(CANARY, deployment("podinfo-canary", "0.2.1"), "podinfo-canary: 0.2.1")
    state = ws.read_state(spec)
    assert state.new_revision and state.revision == "0.2.1" and not state.human_override
    # A human sets the weights back by hand: an override, with the commit that did it.
    sha = remote.commit_file(VS, vs_with(100, 0), "all to GA")
    state = ws.read_state(spec)
    assert state.human_override and state.override_commit == sha and state.weights == Weights(100, 0)
    assert state.to_dict()["weights"] == {"stable": 100, "canary": 0}


def test_expected_weights_guard_against_overrides(remote, spec, cache):
    ws = Workspace.for_spec(spec, cache_dir=cache)
    human = remote.commit_file(
        VS,
        vs_with(100, 0),
        "hotfix: all traffic to GA",
    )
    with pytest.raises(
        HumanOverrideError,
        match=r"test/podinfo: workloads/podinfo/virtual-service\.yaml: "
        r"weights were changed by someone else \(expected canary 10%, found 0%",
    ) as info:
        ws.set_weights(spec, Weights.for_canary(60), verdict="promote", expected=Weights(90, 10))
    assert info.value.commit == human and remote.head() == human


class RacingWorkspace(Workspace):
    """A workspace whose pushes lose a race: before each of the first ``races`` pushes, a human
    pushes ``change`` to the remote (real commits on the real remote, only the timing is forced)."""

    def __init__(self, *args, remote, change, races=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.remote_repo, self.change, self.races = remote, change, races

    def _push(self):
        if self.races > 0:
            self.races -= 1
            self.change(self.remote_repo, self.races)
        super()._push()


def bump_image(remote, n):
    remote.commit_file(CANARY, deployment("podinfo-canary", f"0.2.{n + 5}"), f"image bump {n}")


def test_rejected_push_is_reapplied_on_the_new_head(remote, spec, cache):
    ws = RacingWorkspace(spec.spec.git.url, "master", cache_dir=cache, remote=remote, change=bump_image)
    result = ws.set_weights(spec, Weights.for_canary(60), verdict="promote")
    assert result.attempts == 2 and result.sha == remote.head()
    parent = git(remote.bare, "rev-parse", f"{result.sha}^").strip()
    assert git(remote.bare, "log", "-1", "--format=%s", parent).strip() == "image bump 0"
    assert "0.2.5" in remote.show(CANARY) and "weight: 60" in remote.show(VS)
    assert "Rollout-Revision: 0.2.5\n" in remote.message(result.sha)


def test_rejected_push_with_weights_changed_is_a_human_override(remote, spec, cache):
    def human_weights(remote, _n):
        remote.commit_file(
            VS,
            vs_with(80, 20),
            "canary to 20 by hand",
        )

    ws = RacingWorkspace(spec.spec.git.url, "master", cache_dir=cache, remote=remote, change=human_weights)
    with pytest.raises(HumanOverrideError, match="expected canary 10%, found 20%"):
        ws.set_weights(spec, Weights.for_canary(60), verdict="promote")
    assert "weight: 20" in remote.show(VS)
    assert git(remote.bare, "log", "-1", "--format=%s").strip() == "canary to 20 by hand"


def test_retries_are_bounded(remote, spec, cache):
    ws = RacingWorkspace(
        spec.spec.git.url,
        "master",
        cache_dir=cache,
        remote=remote,
        change=bump_image,
        races=10,
        max_attempts=3,
        backoff=0.01,
    )
    with pytest.raises(PushRejectedError, match=r"git push failed: .*(fetch first|non-fast-forward)"):
        ws.set_weights(spec, Weights.for_canary(60), verdict="promote")
    assert "weight: 10" in remote.show(VS) and ws.races == 7
    # The cached worktree is the remote branch again: nothing half-done remains.
    assert git(ws.path, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spec: [\n", r"workloads/podinfo/virtual-service\.yaml: malformed YAML"),
        (
            vs_with(90, 20),
            r"virtual-service\.yaml: VirtualService "
            r"test/podinfo http\[0\]: weights must sum to 100, got stable=90 canary=20",
        ),
        (
            vs_with(110, -10),
            r"subset 'ga': weight must be between 0 and 100, got 110",
        ),
    ],
)
def test_bad_route_files_push_nothing(remote, spec, cache, text, message):
    before = remote.commit_file(VS, text, "broken by hand")
    with pytest.raises(RepoFileError, match=message) as info:
        Workspace.for_spec(spec, cache_dir=cache).set_weights(spec, Weights.for_canary(60), verdict="promote")
    assert isinstance(info.value, GitopsError)  # the controller's Git-failure path sees it too
    assert remote.head() == before


def test_unknown_subset_is_checked_against_the_destination_rule(remote, cache):
    spec = make_spec(str(remote.bare), canary="canary2")
    before = remote.head()
    with pytest.raises(
        RepoFileError,
        match=r"virtual-service\.yaml: .*no destination 'canary2'|subset 'canary2' is "
        r"not declared by the DestinationRule",
    ):
        Workspace.for_spec(spec, cache_dir=cache).set_weights(spec, Weights.for_canary(60), verdict="manual")
    # The VirtualService names a subset the DestinationRule lacks: named, nothing pushed.
    remote.commit_file(VS, VIRTUAL_SERVICE.replace("subset: canary", "subset: canary2"), "rename")
    with pytest.raises(
        RepoFileError,
        match=r"subset 'canary2' is not declared by the DestinationRule "
        r"\(declared: canary, ga\)",
    ):
        Workspace.for_spec(spec, cache_dir=cache).set_weights(spec, Weights.for_canary(60), verdict="manual")
    assert remote.count() == 2 and remote.head() != before


def test_missing_file_and_unreachable_remote(remote, tmp_path, cache):
    spec = make_spec(str(remote.bare), path="workloads/podinfo/nope.yaml")
    with pytest.raises(RepoFileError, match=r"workloads/podinfo/nope\.yaml: no such file on branch master"):
        Workspace.for_spec(spec, cache_dir=cache).set_weights(spec, Weights.for_canary(60), verdict="manual")
    gone = make_spec(str(tmp_path / "gone.git"))
    with pytest.raises(GitopsError, match=r"gone\.git \(master\): git clone failed"):
        Workspace.for_spec(gone, cache_dir=cache).set_weights(gone, Weights.for_canary(60), verdict="manual")
    assert not list((cache / "repos").glob(".clone-*"))  # no half clone left behind
    # An existing workspace whose remote disappeared: the fetch fails, named, nothing changes.
    ws = Workspace.for_spec(make_spec(str(remote.bare)), cache_dir=cache)
    ws.read_state(make_spec(str(remote.bare)))
    remote.bare.rename(tmp_path / "moved.git")
    with pytest.raises(GitopsError, match=r"remote\.git \(master\): git fetch failed"):
        ws.set_weights(make_spec(str(remote.bare)), Weights.for_canary(60), verdict="manual")


def test_records_pause_resume_abort(remote, spec, cache):
    ws = Workspace.for_spec(spec, cache_dir=cache)
    before = remote.head()
    paused = ws.record(spec, "pause", reasons=["waiting for the on-call"])
    assert paused.changed and git(remote.bare, "diff", "--name-only", before, paused.sha) == ""
    assert ws.read_state(spec).paused
    assert not ws.record(spec, "pause").changed  # already paused: no second commit
    assert ws.record(spec, "resume").changed and not ws.read_state(spec).paused
    assert remote.message(paused.sha).startswith("podinfo: pause rollout\n\n- waiting for the on-call\n")
    assert remote.count() == 3
    with pytest.raises(GitopsError, match="verdict must be one of"):
        ws.record(spec, "promote")
    # A broken route file does not stop a human from pausing.
    remote.commit_file(VS, "spec: [\n", "oops")
    assert ws.record(spec, "pause").changed and remote.count() == 5


def test_credentials_never_leak(remote, spec, cache, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # GitPython logs its commands at debug level
    token = "ghp_s3cretT0ken"
    assert redact(f"https://bob:{token}@example.com/x.git and ssh://git@h/x", (token,)) == (
        "https://***@example.com/x.git and ssh://***@h/x"
    )
    creds = Credentials.resolve(token_env="MY_TOKEN", env={"MY_TOKEN": token})
    assert token not in repr(creds)
    # Credentials in a URL are refused before Git (or GitPython's debug log) ever sees them.
    for url in (f"https://bob:{token}@127.0.0.1:9/org/repo.git", f"https://{token}@127.0.0.1:9/org/repo.git"):
        with pytest.raises(GitopsError) as info:
            Workspace(url, "main", cache_dir=cache, credentials=creds)
        assert token not in str(info.value) and "https://***@127.0.0.1:9/org/repo.git" in str(info.value)
    Workspace("ssh://git@127.0.0.1:9/org/repo.git", "main", cache_dir=cache)  # a user name is no secret
    # An unreachable HTTPS remote used with a token: the error names it, without the token.
    ws = Workspace("https://127.0.0.1:9/org/repo.git", "main", cache_dir=cache, credentials=creds)
    with pytest.raises(GitopsError, match=r"https://127\.0\.0\.1:9/org/repo\.git \(main\): git clone failed"):
        ws.read_state(spec)
    # Reasons that carry a secret are redacted in the pushed commit message.
    ws = Workspace.for_spec(spec, cache_dir=cache, credentials=creds)
    result = ws.set_weights(
        spec,
        Weights.for_canary(60),
        verdict="manual",
        reasons=[f"asked via https://x:{token}@ci/job and {token}"],
    )
    message = remote.message(result.sha)
    assert token not in message and "https://***@ci/job and ***" in message
    # The askpass helper hands the token to git from the environment only.
    env = creds.git_env(tmp_path)
    assert token not in (tmp_path / "askpass.sh").read_text()
    import subprocess

    out = subprocess.run(
        [env["GIT_ASKPASS"], "Password for 'https://x@h': "],
        env={**env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == token
    key = tmp_path / "deploy_key"
    key.write_text("not a real key\n")
    ssh = Credentials.resolve(ssh_key_file=str(key)).git_env(tmp_path)["GIT_SSH_COMMAND"]
    assert f"-i {key}" in ssh and "IdentitiesOnly=yes" in ssh
    with pytest.raises(ValueError, match=r"spec\.git\.tokenEnv: environment variable NOPE is not set"):
        Credentials.resolve(token_env="NOPE", env={})
    assert caplog.records and token not in caplog.text


def test_https_token_authenticates_end_to_end(remote, cache, tmp_path, monkeypatch):
    from tests.fixtures.httpgit import git_http_server

    token = "tok-0123456789abcdef"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    # A credential helper that would store the token on disk must not be used with it.
    stored = tmp_path / "stored-credentials"
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f"[credential]\n\thelper = store --file={stored}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    with git_http_server(remote.bare.parent, "x-access-token", token) as (base, seen):
        spec = make_spec(f"{base}/remote.git")
        # No credentials: refused, and the error names the remote.
        with pytest.raises(
            GitopsError, match=r"http://127\.0\.0\.1:\d+/remote\.git \(master\): git clone failed"
        ):
            Workspace.for_spec(spec, cache_dir=cache).read_state(spec)
        creds = Credentials.resolve(token_file=str(token_file))
        ws = Workspace.for_spec(spec, cache_dir=cache, credentials=creds)
        result = ws.set_weights(spec, Weights.for_canary(60), verdict="manual")
    assert result.changed and remote.head() == result.sha and "weight: 60" in remote.show(VS)
    assert any(h.startswith("Basic ") for h in seen)
    # The token is nowhere in the workspace: not in the remote URL, not in .git/config.
    config = (ws.path / ".git" / "config").read_text()
    assert token not in config and f"{base}/remote.git" in config
    assert not stored.exists()


def test_init_container_bump_is_a_new_revision(remote, spec, cache):
    ws = Workspace.for_spec(spec, cache_dir=cache)
    ws.set_weights(spec, Weights.for_canary(60), verdict="promote", step="2/3")
    bumped = deployment("podinfo-canary", "0.2.0").replace("busybox:1.36", "busybox:1.37")
    remote.commit_file(CANARY, bumped, "init image bump")
    state = ws.read_state(spec)
    assert state.revision == "0.2.0" and state.new_revision
    assert state.images["init"] == "busybox:1.37"


def test_destination_rules_anywhere_in_the_repo_are_checked(remote, spec, cache):
    # Move the DestinationRule to another folder and drop the canary subset from it; add an
    # unrelated broken file that mentions DestinationRule (skipped, not an error).
    git(remote.human, "pull", "--quiet", "origin", "master")
    git(remote.human, "mv", "workloads/podinfo/destination-rule.yaml", "istio-rules.yaml")
    rules = remote.human / "istio-rules.yaml"
    rules.write_text(rules.read_text().replace("  - name: canary\n    labels:\n      version: canary\n", ""))
    (remote.human / "notes.yaml").write_text("# DestinationRule notes\nkey: [\n")
    git(remote.human, "add", ".")
    git(remote.human, "commit", "--quiet", "-m", "move the DestinationRule")
    git(remote.human, "push", "--quiet", "origin", "master")
    before = remote.head()
    with pytest.raises(
        RepoFileError, match=r"subset 'canary' is not declared by the DestinationRule \(declared: ga\)"
    ):
        Workspace.for_spec(spec, cache_dir=cache).set_weights(spec, Weights.for_canary(60), verdict="promote")
    assert remote.head() == before


def test_records_follow_new_commits_and_rewritten_history(remote, spec, cache):
    ws = Workspace.for_spec(spec, cache_dir=cache)
    first = ws.set_weights(spec, Weights.for_canary(60), verdict="promote", step="2/3")
    assert ws.read_state(spec).last.sha == first.sha
    second = ws.set_weights(spec, Weights.for_canary(100), verdict="promote", step="3/3")
    state = ws.read_state(spec)  # only the new commits are scanned, and found
    assert state.last.sha == second.sha and state.last.step == "3/3"
    # A human rewrites history, dropping our two commits (force-push allowed for this test only).
    git(remote.bare, "config", "receive.denyNonFastForwards", "false")
    git(remote.human, "fetch", "--quiet", "origin")
    git(remote.human, "reset", "--quiet", "--hard", f"{first.sha}^")
    git(remote.human, "commit", "--quiet", "--allow-empty", "-m", "rewritten")
    git(remote.human, "push", "--quiet", "--force", "origin", "HEAD:master")
    state = ws.read_state(spec)
    assert state.last is None and state.weights == Weights(90, 10)


def test_threads_share_a_cache_dir(remote, spec, cache, tmp_path):
    """The controller runs rollouts in threads: workspaces of two repos and two handles on one repo
    share a cache dir; every change lands exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    other = tmp_path / "other.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(remote.bare), str(other))
    spec2 = make_spec(str(other))
    jobs = [(spec, w) for w in (11, 12, 13, 14, 15)] + [(spec2, w) for w in (21, 22, 23, 24, 25)]

    def change(job):
        rollout, weight = job
        with Workspace.for_spec(rollout, cache_dir=cache) as ws:
            return ws.set_weights(rollout, Weights.for_canary(weight), verdict="manual")

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(change, jobs))
    assert all(r.changed for r in results)
    assert remote.count() == 6
    assert int(git(other, "rev-list", "--count", "master")) == 6
    assert not list((cache / "aux").glob("msg-*"))


def test_unknown_branch_is_named(remote, cache):
    ws = Workspace(str(remote.bare), "nope", cache_dir=cache)
    with pytest.raises(GitopsError, match=r"remote\.git \(nope\): git clone failed: .*nope"):
        ws.read_state(make_spec(str(remote.bare)))


def test_ssh_deploy_key_is_used_and_never_prompts(spec, cache, tmp_path):
    """Real git and ssh against a closed loopback port: ssh runs with our key and options, in batch
    mode (no prompt can hang the controller), and the failure names the remote."""
    from tests.support import free_port, require_binary

    require_binary("ssh")
    key = tmp_path / "deploy_key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    port = free_port()
    ws = Workspace(
        f"ssh://git@127.0.0.1:{port}/org/cluster.git",
        "main",
        cache_dir=cache,
        credentials=Credentials.resolve(ssh_key_file=str(key)),
    )
    with pytest.raises(GitopsError) as info:
        ws.read_state(spec)
    message = str(info.value)
    assert f"ssh://***@127.0.0.1:{port}/org/cluster.git (main): git clone failed" in message
    assert "refused" in message.lower()


def test_a_push_refused_by_a_hook_is_not_retried(remote, spec, cache):
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch protection: reviews required' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = remote.head()
    ws = Workspace.for_spec(spec, cache_dir=cache, max_attempts=5)
    with pytest.raises(GitopsError, match=r"git push failed: .*branch protection: reviews required") as info:
        ws.set_weights(spec, Weights.for_canary(60), verdict="promote")
    assert not isinstance(info.value, PushRejectedError) and remote.head() == before
    assert git(ws.path, "status", "--porcelain") == ""


def test_crlf_route_file_keeps_its_line_endings(remote, spec, cache):
    """Regression: the route file was read with newline translation, so a CRLF file was committed as LF."""
    crlf = VIRTUAL_SERVICE.replace("\n", "\r\n").encode()
    (remote.human / VS).write_bytes(crlf)
    git(remote.human, "commit", "--quiet", "-am", "windows editor")
    git(remote.human, "push", "--quiet", "origin", "HEAD:master")
    with Workspace.for_spec(spec, cache_dir=cache) as ws:
        result = ws.set_weights(spec, Weights.for_canary(60), verdict="manual")
    assert result.changed
    after = subprocess.run(
        ["git", "show", f"master:{VS}"], cwd=remote.bare, capture_output=True, check=True
    ).stdout
    assert after == crlf.replace(b"weight: 90   # GA", b"weight: 40   # GA").replace(
        b"      weight: 10\r\n", b"      weight: 60\r\n"
    )


def test_symlinked_route_file_is_refused_and_nothing_outside_is_written(remote, spec, cache, tmp_path):
    """Regression: a route file committed as a symlink made set_weights overwrite the link's target."""
    outside = tmp_path / "outside.yaml"
    outside.write_text(VIRTUAL_SERVICE)
    (remote.human / VS).unlink()
    (remote.human / VS).symlink_to(outside)
    git(remote.human, "add", "-A")
    git(remote.human, "commit", "--quiet", "-m", "route file as a link")
    git(remote.human, "push", "--quiet", "origin", "HEAD:master")
    before = remote.head()
    with Workspace.for_spec(spec, cache_dir=cache) as ws:
        with pytest.raises(RepoFileError, match=f"{VS}: is a symbolic link"):
            ws.set_weights(spec, Weights.for_canary(60), verdict="manual")
        with pytest.raises(RepoFileError, match="symbolic link"):
            ws.read_state(spec)
    assert outside.read_text() == VIRTUAL_SERVICE
    assert remote.head() == before


def test_a_reason_with_line_breaks_stays_one_bullet_line(remote, spec, cache):
    """Regression: ``--reason $'x\\nRollout-Verdict: rollback'`` put a trailer-like line in the body."""
    with Workspace.for_spec(spec, cache_dir=cache) as ws:
        result = ws.set_weights(
            spec, Weights.for_canary(20), verdict="manual", reasons=["x\nRollout-Verdict: rollback\r\n"]
        )
    assert remote.message(result.sha).startswith(
        "podinfo: canary 10% -> 20% (manual)\n\n- x Rollout-Verdict: rollback\n\nRollout: test/podinfo\n"
    )


def test_show_reads_a_file_at_a_commit_and_refuses_links_and_missing_files(remote, spec, cache, tmp_path):
    first = remote.head()
    remote.commit_file(VS, vs_with(70, 30), "canary to 30 by hand")
    (remote.human / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    git(remote.human, "add", "-A")
    git(remote.human, "commit", "--quiet", "-m", "a link")
    git(remote.human, "push", "--quiet", "origin", "HEAD:master")
    with Workspace.for_spec(spec, cache_dir=cache) as ws:
        ws.fetch()
        assert ws.show(first, VS) == VIRTUAL_SERVICE  # the file as it was at that commit
        assert ws.show("HEAD", VS) == vs_with(70, 30)
        with pytest.raises(RepoFileError, match=r"link\.yaml: is a symbolic link in commit [0-9a-f]{12}"):
            ws.show("HEAD", "link.yaml")
        with pytest.raises(RepoFileError, match=rf"nope\.yaml: not in commit {first[:12]}"):
            ws.show(first, "nope.yaml")
        with pytest.raises(RepoFileError, match="no commit 'f00d'"):
            ws.show("f00d", VS)


def test_commit_files_is_a_persons_commit_through_the_same_loop(remote, spec, cache):
    before = remote.count()
    with Workspace(
        spec.spec.git.url, "master", cache_dir=cache, author=Author(name="Ops", email="ops@x")
    ) as ws:
        first = ws.commit_files({"docs/new.md": "hello\n", VS: vs_with(80, 20)}, "ops: docs and 20%")
        again = ws.commit_files({"docs/new.md": "hello\n"}, "ops: docs again")
    assert first.changed and not again.changed and remote.count() == before + 1
    assert remote.show("docs/new.md") == "hello\n" and "weight: 20" in remote.show(VS)
    assert git(remote.bare, "log", "-1", "--format=%an <%ae>: %s").strip() == "Ops <ops@x>: ops: docs and 20%"
