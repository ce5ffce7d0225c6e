"""The timeline of one rollout, read from the Git history of its route file.

Git is the audit log: every weight change is a commit. This module walks the first-parent history of
the branch (the order in which changes landed, which is the order Flux applied them) and returns one
:class:`Event` per commit that changed the route's weights -- ours, with ``Rollout-*`` trailers, and
anyone else's -- plus our commits that only record a decision (pause, resume, abort).

Commit messages are parsed liberally (:func:`parse_message`): the controller writes reasons as
``- ...`` lines and evidence either as a JSON object or as ``key = value`` lines under an
``Evidence:`` line; trailers are the ``Rollout-*`` lines as ``format_message`` writes them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import git

from rollouts.routes import RouteEditor, RouteError, Weights, editor_for
from rollouts.spec import Rollout

#: Upper bound on the commits read (history can be huge; a report covers one rollout's recent past).
MAX_COMMITS = 500

_TRAILER = re.compile(r"^(?P<key>Rollout(?:-[A-Za-z0-9-]+)?)\s*:\s*(?P<value>.*?)\s*$")
_BULLET = re.compile(r"^\s*[-*•]\s+(?P<text>.+?)\s*$")
_EVIDENCE_HEADER = re.compile(r"^\s*(?:Rollout-)?Evidence\s*:\s*(?P<rest>.*?)\s*$", re.IGNORECASE)
_PAIR = re.compile(r"(?P<key>[A-Za-z_][\w.\-/]*)\s*(?:=|:)\s*(?P<value>[^\s,;]+)")
# Other people's trailers (Signed-off-by, Co-authored-by, ...) are not reasons.
_OTHER_TRAILER = re.compile(r"^[A-Z][A-Za-z-]*-[Bb]y\s*:")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%?$|^[+-]?(?:inf|nan)$", re.IGNORECASE)


class HistoryError(ValueError):
    """The history cannot be read; the message names the repository, branch or file."""


@dataclass(frozen=True)
class Message:
    """A commit message taken apart: subject, reasons, evidence and ``Rollout-*`` trailers."""

    subject: str
    body: str
    reasons: tuple[str, ...]
    evidence: dict[str, str]
    trailers: dict[str, str]


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
    verdict: str | None
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


def parse_message(message: str) -> Message:
    """Split a commit message into subject, reasons, evidence and ``Rollout-*`` trailers.

    Liberal on purpose (the message is written by the controller, by ``rollouts set-weight`` or by a
    person): reasons are ``-``/``*`` bullet lines, or else the body's other lines; evidence is a
    JSON object (on an ``Evidence:`` line or alone on a line) or the ``key = value`` / ``key: value``
    lines following an ``Evidence:`` line, up to the next blank line.
    """
    lines = message.replace("\r\n", "\n").split("\n")
    subject = lines[0].strip() if lines else ""
    body_lines = lines[1:]
    trailers: dict[str, str] = {}
    evidence: dict[str, str] = {}
    reasons: list[str] = []
    plain: list[str] = []
    # Trailers of the last paragraph that has any, as Git reads them: a "Rollout: x" line typed into
    # a reason earlier in the body must not decide whose commit this is or what its verdict was.
    paragraph: dict[str, str] = {}
    in_evidence = False
    for raw in body_lines:
        line = raw.rstrip()
        if not line.strip():
            in_evidence = False
            if paragraph:
                trailers, paragraph = paragraph, {}
            continue
        trailer = _TRAILER.match(line)
        # "- Evidence: ..." too: reasons passed through format_message arrive as bullets.
        header = _EVIDENCE_HEADER.match(_BULLET.sub(r"\g<text>", line))
        if header is not None:
            rest = header["rest"]
            if rest.startswith("{"):
                evidence.update(_json_object(rest))
            else:
                evidence.update(_pairs(rest))
                in_evidence = True
            continue
        if trailer is not None:
            paragraph.setdefault(trailer["key"], trailer["value"])
            continue
        if line.lstrip().startswith("{") and (parsed := _json_object(line.strip())):
            evidence.update(parsed)
            continue
        if in_evidence:
            bullet = _BULLET.match(line)
            pairs = _pairs(bullet["text"] if bullet else line)
            if pairs:
                evidence.update(pairs)
                continue
            in_evidence = False
        bullet = _BULLET.match(line)
        if bullet is not None:
            reasons.append(bullet["text"])
        elif not _OTHER_TRAILER.match(line):
            plain.append(line.strip())
    if paragraph:
        trailers = paragraph
    body = "\n".join(body_lines).strip("\n")
    return Message(
        subject=subject,
        body=body,
        reasons=tuple(reasons or plain),
        evidence=evidence,
        trailers=trailers,
    )


def _json_object(text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): _scalar(v) for k, v in _flatten(data)}


def _flatten(data: dict[str, object], prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _scalar(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(_scalar(v) for v in value)
    return str(value)


def _pairs(text: str) -> dict[str, str]:
    """``a=1 b=0.5`` or ``p99: 0.12`` -> pairs; only when the values are numbers (else it is prose)."""
    found = {m["key"]: m["value"] for m in _PAIR.finditer(text)}
    return {k: v for k, v in found.items() if _NUMBER.match(v)}


class _Reader:
    """Weights of the route file at any commit (cached per blob: unchanged files are read once)."""

    def __init__(self, rollout: Rollout) -> None:
        route = rollout.spec.route
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
        try:
            blob = commit.tree / self.path
        except KeyError:
            return None, f"{self.path}: not in commit {commit.hexsha[:12]}"
        cached = self._cache.get(blob.hexsha)
        if cached is None:
            try:
                text = blob.data_stream.read().decode("utf-8")
                cached = self.editor.read(text)
            except UnicodeDecodeError:
                cached = f"{self.path}: not UTF-8 in commit {commit.hexsha[:12]}"
            except RouteError as exc:
                cached = str(exc)
            self._cache[blob.hexsha] = cached
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
) -> Timeline:
    """The rollout's timeline from ``repo`` at ``rev`` (default: the spec's branch, else HEAD).

    Commits that touched the route file without changing the weights (comments, other routes) are
    left out unless they are ours; so are commits older than ``since`` or newer than ``until``.
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

    reader = _Reader(rollout)
    events: list[Event] = []
    for commit in ordered:
        text = (
            commit.message if isinstance(commit.message, str) else commit.message.decode("utf-8", "replace")
        )
        message = parse_message(text)
        is_ours = message.trailers.get("Rollout") == rollout.key
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
                verdict=message.trailers.get("Rollout-Verdict") if is_ours else None,
                step=message.trailers.get("Rollout-Step") if is_ours else None,
                revision=message.trailers.get("Rollout-Revision") if is_ours else None,
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
