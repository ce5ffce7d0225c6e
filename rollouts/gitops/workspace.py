"""The Git workspace: one cached clone per remote and branch; every change is fetch, edit, commit, push.

Plumbing only: what a commit says and what the history means is :mod:`rollouts.state`'s (its
messages, :func:`rollouts.state.derive`); this module fetches, reads files (:meth:`Workspace.show`,
locked, no symbolic links), commits, pushes and locks.

Rules (see docs/gitops.md):

- Before every change: fetch the branch and hard-reset to it. Unpushed commits of an interrupted
  run are discarded and the change is made again, so a rerun converges without duplicates; a change
  that already reached the remote is not made twice (the weights are already there).
- A commit changes only the route file (its weight scalars, and the strategy blocks the change's
  route state adds or removes), or is empty (pause/resume, or a new revision's start in a route
  that is already in the mirror or A/B stage).
- Push without force, only ``HEAD:refs/heads/<branch>`` (or, where the branch is protected, the
  same commit to a new branch of ours, ``via``); never tags or ``refs/notes/*``. A rejected
  push is retried on the new head (fetch, re-read, re-apply) with backoff, a bounded number of
  times, in one loop (:meth:`Workspace._push_change`). If the weights on the new head differ from
  the ones we started from, someone else changed them: :class:`HumanOverrideError`, nothing is pushed.
- Every message we log, raise or commit is redacted (URL userinfo and tokens).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
from filelock import FileLock, Timeout
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from rollouts.gitops.credentials import Credentials, check_remote_url, redact
from rollouts.gitops.errors import (
    BranchProtectedError,
    GitError,
    GitopsError,
    HumanOverrideError,
    PushRejectedError,
    RemoteUrlError,
    RepoFileError,
)
from rollouts.gitops.manifest import canary_images, copy_images, revision_of
from rollouts.gitops.protected import is_protected_refusal
from rollouts.gitops.signing import Signing, with_config
from rollouts.gitops.ssh import explain, is_ssh_url
from rollouts.routes import RouteEditor, RouteError, Weights, editor_for
from rollouts.routes._engine import compose
from rollouts.routes.strategies import SessionAffinity, affinity_value
from rollouts.spec import Author, Rollout
from rollouts.spec_strategy import apply_state
from rollouts.state import (
    RECORD_VERDICTS,
    WEIGHT_VERDICTS,
    CommitVerdict,
    FinalizeStage,
    GitFacts,
    Record,
    RolloutState,
    WeightChange,
    derive,
    format_message,
    ga_subject,
    last_weight_record,
    latest_record,
    parse_message,
    record_of,
    record_subject,
)
from rollouts.state.message import PRELUDE_STEPS, approval_line
from rollouts.yamlsafe import REPO_FILE, YamlLimitError, decode, read_text

log = logging.getLogger("rollouts.gitops")

# How many of our own commits we look back through for state (bounded: history can be huge).
MAX_RECORDS = 200
LOCK_TIMEOUT_S = 60.0
MAX_DESTINATION_RULE_FILES = 100
# Pushes that lost a race: retry on the new head. Anything else (hooks, auth) is an error.
_RETRYABLE = ("(fetch first)", "(non-fast-forward)", "failed to update ref", "cannot lock ref", "stale info")


@contextmanager
def _file_errors() -> Iterator[None]:
    """The editors' and manifest readers' errors, about a file on the branch, as :class:`RepoFileError`."""
    try:
        yield
    except RouteError as exc:
        raise RepoFileError(str(exc)) from None


@dataclass(frozen=True)
class CommitResult:
    """The outcome of a change: ``sha`` of the pushed commit, None when nothing had to change."""

    sha: str | None
    head: str
    previous: Weights
    weights: Weights
    attempts: int
    message: str = ""
    changed: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "changed", self.sha is not None)


@dataclass(frozen=True)
class RecordResult:
    """The outcome of :meth:`Workspace.record`: ``sha`` of the pushed empty commit, or None when the
    latest record already said so."""

    sha: str | None
    head: str
    attempts: int
    message: str = ""
    changed: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "changed", self.sha is not None)


@dataclass(frozen=True)
class _Edit:
    """What one attempt of a change commits: the message and the files' new text (none: empty)."""

    message: str
    files: dict[str, str]


@dataclass(frozen=True)
class FileEdit:
    """One attempt of a caller's change (:meth:`Workspace.commit_edit`): the message and the files'
    new text (path -> text; empty: an empty commit)."""

    message: str
    files: Mapping[str, str]


@dataclass(frozen=True)
class LogEntry:
    """One commit of the branch's history: sha, commit time (epoch seconds), author, full message."""

    sha: str
    timestamp: int
    author: str
    message: str


@dataclass(frozen=True)
class _Pushed:
    """What :meth:`Workspace._push_change` did: ``sha`` None when nothing had to change."""

    sha: str | None
    head: str
    attempts: int
    message: str = ""

    def result(self, previous: Weights, weights: Weights) -> CommitResult:
        """As the :class:`CommitResult` of a change from ``previous`` to ``weights``."""
        return CommitResult(
            sha=self.sha,
            head=self.head,
            previous=previous,
            weights=weights,
            attempts=self.attempts,
            message=self.message,
        )


def _with_strategy(
    editor: RouteEditor, rollout: Rollout, text: str, weights: Weights, revision: str | None
) -> str:
    """The route ``text`` with the strategy blocks a step at ``weights`` has: the session-affinity
    cookie route while the canary has some but not all of the traffic, none otherwise (so a
    rollback, the last step and the route back to GA remove it in the same commit)."""
    spec = rollout.spec.analysis.session_affinity
    if spec is None:
        return text  # no strategy: the commit changes the weights only
    if not 0 < weights.canary < 100:
        return editor.set_affinity(text, None)
    affinity = SessionAffinity(
        spec.cookie_name,
        affinity_value(rollout.key, revision or ""),
        spec.max_age,
        primary_cookie_name=spec.primary_cookie_name,
        primary_max_age=max(1, round(rollout.spec.analysis.interval)),
    )
    return editor.set_affinity(text, affinity)


def default_cache_dir() -> Path:
    """``$ROLLOUTS_CACHE_DIR``, else ``$XDG_CACHE_HOME/gitops-rollouts``, else ``~/.cache/...``."""
    if os.environ.get("ROLLOUTS_CACHE_DIR"):
        return Path(os.environ["ROLLOUTS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gitops-rollouts"


class Workspace:
    """A cached clone of one branch of one remote.

    ``max_attempts`` bounds the pushes of one change; ``backoff`` is the maximum wait between them.
    """

    def __init__(
        self,
        url: str,
        branch: str,
        *,
        cache_dir: Path | None = None,
        author: Author | None = None,
        credentials: Credentials | None = None,
        signing: Signing | None = None,
        max_attempts: int = 8,
        backoff: float = 1.0,
    ) -> None:
        try:
            # Git would store credentials in .git/config and GitPython log them: tokens go through
            # askpass. ext:: and other remote helpers would run commands.
            check_remote_url(url)
        except RemoteUrlError as exc:
            raise GitopsError(str(exc)) from None
        self.url = url
        self.branch = branch
        self.author = author or Author()
        self.credentials = credentials or Credentials()
        self.signing = signing  # None: unsigned commits
        self.max_attempts = max_attempts
        self.backoff = backoff
        # Absolute: git runs inside the clone, and paths we hand it must not depend on our cwd.
        root = (cache_dir or default_cache_dir()).absolute()
        key = hashlib.sha256(f"{url}\0{branch}".encode()).hexdigest()[:16]
        self.path = root / "repos" / key
        self._aux = root / "aux"
        self._repo: git.Repo | None = None
        # Per rollout: the head last scanned for our commits, and the commits found (newest first).
        self._record_cache: dict[str, tuple[str, list[Record]]] = {}

    @classmethod
    def for_spec(
        cls,
        rollout: Rollout,
        *,
        cache_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Workspace:
        """The workspace of a rollout's ``spec.git`` (author, credentials and signing key from the spec
        unless given in ``kwargs``). A signing key that cannot sign raises ``SigningError`` here."""
        spec = rollout.spec.git
        if "signing" not in kwargs:
            kwargs["signing"] = Signing.resolve(spec.signing, env)
            if kwargs["signing"] is not None:
                kwargs["signing"].check()
        if "credentials" not in kwargs:
            kwargs["credentials"] = Credentials.resolve(
                ssh_key_file=spec.ssh_key_file,
                token_file=spec.token_file,
                token_env=spec.token_env,
                known_hosts_file=spec.known_hosts_file,
                env=env,
            )
        kwargs.setdefault("author", spec.author)
        return cls(spec.url, spec.branch, cache_dir=cache_dir, **kwargs)

    # -- public API -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the git helper processes GitPython keeps for this workspace (it can be reused)."""
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def remote(self) -> str:
        """The remote URL with credentials redacted (for messages)."""
        return self._redact(self.url)

    def read_state(self, rollout: Rollout) -> RolloutState:
        """Fetch, then read the rollout's state from the head of the branch."""
        with self._locked(), _file_errors():
            self._sync()
            return self._state(rollout)

    def remote_head(self) -> str:
        """The sha the remote branch points at now: one ``git ls-remote``, no fetch, no lock. A caller
        holding a state read at that sha can skip reading it again (the state is a function of it)."""
        try:
            out = str(
                git.cmd.Git().execute(
                    ["git", "ls-remote", self.url, f"refs/heads/{self.branch}"], env=self._env()
                )
            )
        except git.GitCommandError as exc:
            raise self._error("ls-remote", exc) from None
        sha = out.split(maxsplit=1)[0] if out.strip() else ""
        if not sha:
            raise GitError(self._redact(f"{self.remote}: branch {self.branch!r} not found"))
        return sha

    def fetch(self) -> str:
        """Fetch: the cached clone becomes the remote branch. Returns its head sha.

        Reads no file, so it works whatever state the route file is in (the report reads history,
        where the file may have been deleted or broken since).
        """
        with self._locked():
            self._sync()
            return self._head()

    def records(self, rollout: Rollout) -> list[Record]:
        """Fetch, then our commits for ``rollout``, newest first (at most :data:`MAX_RECORDS`), of
        every revision: what a pipeline plans on (``read_state`` keeps only the current rollout's)."""
        with self._locked():
            self._sync()
            return list(self._records(rollout))

    def log(
        self, *, grep: str | None = None, path: str | None = None, max_count: int = MAX_RECORDS
    ) -> list[LogEntry]:
        """The branch's commits at the clone's head, newest first: those whose message contains
        ``grep`` (a fixed string), or that touched ``path``; at most ``max_count``. No fetch: call
        :meth:`fetch` (or another reading method) first."""
        sep, end = "\x1f", "\x1e"
        args = ["log", f"--max-count={max_count}", f"--format=%H{sep}%ct{sep}%an <%ae>{sep}%B{end}"]
        if grep is not None:
            args += ["--fixed-strings", f"--grep={grep}"]
        args.append("HEAD")
        if path is not None:
            args += ["--", path]
        with self._locked():
            out = self._git(*args)
        entries: list[LogEntry] = []
        for raw in out.split(end):
            chunk = raw.strip("\n")
            if chunk:
                sha, at, author, message = chunk.split(sep, 3)
                entries.append(LogEntry(sha=sha, timestamp=int(at), author=author, message=message))
        return entries

    def commit_edit(self, plan: Callable[[Callable[[str], str | None]], FileEdit | None]) -> CommitResult:
        """A caller's change through the one change loop: on each attempt (the freshly fetched head),
        ``plan(read)`` decides, with ``read(path)`` giving a file's text there (None when missing),
        and returns the :class:`FileEdit` to commit, or None when nothing has to change (then ``sha``
        is None). A rejected push runs ``plan`` again on the new head, so a plan that re-checks its
        conditions there never overwrites a concurrent change it should yield to."""

        def edit() -> _Edit | None:
            planned = plan(self._read_or_none)
            return None if planned is None else _Edit(planned.message, dict(planned.files))

        pushed = self._push_change(edit)
        none = Weights.for_canary(0)
        return pushed.result(none, none)

    def read_weights(self, rollout: Rollout) -> Weights:
        """Fetch, then the current weights of the rollout's route."""
        with self._locked(), _file_errors():
            self._sync()
            return self._editor(rollout).read(self._read(rollout.spec.route.path))

    def show(self, sha: str, rel: str) -> str:
        """The text of ``rel`` at commit ``sha`` (``HEAD``: the clone's head), read under the lock.

        :class:`RepoFileError` naming the file and commit when it is missing, a symbolic link (its
        "text" would be where it points), not UTF-8, or ``sha`` is unknown. Every read of a repo
        file outside this module goes through here.
        """
        with self._locked(), _file_errors():
            return self._show(sha, rel)

    def set_weights(
        self,
        rollout: Rollout,
        weights: Weights,
        *,
        verdict: str,
        reasons: Sequence[str] = (),
        step: str | None = None,
        expected: Weights | None = None,
        finalize: str | None = None,
        label: str | None = None,
    ) -> CommitResult:
        """:meth:`commit_weights` with the change's fields as arguments (the CLI's spelling)."""
        if verdict not in WEIGHT_VERDICTS:
            raise GitopsError(f"verdict must be one of {', '.join(WEIGHT_VERDICTS)}, got {verdict!r}")
        change = WeightChange(
            weights,
            CommitVerdict(verdict),
            tuple(reasons),
            step=step,
            expected=expected,
            finalize=FinalizeStage(finalize) if finalize else None,
            label=label,
        )
        return self.commit_weights(rollout, change)

    def commit_weights(
        self, rollout: Rollout, change: WeightChange, *, via: str | None = None
    ) -> CommitResult:
        """Commit and push ``change`` for the rollout's route; a no-op when its weights are already there.

        ``change.expected`` is what the caller believes the weights are (the controller passes the
        weights of its last commit): when the remote says otherwise, :class:`HumanOverrideError` is
        raised and nothing is pushed. The same happens when, after a rejected push, the new head
        carries other weights than the ones this change started from.

        ``via``: push the commit to that new branch of ours instead (see :meth:`_push_change`).
        """
        path, weights = rollout.spec.route.path, change.weights
        base: Weights | None = None  # the weights this change started from (first attempt)
        editor: RouteEditor | None = None

        def edit() -> _Edit | None:
            nonlocal base, editor
            if editor is None:
                editor = self._editor(rollout)
            text = self._read(path)
            current = editor.read(text)
            revision = self._revision_or_none(rollout)
            # The route state goes in first (blocks removed, weights, blocks set), the cookie route last.
            routed = (
                editor.write(text, weights)
                if change.route is None
                else apply_state(editor, text, change.route)
            )
            new = _with_strategy(editor, rollout, routed, weights, revision)
            # The start of a stage at 0 % is a commit even when the route does not change (a new
            # revision in the stage); so is a verdict that says so (``record_unchanged``).
            starts_stage = (
                change.step in PRELUDE_STEPS and change.verdict == CommitVerdict.PROMOTE
            ) or change.record_unchanged
            if current == weights and (change.route is None or new == text) and not starts_stage:
                # Already there: our own change pushed by a run that died before it could tell
                # (``expected`` is then stale), or someone made the same change. Nothing to do.
                base = base or current
                return None
            if base is None:
                base = current
                if change.expected is not None and current != change.expected:
                    raise self._override(rollout, change.expected, current)
            elif current != base:
                raise self._override(rollout, base, current)
            message = change.message(rollout.key, rollout.metadata.name, base, revision)
            # A new revision arriving in the mirror or A/B stage: the route is already in it, so the
            # start of its rollout is recorded by an empty commit with the same trailers.
            return _Edit(message, {path: new} if new != text else {})

        pushed = self._push_change(edit, via=via)
        assert base is not None
        return pushed.result(base, weights)

    def promote_images(
        self,
        rollout: Rollout,
        *,
        reasons: Sequence[str] = (),
        expected: Weights | None = None,
        via: str | None = None,
    ) -> CommitResult:
        """``finalize: promote-ga``, stage 1: copy the canary's images into the GA manifest (``gaPath``).

        The commit changes only that file's image scalars and carries ``Rollout-Verdict: finalize``
        and ``Rollout-Finalize: ga-image``; the route is untouched (the canary keeps its traffic until
        GA runs the new images). A no-op (``sha`` None) when GA already has them. ``expected``: the
        weights the caller believes are live; others on the remote are a human's and win
        (:class:`HumanOverrideError`). The canary images are read on the same head as the edit, so a
        new revision pushed meanwhile is copied only if it is the one on the head we commit on.
        """
        ga_path = rollout.spec.finalize.ga_path
        if ga_path is None:
            raise GitopsError(f"{rollout.key}: finalize promote-ga needs gaPath")
        canary_path = rollout.spec.canary.path
        live: Weights | None = None

        def edit() -> _Edit | None:
            nonlocal live
            live = self._editor(rollout).read(self._read(rollout.spec.route.path))
            if expected is not None and live != expected:
                raise self._override(rollout, expected, live)
            images = canary_images(self._read(canary_path), canary_path)
            text = self._read(ga_path)
            edited = copy_images(text, images, ga_path)
            if edited == text:
                return None
            revision = revision_of(images)
            message = format_message(
                rollout.key,
                ga_subject(rollout.metadata.name, revision_of(canary_images(text, ga_path)), revision),
                verdict=CommitVerdict.FINALIZE,
                reasons=reasons,
                revision=revision,
                finalize=FinalizeStage.GA_IMAGE,
            )
            return _Edit(message, {ga_path: edited})

        pushed = self._push_change(edit, via=via)
        assert live is not None
        return pushed.result(live, live)

    def record(
        self, rollout: Rollout, verdict: str, reasons: Sequence[str] = (), *, via: str | None = None
    ) -> RecordResult:
        """An empty commit recording ``pause``, ``resume`` or ``abort``; a no-op when it is already
        the rollout's latest such record. Works even when the route or canary file is broken (a
        human may want to pause exactly then). ``via``: on that new branch of ours instead."""
        if verdict not in RECORD_VERDICTS:
            raise GitopsError(f"verdict must be one of {', '.join(RECORD_VERDICTS)}, got {verdict!r}")

        def edit() -> _Edit | None:
            latest = latest_record(self._records(rollout))
            if latest is not None and latest.verdict == verdict:
                return None
            message = format_message(
                rollout.key,
                record_subject(rollout.metadata.name, verdict),
                verdict=verdict,
                reasons=reasons,
                revision=self._revision_or_none(rollout),
            )
            return _Edit(message, {})

        pushed = self._push_change(edit, via=via)
        return RecordResult(
            sha=pushed.sha, head=pushed.head, attempts=pushed.attempts, message=pushed.message
        )

    def commit_files(self, files: Mapping[str, str], message: str) -> CommitResult:
        """Commit ``files`` (path -> text, created or replaced) with ``message`` as this workspace's
        author, and push; a no-op when they already have that text. Not the controller's path (its
        commits go through :meth:`commit_weights`): for a person's or an automation's commit (the demo's)."""

        def plan(read: Callable[[str], str | None]) -> FileEdit | None:
            changed = {rel: text for rel, text in files.items() if read(rel) != text}
            return FileEdit(message, changed) if changed else None

        return self.commit_edit(plan)

    # -- the one change loop --------------------------------------------------------------------------

    def _push_change(self, edit: Callable[[], _Edit | None], *, via: str | None = None) -> _Pushed:
        """Fetch, ``edit()`` on the fresh head, commit, push: the only way a commit leaves this module.

        ``edit`` returns the message and the files' new text, or None when nothing has to change (a
        no-op: ``sha`` None). A rejected push is retried on the new head (``edit`` runs again there,
        and may raise :class:`HumanOverrideError`), at most ``max_attempts`` times with backoff. Under
        the lock; on any failure the cached worktree is put back to the remote branch.

        ``via`` (a protected watched branch): the same commit, on the watched branch's head, with one
        more trailer line ``Rollout-Approval: <via>``, is pushed to the new branch ``via`` of ours
        instead, and the clone goes back to the remote's watched branch; the caller waits for its
        merge (:mod:`rollouts.gitops.approvals`). A push to ``via`` is never forced: a branch that
        exists already is the caller's to read, not to overwrite.
        """
        with self._locked(), _file_errors(), self._clean_on_error():
            attempts = 0
            for attempt in self._retrying():
                with attempt:
                    attempts += 1
                    self._sync(retry=attempts > 1)
                    planned = edit()
                    if planned is None:
                        return _Pushed(sha=None, head=self._head(), attempts=attempts)
                    for rel, text in planned.files.items():
                        self._write(rel, text)
                    message = planned.message if via is None else planned.message + approval_line(via) + "\n"
                    sha = self._commit(message, paths=list(planned.files), allow_empty=not planned.files)
                    if via is None:
                        self._push()
                        return _Pushed(sha=sha, head=sha, attempts=attempts, message=message)
                    try:
                        self._git(
                            "push", "--porcelain", "--no-follow-tags", "origin", f"{sha}:refs/heads/{via}"
                        )
                    finally:
                        # The watched branch stays exactly the remote's: our commit lives on ``via`` only.
                        remote_ref = f"refs/remotes/origin/{self.branch}"
                        self._git("checkout", "--quiet", "--force", "-B", self.branch, remote_ref)
                    return _Pushed(sha=sha, head=self._head(), attempts=attempts, message=message)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- state ----------------------------------------------------------------------------------------

    def _state(self, rollout: Rollout) -> RolloutState:
        """Read the facts at the head; what they mean is :func:`rollouts.state.derive`'s."""
        route, canary = rollout.spec.route, rollout.spec.canary
        editor = self._editor(rollout)
        weights = editor.read(self._read(route.path))
        images = canary_images(self._read(canary.path), canary.path)
        records = tuple(self._records(rollout))
        last = last_weight_record(records)
        weights_then: Weights | None = None
        images_then: dict[str, str] | None = None
        touched: str | None = None
        if last is not None:
            weights_then = editor.read(self._show(last.sha, route.path))
            touched = (
                self._git("log", "-1", "--format=%H", f"{last.sha}..HEAD", "--", route.path).strip() or None
            )
            try:
                images_then = canary_images(self._show(last.sha, canary.path), canary.path)
            except RepoFileError:
                images_then = None  # unreadable then: derive falls back on the trailer
        ga_images = None
        ga_path = rollout.spec.finalize.ga_path
        if rollout.spec.finalize.action == "promote-ga" and ga_path is not None:
            ga_images = canary_images(self._read(ga_path), ga_path)
        facts = GitFacts(
            rollout=rollout.key,
            branch=self.branch,
            head=self._head(),
            weights=weights,
            images=images,
            revision=revision_of(images),
            records=records,
            weights_then=weights_then,
            images_then=images_then,
            touched=touched,
            ga_images=ga_images,
        )
        return derive(rollout, facts)

    def _records(self, rollout: Rollout) -> list[Record]:
        """Our commits for ``rollout``, newest first (at most :data:`MAX_RECORDS`).

        The first call scans the whole history (``git log --grep``); later calls scan only the
        commits since the head they last saw, unless history was rewritten.
        """
        head = self._head()
        cached = self._record_cache.get(rollout.key)
        if cached is not None and cached[0] == head:
            return cached[1]
        if cached is not None and self._is_ancestor(cached[0], head):
            records = (self._scan_records(rollout, f"{cached[0]}..{head}") + cached[1])[:MAX_RECORDS]
        else:
            records = self._scan_records(rollout, head)
        self._record_cache[rollout.key] = (head, records)
        return records

    def _is_ancestor(self, older: str, newer: str) -> bool:
        status = self._open().git.execute(
            ["git", "merge-base", "--is-ancestor", older, newer],
            env=self._env(),
            with_extended_output=True,
            with_exceptions=False,
        )[0]
        return status == 0

    def _scan_records(self, rollout: Rollout, revisions: str) -> list[Record]:
        sep, end = "\x1f", "\x1e"
        out = self._git(
            "log",
            f"--max-count={MAX_RECORDS}",
            "--fixed-strings",
            f"--grep=Rollout: {rollout.key}",
            f"--format=%H{sep}%at{sep}%an <%ae>{sep}%B{end}",
            revisions,
        )
        records: list[Record] = []
        for raw in out.split(end):
            chunk = raw.strip("\n")
            if not chunk:
                continue
            sha, at, author, message = chunk.split(sep, 3)
            record = record_of(rollout.key, sha, int(at), author, parse_message(message))
            if record is not None:
                records.append(record)
        return records

    def _override(self, rollout: Rollout, expected: Weights, found: Weights) -> HumanOverrideError:
        path = rollout.spec.route.path
        commit = self._git("log", "-1", "--format=%H %an <%ae>: %s", "HEAD", "--", path).strip()
        sha = commit.split(" ", 1)[0] if commit else None
        return HumanOverrideError(
            self._redact(
                f"{rollout.key}: {path}: weights were changed by someone else "
                f"(expected canary {expected.canary}%, found {found.canary}%; "
                f"last change: {commit or 'unknown'}); not overwriting a human override"
            ),
            expected=expected,
            found=found,
            commit=sha,
        )

    def _editor(self, rollout: Rollout) -> RouteEditor:
        route = rollout.spec.route
        rules = self._destination_rules(route.path) if route.kind == "VirtualService" else []
        return editor_for(
            route.kind,
            stable=route.stable,
            canary=route.canary,
            route_name=route.name,
            source=route.path,
            destination_rules=rules,
        )

    def _destination_rules(self, route_path: str) -> list[tuple[str, str]]:
        """``(path, text)`` of the files in the repo that hold DestinationRules (they declare the
        subsets a VirtualService may name). Found with ``git grep`` (fast on big repos), bounded;
        files that do not parse are skipped with a warning: they are not ours to judge."""
        status, out, _err = self._open().git.execute(
            ["git", "grep", "-l", "--fixed-strings", "-e", "DestinationRule", "--", "*.yaml", "*.yml"],
            env=self._env(),
            with_extended_output=True,
            with_exceptions=False,
        )
        if status not in (0, 1):  # 1: no match
            log.warning("%s: cannot search for DestinationRules (git grep exit %s)", self.remote, status)
            return []
        rules: list[tuple[str, str]] = []
        for rel in str(out).splitlines()[:MAX_DESTINATION_RULE_FILES]:
            if rel == route_path:
                continue  # the editor checks the route file's own documents
            try:
                text = self._read(rel)  # bounded before it is read (a huge file is skipped, unread)
                compose(text, rel)
            except (RouteError, RepoFileError) as exc:
                log.warning("%s: skipping %s", self.remote, exc)
                continue
            rules.append((rel, text))
        return rules

    def _revision_or_none(self, rollout: Rollout) -> str | None:
        try:
            return revision_of(canary_images(self._read(rollout.spec.canary.path), rollout.spec.canary.path))
        except RepoFileError as exc:
            log.warning("%s: no canary revision for the trailer: %s", rollout.key, exc)
            return None

    # -- git plumbing ---------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return redact(text, self.credentials.secrets())

    def _env(self) -> dict[str, str]:
        self._aux.mkdir(parents=True, exist_ok=True)
        env = self.credentials.git_env(self._aux)
        env.update(
            GIT_AUTHOR_NAME=self.author.name,
            GIT_AUTHOR_EMAIL=self.author.email,
            GIT_COMMITTER_NAME=self.author.name,
            GIT_COMMITTER_EMAIL=self.author.email,
        )
        if self.signing is not None:
            with_config(env, self.signing.config())
        return env

    def _git(self, *args: str) -> str:
        """Run ``git args`` in the workspace; errors are redacted and name the remote."""
        repo = self._open()
        try:
            out: str = repo.git.execute(["git", *args], env=self._env(), strip_newline_in_stdout=False)
            return out
        except git.GitCommandError as exc:
            raise self._error(args[0], exc) from None

    def _error(self, what: str, exc: git.GitCommandError) -> GitError:
        detail = " ".join(
            line.strip() for line in f"{exc.stderr or ''}\n{exc.stdout or ''}".splitlines() if line.strip()
        )
        detail = detail.replace("stderr: ", "").replace("stdout: ", "").strip("' ")
        if is_ssh_url(self.url):
            detail = explain(detail, self.credentials)
        text = f"{self.remote} ({self.branch}): git {what} failed: {detail or exc.status}"
        cls = PushRejectedError if what == "push" and any(m in detail for m in _RETRYABLE) else GitError
        if what == "push" and is_protected_refusal(detail):
            cls = BranchProtectedError
        return cls(self._redact(text))

    def _open(self) -> git.Repo:
        if self._repo is None:
            self._repo = git.Repo(self.path)
        return self._repo

    def _clone(self) -> None:
        """Clone into a temporary directory and rename it into place: no half-cloned cache."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=self.path.parent))
        try:
            git.Repo.clone_from(
                self.url,
                tmp,
                branch=self.branch,
                single_branch=True,
                no_tags=True,
                env=self._env(),
            )
        except git.GitCommandError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise self._error("clone", exc) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tmp.rename(self.path)
        log.info("cloned %s (%s) into %s", self.remote, self.branch, self.path)

    def _sync(self, *, retry: bool = False) -> None:
        """Fetch the branch and make the worktree exactly the remote branch.

        Few processes: they are the window in which another writer can win the race to push.
        """
        if not (self.path / ".git").is_dir():
            self._clone()
        remote_ref = f"refs/remotes/origin/{self.branch}"
        if not retry:
            local, known = self._rev("HEAD"), self._rev(remote_ref)
            if local is not None and local != known:
                log.warning(
                    "%s: discarding the unpushed commit %s of an interrupted run; the change is made again",
                    self.remote,
                    local[:12],
                )
        self._git("fetch", "--no-tags", "--quiet", "origin", f"+refs/heads/{self.branch}:{remote_ref}")
        # --force -B: branch, index and worktree become the remote branch (also after a failed run).
        self._git("checkout", "--quiet", "--force", "-B", self.branch, remote_ref)

    def _rev(self, ref: str) -> str | None:
        """The sha of ``ref``, read in-process (no git process)."""
        try:
            return str(self._open().commit(ref).hexsha)
        except (ValueError, git.BadName, git.GitCommandError):
            return None

    def _head(self) -> str:
        head = self._rev("HEAD")
        if head is None:
            raise GitError(f"{self.remote} ({self.branch}): the workspace has no HEAD")
        return head

    def _file(self, rel: str) -> Path:
        """``rel`` in the worktree, refused when it is (or goes through) a symbolic link.

        Following one would read, and then overwrite, a file outside the repository (a link
        committed to the repo points wherever its author likes), or a file other than the one
        committed.
        """
        path = self.path / rel
        root = self.path.resolve()
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            raise RepoFileError(
                f"{rel}: is a symbolic link on branch {self.branch} of {self.remote}; "
                "the route and canary files must be regular files"
            )
        return path

    def _read(self, rel: str) -> str:
        path = self._file(rel)
        if not path.exists():
            raise RepoFileError(f"{rel}: no such file on branch {self.branch} of {self.remote}")
        try:
            # Size checked before reading; bytes decoded as they are (CRLF stays CRLF, so _write
            # puts back exactly the file's own line endings); a bad byte is named by line.
            return read_text(path, REPO_FILE, source=rel)
        except YamlLimitError as exc:
            raise RepoFileError(str(exc)) from None

    def _show(self, sha: str, rel: str) -> str:
        """``rel`` at commit ``sha``, from the object database (no worktree, no process)."""
        try:
            commit = self._open().commit(sha)
        except (ValueError, git.BadName) as exc:
            raise RepoFileError(f"{rel}: no commit {sha!r} in {self.remote}: {exc}") from None
        where = f"commit {commit.hexsha[:12]}"
        try:
            blob = commit.tree / rel
        except KeyError:
            raise RepoFileError(f"{rel}: not in {where} of {self.remote} ({self.branch})") from None
        if blob.mode == blob.link_mode:
            raise RepoFileError(
                f"{rel}: is a symbolic link in {where} of {self.remote}; "
                "the route and canary files must be regular files"
            )
        if blob.type != "blob":
            raise RepoFileError(f"{rel}: is not a file in {where} of {self.remote}")
        if blob.size > REPO_FILE.max_bytes:  # before reading it: the size is in the object header
            limit = REPO_FILE.max_bytes // 1024
            raise RepoFileError(f"{rel}: {blob.size} bytes in {where}, more than the limit of {limit} KiB")
        try:
            return decode(blob.data_stream.read(), rel)
        except YamlLimitError as exc:
            raise RepoFileError(f"{exc} (in {where} of {self.remote})") from None

    def _read_or_none(self, rel: str) -> str | None:
        try:
            return self._read(rel)
        except RepoFileError:
            return None

    def _write(self, rel: str, text: str) -> None:
        # Bytes as they are: no newline translation, the editor kept the file's own line endings.
        path = self._file(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)

    def _commit(self, message: str, *, paths: Sequence[str], allow_empty: bool = False) -> str:
        # A unique file: workspaces of other repos share the aux dir and may commit concurrently.
        self._aux.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="msg-", dir=self._aux)
        msg_file = Path(name)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(self._redact(message))
        try:
            args = ["commit", "--quiet", "--no-verify", "--cleanup=verbatim", f"--file={msg_file}"]
            if allow_empty:
                args.append("--allow-empty")
            if paths:
                self._git("add", "--", *paths)  # a new file (commit_files) must be known to --only
            self._git(*args, *(["--only", "--", *paths] if paths else []))
        finally:
            msg_file.unlink(missing_ok=True)
        return self._head()

    def _push(self) -> None:
        # Only our branch, never --force, never tags or notes.
        self._git("push", "--porcelain", "--no-follow-tags", "origin", f"HEAD:refs/heads/{self.branch}")

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=0.05, max=self.backoff),
            retry=retry_if_exception_type(PushRejectedError),
            reraise=True,
            before_sleep=lambda rs: log.info(
                "%s: push rejected (attempt %d), retrying on the new head", self.remote, rs.attempt_number
            ),
        )

    @contextmanager
    def _clean_on_error(self) -> Iterator[None]:
        """On any failure leave the cached worktree as the remote branch: no partial state."""
        try:
            yield
        except BaseException:
            if (self.path / ".git").is_dir():
                try:
                    self._git("reset", "--quiet", "--hard", f"refs/remotes/origin/{self.branch}")
                    self._git("clean", "--quiet", "-ffdx")
                except GitopsError as exc:
                    log.warning("%s: cleanup failed: %s", self.remote, exc)
            raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time per workspace (two controllers may share a cache dir)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A fresh FileLock per call: threads of one process exclude each other as processes do.
        lock = FileLock(self.path.parent / f"{self.path.name}.lock", timeout=LOCK_TIMEOUT_S)
        try:
            lock.acquire()
        except Timeout:
            raise GitError(f"{self.path}: workspace is locked by another process") from None
        try:
            yield
        finally:
            lock.release()
