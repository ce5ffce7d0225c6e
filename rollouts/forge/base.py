"""The forge interface, what every forge client shares (retries, the race rule), and the factory.

The race rule: a request is found by its source branch (ours is unique per rollout, revision and
step), and created only when none is found. Two controllers racing both find none and both create;
the forge refuses the second (GitHub 422 "A pull request already exists", GitLab 409 "Another open
merge request already exists"), and the loser finds the winner's. A create whose answer was lost (a
timeout, a 502 after the forge made it) is never retried blindly: the next attempt finds first.

Transient failures (connection errors, timeouts, 5xx, 429 and GitHub's rate-limit 403) are retried
with exponential backoff, a bounded number of times; then :class:`ForgeUnavailableError`. Tokens are
never logged or put in messages: messages name the forge, the repository and the branch.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rollouts.forge.errors import AlreadyExistsError, ForgeError, ForgeUnavailableError, TransientError

log = logging.getLogger("rollouts.forge")

ReviewState = Literal["open", "merged", "closed"]
T = TypeVar("T")
# The errors live in rollouts.forge.errors; named here too, where callers have imported them from.
__all__ = [
    "AlreadyExistsError",
    "Forge",
    "ForgeConfig",
    "ForgeError",
    "ForgeUnavailableError",
    "Retry",
    "Review",
    "ReviewState",
    "TransientError",
    "body_text",
    "choose",
    "find_or_create",
    "forge_for",
    "open_only",
]
MAX_BODY_CHARS = 60_000  # GitHub refuses bodies over 65,536 characters; GitLab over 1,000,000


@dataclass(frozen=True)
class Review:
    """A pull or merge request: its number (GitHub) or iid (GitLab), link, state and branches."""

    number: int
    url: str
    state: ReviewState
    branch: str
    base: str
    title: str


@dataclass(frozen=True)
class ForgeConfig:
    """Which forge, where, and the token (from a file or an environment variable, never the spec)."""

    kind: Literal["github", "gitlab"]
    repository: str  # owner/name (GitHub) or group/project path (GitLab)
    token: str
    url: str | None = None  # API base: https://api.github.com, https://gitlab.com (default per kind)
    auto_merge: bool = False
    merge_method: Literal["merge", "squash", "rebase"] = "merge"

    def __repr__(self) -> str:  # never the token
        return f"ForgeConfig(kind={self.kind!r}, repository={self.repository!r}, url={self.url!r})"

    @staticmethod
    def read_token(
        token_file: str | None, token_env: str | None, env: Mapping[str, str] | None = None
    ) -> str:
        """The token from ``token_file`` or the variable ``token_env``, read as the Git token is
        (:meth:`rollouts.gitops.credentials.Credentials.resolve`); errors never quote it."""
        from rollouts.gitops.credentials import KNOWN_HOSTS_ENV, Credentials
        from rollouts.gitops.errors import CredentialError

        source = dict(os.environ if env is None else env)
        source.pop(KNOWN_HOSTS_ENV, None)  # an SSH setting: not the forge's to check
        names = {"tokenFile": "spec.approval.forge.tokenFile", "tokenEnv": "spec.approval.forge.tokenEnv"}
        try:
            token = Credentials.resolve(
                token_file=token_file, token_env=token_env, env=source, names=names
            ).token
        except CredentialError as exc:
            raise ForgeError(str(exc)) from None
        if not token:
            raise ForgeError("spec.approval.forge: a token is needed (tokenFile or tokenEnv)")
        return token


class Forge(Protocol):
    """What the controller asks of a forge."""

    kind: str

    def find(self, branch: str) -> Review | None:
        """The request whose source branch is ``branch`` (open first, else the newest), or None."""
        ...

    def open(self, branch: str, base: str, title: str, body: str) -> Review:
        """The request for ``branch`` into ``base``: found, else created (never a second one)."""
        ...

    def get(self, number: int) -> Review:
        """The request ``number`` as it is now."""
        ...

    def enable_auto_merge(self, review: Review) -> None:
        """Ask the forge to merge ``review`` once its checks pass."""
        ...

    def close(self, review: Review, comment: str) -> None:
        """Say why in a comment on ``review``, then close it unmerged (a pipeline's superseded
        hand-over). A request already closed or merged is left as it is."""
        ...


@dataclass
class Retry:
    """Bounded retries with exponential backoff (``sleep`` injectable for tests)."""

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried on :class:`TransientError`; :class:`ForgeUnavailableError` at the end."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=self.max_backoff),
            retry=retry_if_exception_type(TransientError),
            sleep=self.sleep,
            reraise=True,
            before_sleep=lambda state: log.info(
                "%s: %s; retrying", what, state.outcome and state.outcome.exception()
            ),
        )
        try:
            return retrying(fn)
        except TransientError as exc:
            raise ForgeUnavailableError(f"{what}: {exc} (after {self.attempts} attempts)") from None


def choose(reviews: list[Review], branch: str) -> Review | None:
    """The request of ``branch`` among ``reviews`` (newest first): the open one, else the newest."""
    mine = [r for r in reviews if r.branch == branch]
    return next((r for r in mine if r.state == "open"), mine[0] if mine else None)


def open_only(found: Review | None) -> Review | None:
    """``found`` when it is open (a closed or merged request is not one to reuse for a new ask)."""
    return found if found is not None and found.state == "open" else None


def find_or_create(
    what: str,
    retry: Retry,
    find: Callable[[], Review | None],
    create: Callable[[], Review],
) -> Review:
    """The race rule of the module docstring: find, create only when none, find again after a
    refused or lost create. Bounded by ``retry.attempts``."""

    def once() -> Review:
        found = find()
        if found is not None:
            return found
        try:
            return create()
        except AlreadyExistsError:
            again = find()
            if again is None:  # refused, yet not listed (the forge's list lags): try again shortly
                raise TransientError("the forge says a request exists but does not list it yet") from None
            return again

    return retry.call(what, once)


def body_text(body: str) -> str:
    """``body`` cut to what every forge accepts."""
    return (
        body
        if len(body) <= MAX_BODY_CHARS
        else body[: MAX_BODY_CHARS - 40] + "\n\n(cut: the full evidence is in Git)\n"
    )


def forge_for(config: ForgeConfig, *, retry: Retry | None = None, timeout: float = 15.0) -> Forge:
    """The client of ``config.kind`` (the library is imported only then)."""
    if config.kind == "github":
        from rollouts.forge.github import GitHubForge

        return GitHubForge(config, retry=retry or Retry(), timeout=timeout)
    from rollouts.forge.gitlab import GitLabForge

    return GitLabForge(config, retry=retry or Retry(), timeout=timeout)
