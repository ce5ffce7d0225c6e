"""The Git workspace: one cached clone per remote and branch; every change is fetch, edit, commit, push.

Rules (see docs/gitops.md):

- Before every change: fetch the branch and hard-reset to it. Unpushed commits of an interrupted
  run are discarded and the change is made again, so a rerun converges without duplicates; a change
  that already reached the remote is not made twice (the weights are already there).
- A commit changes only the route file (only its weight scalars), or is empty (pause/resume).
- Push without force, only ``HEAD:refs/heads/<branch>``; never tags or ``refs/notes/*``. A rejected
  push is retried on the new head (fetch, re-read, re-apply) with backoff, a bounded number of
  times. If the weights on the new head differ from the ones we started from, someone else changed
  them: :class:`HumanOverrideError`, nothing is pushed.
- Every message we log, raise or commit is redacted (URL userinfo and tokens).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import git
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from rollouts.gitops.credentials import Credentials, redact, url_has_secret
from rollouts.gitops.manifest import canary_images, copy_images, revision_of
from rollouts.gitops.signing import Signing, with_config
from rollouts.gitops.ssh import explain, is_ssh_url
from rollouts.routes import RouteEditor, RouteError, Weights, editor_for
from rollouts.routes._engine import compose
from rollouts.spec import Author, Rollout

log = logging.getLogger("rollouts.gitops")

# Verdicts of commits that set weights, and of empty commits that only record a decision.
WEIGHT_VERDICTS = ("promote", "rollback", "abort", "manual", "finalize")
RECORD_VERDICTS = ("pause", "resume", "abort")
ALL_VERDICTS = tuple(dict.fromkeys(WEIGHT_VERDICTS + RECORD_VERDICTS))
# How many of our own commits we look back through for state (bounded: history can be huge).
MAX_RECORDS = 200
LOCK_TIMEOUT_S = 60.0
MAX_DESTINATION_RULE_FILES = 100
# Pushes that lost a race: retry on the new head. Anything else (hooks, auth) is an error.
_RETRYABLE = ("(fetch first)", "(non-fast-forward)", "failed to update ref", "cannot lock ref", "stale info")


class GitopsError(RuntimeError):
    """A Git operation that failed; the message names the remote (redacted) and what failed."""


class RouteFileError(GitopsError, RouteError):
    """A route or canary file on the branch that cannot be read or edited (malformed YAML, bad
    weights, unknown subset, missing file). Both a :class:`GitopsError` (the controller's Git
    failures) and a :class:`RouteError` (the editors' errors); the message names file, route, entry."""


@contextmanager
def _file_errors() -> Iterator[None]:
    try:
        yield
    except RouteFileError:
        raise
    except RouteError as exc:
        raise RouteFileError(str(exc)) from None


class PushRejectedError(GitopsError):
    """The remote refused our push because its branch moved (retryable)."""


class HumanOverrideError(GitopsError):
    """The weights on the remote were changed by someone else: we stop and do not overwrite."""

    def __init__(self, message: str, *, expected: Weights, found: Weights, commit: str | None) -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found
        self.commit = commit


@dataclass(frozen=True)
class Record:
    """One commit of ours for a rollout, from its trailers."""

    sha: str
    verdict: str
    step: str | None
    revision: str | None
    subject: str
    timestamp: int
    author: str
    finalize: str | None = None  # Rollout-Finalize: ga-image | route-ga (``finalize: promote-ga``)


@dataclass(frozen=True)
class RolloutState:
    """Everything about a rollout that Git knows (Git is the state)."""

    rollout: str
    branch: str
    head: str
    weights: Weights
    images: dict[str, str]
    revision: str
    last: Record | None  # our last commit that set weights (or aborted)
    last_record: Record | None  # our last commit of any kind, pause/resume included
    paused: bool
    human_override: bool  # the weights differ from what our last weight commit set
    override_commit: str | None  # the newest commit that touched the route file since ours
    new_revision: bool  # the canary images changed since our last weight commit
    ga_images: dict[str, str] | None = None  # the GA manifest's images (``finalize: promote-ga`` only)
    # Our weight commits of the current rollout of this revision, oldest first: the start (step 1)
    # up to ``last``. The controller replays every step's windows from them after a restart.
    history: tuple[Record, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        out = asdict(self)
        out["weights"] = {"stable": self.weights.stable, "canary": self.weights.canary}
        return out


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


def default_cache_dir() -> Path:
    """``$ROLLOUTS_CACHE_DIR``, else ``$XDG_CACHE_HOME/gitops-rollouts``, else ``~/.cache/...``."""
    if os.environ.get("ROLLOUTS_CACHE_DIR"):
        return Path(os.environ["ROLLOUTS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gitops-rollouts"


def format_message(
    rollout: Rollout,
    subject: str,
    *,
    verdict: str,
    reasons: Sequence[str] = (),
    step: str | None = None,
    revision: str | None = None,
    finalize: str | None = None,
) -> str:
    """Subject, a body with one reason per line, and the ``Rollout-*`` trailers."""
    lines = [subject, ""]
    if reasons:
        # One line per reason: a line break in a reason would start lines that read as trailers.
        lines += [f"- {' '.join(reason.split())}" for reason in reasons] + [""]
    lines.append(f"Rollout: {rollout.key}")
    if step:
        lines.append(f"Rollout-Step: {step}")
    if revision:
        lines.append(f"Rollout-Revision: {revision}")
    lines.append(f"Rollout-Verdict: {verdict}")
    if finalize:
        lines.append(f"Rollout-Finalize: {finalize}")
    return "\n".join(lines) + "\n"


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
        if url_has_secret(url):
            # Git would store it in .git/config and GitPython log it: tokens go through askpass.
            raise GitopsError(f"{redact(url)}: credentials in the URL are refused; use tokenFile or tokenEnv")
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
            raise GitopsError(self._redact(f"{self.remote}: branch {self.branch!r} not found"))
        return sha

    def fetch(self) -> str:
        """Fetch: the cached clone becomes the remote branch. Returns its head sha.

        Reads no file, so it works whatever state the route file is in (the report reads history,
        where the file may have been deleted or broken since).
        """
        with self._locked():
            self._sync()
            return self._head()

    def read_weights(self, rollout: Rollout) -> Weights:
        """Fetch, then the current weights of the rollout's route."""
        with self._locked(), _file_errors():
            self._sync()
            return self._editor(rollout).read(self._read(rollout.spec.route.path))

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
        """Commit and push ``weights`` for the rollout's route; a no-op when they are already there.

        ``finalize`` adds a ``Rollout-Finalize`` trailer (the phase of ``finalize: promote-ga``);
        ``label`` replaces the verdict in the subject's parentheses (e.g. ``restart``).

        ``expected`` is what the caller believes the weights are (the controller passes the weights
        of its last commit): when the remote says otherwise, :class:`HumanOverrideError` is raised and
        nothing is pushed. The same happens when, after a rejected push, the new head carries other
        weights than the ones this change started from.
        """
        if verdict not in WEIGHT_VERDICTS:
            raise GitopsError(f"verdict must be one of {', '.join(WEIGHT_VERDICTS)}, got {verdict!r}")
        path = rollout.spec.route.path
        with self._locked(), _file_errors(), self._clean_on_error():
            self._sync()
            editor = self._editor(rollout)
            base = editor.read(self._read(path))
            if base == weights:
                # Already there: our own change pushed by a run that died before it could tell
                # (``expected`` is then stale), or someone made the same change. Nothing to do.
                return CommitResult(sha=None, head=self._head(), previous=base, weights=weights, attempts=0)
            if expected is not None and base != expected:
                raise self._override(rollout, expected, base)
            change = f"canary {base.canary}% -> {weights.canary}%"
            subject = f"{rollout.metadata.name}: {change} ({label or verdict})"
            attempts = 0
            for attempt in self._retrying():
                with attempt:
                    attempts += 1
                    if attempts > 1:
                        self._sync(retry=True)
                        current = editor.read(self._read(path))
                        if current == weights:  # someone made the same change: nothing left to do
                            return CommitResult(
                                sha=None, head=self._head(), previous=base, weights=weights, attempts=attempts
                            )
                        if current != base:
                            raise self._override(rollout, base, current)
                    text = self._read(path)
                    self._write(path, editor.write(text, weights))
                    message = format_message(
                        rollout,
                        subject,
                        verdict=verdict,
                        reasons=reasons,
                        step=step,
                        revision=self._revision_or_none(rollout),
                        finalize=finalize,
                    )
                    sha = self._commit(message, paths=[path])
                    self._push()
            return CommitResult(
                sha=sha, head=sha, previous=base, weights=weights, attempts=attempts, message=message
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def promote_images(
        self, rollout: Rollout, *, reasons: Sequence[str] = (), expected: Weights | None = None
    ) -> CommitResult:
        """``finalize: promote-ga``, phase 1: copy the canary's images into the GA manifest (``gaPath``).

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
        with self._locked(), _file_errors(), self._clean_on_error():
            attempts = 0
            for attempt in self._retrying():
                with attempt:
                    attempts += 1
                    self._sync(retry=attempts > 1)
                    weights = self._editor(rollout).read(self._read(rollout.spec.route.path))
                    if expected is not None and weights != expected:
                        raise self._override(rollout, expected, weights)
                    images = canary_images(self._read(canary_path), canary_path)
                    text = self._read(ga_path)
                    edited = copy_images(text, images, ga_path)
                    if edited == text:
                        return CommitResult(
                            sha=None, head=self._head(), previous=weights, weights=weights, attempts=attempts
                        )
                    before = revision_of(canary_images(text, ga_path))
                    revision = revision_of(images)
                    message = format_message(
                        rollout,
                        f"{rollout.metadata.name}: GA {before} -> {revision} (finalize)",
                        verdict="finalize",
                        reasons=reasons,
                        revision=revision,
                        finalize="ga-image",
                    )
                    self._write(ga_path, edited)
                    sha = self._commit(message, paths=[ga_path])
                    self._push()
            return CommitResult(
                sha=sha, head=sha, previous=weights, weights=weights, attempts=attempts, message=message
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def record(self, rollout: Rollout, verdict: str, reasons: Sequence[str] = ()) -> RecordResult:
        """An empty commit recording ``pause``, ``resume`` or ``abort``; a no-op when it is already
        the rollout's latest such record. Works even when the route or canary file is broken (a
        human may want to pause exactly then)."""
        if verdict not in RECORD_VERDICTS:
            raise GitopsError(f"verdict must be one of {', '.join(RECORD_VERDICTS)}, got {verdict!r}")
        with self._locked(), _file_errors(), self._clean_on_error():
            attempts = 0
            for attempt in self._retrying():
                with attempt:
                    attempts += 1
                    self._sync(retry=attempts > 1)
                    latest = self._latest_record(rollout, RECORD_VERDICTS)
                    if latest is not None and latest.verdict == verdict:
                        return RecordResult(sha=None, head=self._head(), attempts=attempts)
                    message = format_message(
                        rollout,
                        f"{rollout.metadata.name}: {verdict} rollout",
                        verdict=verdict,
                        reasons=reasons,
                        revision=self._revision_or_none(rollout),
                    )
                    sha = self._commit(message, paths=[], allow_empty=True)
                    self._push()
            return RecordResult(sha=sha, head=sha, attempts=attempts, message=message)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- state ----------------------------------------------------------------------------------------

    def _state(self, rollout: Rollout) -> RolloutState:
        route = rollout.spec.route
        editor = self._editor(rollout)
        weights = editor.read(self._read(route.path))
        images = canary_images(self._read(rollout.spec.canary.path), rollout.spec.canary.path)
        revision = revision_of(images)
        records = self._records(rollout)
        last = next((r for r in records if r.verdict in WEIGHT_VERDICTS), None)
        last_record = records[0] if records else None
        latest_pause = next((r for r in records if r.verdict in RECORD_VERDICTS), None)
        paused = latest_pause is not None and latest_pause.verdict in {"pause", "abort"}
        human_override = False
        override_commit: str | None = None
        new_revision = False
        if last is not None:
            ours = editor.read(self._show(last.sha, route.path))
            touched = self._git("log", "-1", "--format=%H", f"{last.sha}..HEAD", "--", route.path).strip()
            if ours != weights:
                human_override = True
                override_commit = touched or None
            try:
                then = canary_images(self._show(last.sha, rollout.spec.canary.path), rollout.spec.canary.path)
                new_revision = then != images
            except (GitopsError, RouteError):
                # The manifest was unreadable then: fall back on the trailer.
                new_revision = last.revision is not None and last.revision != revision
        history: list[Record] = []
        for record in records:  # newest first
            if record.verdict not in WEIGHT_VERDICTS:
                continue  # pause / resume records do not move the weights
            if record.revision != revision or (history and record.verdict not in ("promote", "manual")):
                break  # another revision, or the end of an earlier rollout of this one
            history.append(record)
            if record.verdict == "promote" and (record.step or "").startswith("1/"):
                break  # the rollout's start
        ga_images = None
        ga_path = rollout.spec.finalize.ga_path
        if rollout.spec.finalize.action == "promote-ga" and ga_path is not None:
            ga_images = canary_images(self._read(ga_path), ga_path)
        return RolloutState(
            rollout=rollout.key,
            branch=self.branch,
            head=self._head(),
            weights=weights,
            images=images,
            revision=revision,
            last=last,
            last_record=last_record,
            paused=paused,
            human_override=human_override,
            override_commit=override_commit,
            new_revision=new_revision,
            ga_images=ga_images,
            history=tuple(reversed(history)),
        )

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
            f"--format=%H{sep}%at{sep}%an <%ae>{sep}%s{sep}%(trailers:only,unfold){end}",
            revisions,
        )
        records: list[Record] = []
        for raw in out.split(end):
            chunk = raw.strip("\n")
            if not chunk:
                continue
            sha, at, author, subject, trailers = chunk.split(sep, 4)
            values: dict[str, str] = {}
            for line in trailers.splitlines():
                key, _, value = line.partition(":")
                values.setdefault(key.strip(), value.strip())
            if values.get("Rollout") != rollout.key or values.get("Rollout-Verdict") not in ALL_VERDICTS:
                continue
            records.append(
                Record(
                    sha=sha,
                    verdict=values["Rollout-Verdict"],
                    step=values.get("Rollout-Step"),
                    revision=values.get("Rollout-Revision"),
                    subject=subject,
                    timestamp=int(at),
                    author=author,
                    finalize=values.get("Rollout-Finalize"),
                )
            )
        return records

    def _latest_record(self, rollout: Rollout, verdicts: Sequence[str]) -> Record | None:
        return next((r for r in self._records(rollout) if r.verdict in verdicts), None)

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
                text = self._file(rel).read_text(encoding="utf-8", errors="replace")
                compose(text, rel)
            except RouteError as exc:
                log.warning("%s: skipping %s", self.remote, exc)
                continue
            rules.append((rel, text))
        return rules

    def _revision_or_none(self, rollout: Rollout) -> str | None:
        try:
            return revision_of(canary_images(self._read(rollout.spec.canary.path), rollout.spec.canary.path))
        except RouteError as exc:
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

    def _error(self, what: str, exc: git.GitCommandError) -> GitopsError:
        detail = " ".join(
            line.strip() for line in f"{exc.stderr or ''}\n{exc.stdout or ''}".splitlines() if line.strip()
        )
        detail = detail.replace("stderr: ", "").replace("stdout: ", "").strip("' ")
        if is_ssh_url(self.url):
            detail = explain(detail, self.credentials)
        text = f"{self.remote} ({self.branch}): git {what} failed: {detail or exc.status}"
        cls = PushRejectedError if what == "push" and any(m in detail for m in _RETRYABLE) else GitopsError
        if what == "push":
            # Lazy: rollouts.gitops.protected subclasses GitopsError from this module.
            from rollouts.gitops.protected import BranchProtectedError, is_protected_refusal

            if is_protected_refusal(detail):
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
            raise GitopsError(f"{self.remote} ({self.branch}): the workspace has no HEAD")
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
            raise RouteError(
                f"{rel}: is a symbolic link on branch {self.branch} of {self.remote}; "
                "the route and canary files must be regular files"
            )
        return path

    def _read(self, rel: str) -> str:
        try:
            path = self._file(rel)
            # newline="": CRLF stays CRLF, so _write puts back exactly the file's own line endings.
            with path.open(encoding="utf-8", newline="") as handle:
                return handle.read()
        except FileNotFoundError:
            raise RouteError(f"{rel}: no such file on branch {self.branch} of {self.remote}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RouteError(f"{rel}: cannot read: {exc}") from None

    def _show(self, sha: str, rel: str) -> str:
        return self._git("show", f"{sha}:{rel}")

    def _write(self, rel: str, text: str) -> None:
        # Bytes as they are: no newline translation, the editor kept the file's own line endings.
        with self._file(rel).open("w", encoding="utf-8", newline="") as handle:
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
        lock_path = self.path.parent / f"{self.path.name}.lock"
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        with lock_path.open("a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise GitopsError(f"{self.path}: workspace is locked by another process") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
