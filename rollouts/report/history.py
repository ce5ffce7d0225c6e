"""The timeline of one rollout, read from the Git history of its route file.

Git is the audit log: every weight change is a commit. This module walks the first-parent history of
the branch (the order in which changes landed, which is the order Flux applied them) and returns one
:class:`Event` per commit that changed the route's weights -- ours, with ``Rollout-*`` trailers, and
anyone else's -- plus our commits that only record a decision (pause, resume, abort).

Commit messages are parsed by the protocol's one parser (:func:`rollouts.state.parse_message`,
liberal: people write commits too); the format is documented in :mod:`rollouts.state`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import git

from rollouts.gitops.errors import RepoFileError
from rollouts.report.errors import HistoryError
from rollouts.routes import RouteEditor, RouteError, Weights, editor_for
from rollouts.spec import Rollout
from rollouts.state import CommitVerdict, Message, parse_message
from rollouts.yamlsafe import ROUTE, YamlLimitError, decode

__all__ = [
    "MAX_COMMITS",
    "Event",
    "HistoryError",
    "Message",
    "Step",
    "Timeline",
    "parse_message",
    "read_timeline",
]

#: ``show(sha, path)``: a file's text at a commit (``Workspace.show``: locked); RepoFileError when unreadable.
Show = Callable[[str, str], str]

#: Upper bound on the commits read (history can be huge; a report covers one rollout's recent past).
MAX_COMMITS = 500


@dataclass(frozen=True)
class Event:
    """One commit on the rollout's timeline.

    ``verdict`` is the ``Rollout-Verdict`` trailer of our commits and None for anyone else's
    (``ours`` is False then: a human change, shown as such). ``before``/``after`` are the weights in
    the route file at the first parent and at this commit (None where the file is missing or
    unreadable, with ``error`` saying why).
    """

    sha: str
    timestamp: int  # committer time (when it landed), unix seconds
    author: str
    subject: str
    message: str
    before: Weights | None
    after: Weights | None
    ours: bool
    verdict: CommitVerdict | None
    step: str | None
    revision: str | None
    reasons: tuple[str, ...]
    evidence: dict[str, str]
    error: str | None = None

    @property
    def weight_change(self) -> bool:
        """True when the commit changed the weights (or first set them)."""
        return self.after is not None and self.after != self.before

    @property
    def kind(self) -> str:
        """What the table shows: the verdict of our commits, ``human`` for anyone else's."""
        return self.verdict or ("human" if not self.ours else "unknown")


@dataclass(frozen=True)
class Step:
    """A span with constant weights: from a weight-changing event to the next one (or ``end``)."""

    index: int
    start: int
    end: int
    weights: Weights
    event: Event

    @property
    def duration(self) -> int:
        """Seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class Timeline:
    """The rollout's events, oldest first, and the steps they delimit."""

    rollout: str
    route_path: str
    stable: str
    canary: str
    branch: str
    head: str
    events: tuple[Event, ...]
    truncated: bool = False
    since: int | None = None
    until: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def steps(self, end: int) -> tuple[Step, ...]:
        """The constant-weight spans, the last one ending at ``end`` (unix seconds)."""
        changes = [e for e in self.events if e.weight_change and e.after is not None]
        out: list[Step] = []
        for i, event in enumerate(changes):
            assert event.after is not None
            stop = changes[i + 1].timestamp if i + 1 < len(changes) else max(end, event.timestamp)
            out.append(Step(index=i + 1, start=event.timestamp, end=stop, weights=event.after, event=event))
        return tuple(out)


class _Reader:
    """Weights of the route file at any commit (cached per blob: unchanged files are read once)."""

    def __init__(self, rollout: Rollout, show: Show | None = None) -> None:
        route = rollout.spec.route
        self._show = show
        self.path = route.path
        # No DestinationRule check here: the report reads what was, even when the subsets changed since.
        self.editor: RouteEditor = editor_for(
            route.kind, stable=route.stable, canary=route.canary, route_name=route.name, source=route.path
        )
        self._cache: dict[str, Weights | str] = {}

    def at(self, commit: git.Commit | None) -> tuple[Weights | None, str | None]:
        """``(weights, None)`` or ``(None, why not)``."""
        if commit is None:
            return None, None
        if self._show is not None:
            return self._shown(commit)
        try:
            blob = commit.tree / self.path
        except KeyError:
            return None, f"{self.path}: not in commit {commit.hexsha[:12]}"
        cached = self._cache.get(blob.hexsha)
        if cached is None:
            try:
                if blob.size > ROUTE.max_bytes:  # the size is in the object header: nothing read
                    raise YamlLimitError(
                        f"{self.path}: {blob.size} bytes in commit {commit.hexsha[:12]}, more than the "
                        f"limit of {ROUTE.max_bytes // 1024} KiB"
                    )
                cached = self.editor.read(decode(blob.data_stream.read(), self.path))
            except YamlLimitError as exc:  # too big, or not UTF-8 (line and byte named)
                cached = f"{exc} (commit {commit.hexsha[:12]})"
            except RouteError as exc:
                cached = str(exc)
            self._cache[blob.hexsha] = cached
        if isinstance(cached, Weights):
            return cached, None
        return None, cached

    def _shown(self, commit: git.Commit) -> tuple[Weights | None, str | None]:
        """Through ``show`` (the workspace's locked read), cached per text: files repeat."""
        assert self._show is not None
        try:
            text = self._show(commit.hexsha, self.path)
        except RepoFileError as exc:
            return None, str(exc)
        cached = self._cache.get(text)
        if cached is None:
            try:
                cached = self.editor.read(text)
            except RouteError as exc:
                cached = str(exc)
            self._cache[text] = cached
        if isinstance(cached, Weights):
            return cached, None
        return None, cached


def read_timeline(
    repo: git.Repo,
    rollout: Rollout,
    *,
    rev: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    max_commits: int = MAX_COMMITS,
    show: Show | None = None,
) -> Timeline:
    """The rollout's timeline from ``repo`` at ``rev`` (default: the spec's branch, else HEAD).

    Commits that touched the route file without changing the weights (comments, other routes) are
    left out unless they are ours; so are commits older than ``since`` or newer than ``until``.
    ``show`` reads the route file at each commit (default: from ``repo``'s objects directly).
    """
    branch = rollout.spec.git.branch
    if rev is None:
        rev = branch if branch in {h.name for h in repo.heads} else "HEAD"
    try:
        head = repo.commit(rev)
    except (git.BadName, ValueError) as exc:
        raise HistoryError(f"{repo.working_dir}: no revision {rev!r}: {exc}") from None
    kwargs: dict[str, Any] = {"first_parent": True, "max_count": max_commits + 1}
    if since is not None:
        kwargs["since"] = since.isoformat()
    if until is not None:
        kwargs["until"] = until.isoformat()
    touching = list(repo.iter_commits(rev, paths=rollout.spec.route.path, **kwargs))
    ours = list(repo.iter_commits(rev, grep=f"Rollout: {rollout.key}", fixed_strings=True, **kwargs))
    truncated = len(touching) > max_commits or len(ours) > max_commits
    # First-parent order is landing order; committer time breaks nothing in it, so sort by it with the
    # walk order (newest first) as the tie-break.
    order: dict[str, int] = {}
    commits: dict[str, git.Commit] = {}
    for walk in (touching[:max_commits], ours[:max_commits]):
        for position, commit in enumerate(walk):
            commits.setdefault(commit.hexsha, commit)
            order[commit.hexsha] = min(order.get(commit.hexsha, position), position)
    ordered = sorted(commits.values(), key=lambda c: (c.committed_date, -order[c.hexsha]))

    reader = _Reader(rollout, show)
    events: list[Event] = []
    for commit in ordered:
        text = (
            commit.message if isinstance(commit.message, str) else commit.message.decode("utf-8", "replace")
        )
        message = parse_message(text)
        is_ours = message.ours(rollout.key)
        after, error = reader.at(commit)
        before, _ = reader.at(commit.parents[0] if commit.parents else None)
        if not is_ours and after == before:
            continue  # touched the file, not the weights (or the file is absent before and after)
        events.append(
            Event(
                sha=commit.hexsha,
                timestamp=int(commit.committed_date),
                author=f"{commit.author.name} <{commit.author.email}>",
                subject=message.subject,
                message=text,
                before=before,
                after=after,
                ours=is_ours,
                verdict=message.verdict if is_ours else None,
                step=message.step if is_ours else None,
                revision=message.revision if is_ours else None,
                reasons=message.reasons,
                evidence=message.evidence,
                error=error,
            )
        )
    route = rollout.spec.route
    notes: list[str] = []
    if truncated:
        notes.append(f"only the newest {max_commits} commits were read")
    return Timeline(
        rollout=rollout.key,
        route_path=route.path,
        stable=route.stable,
        canary=route.canary,
        branch=branch,
        head=head.hexsha,
        events=tuple(events),
        truncated=truncated,
        since=int(since.timestamp()) if since is not None else None,
        until=int(until.timestamp()) if until is not None else None,
        notes=tuple(notes),
    )
