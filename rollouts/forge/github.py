"""GitHub pull requests through PyGithub (REST for pulls, GraphQL for auto-merge, as GitHub offers it).

PyGithub's own retries are off (``retry=None``): :class:`rollouts.forge.base.Retry` is the one
policy for every forge. Transient: connection errors, 5xx, 429, and 403 with a rate-limit message
(GitHub's primary and secondary limits answer 403). 422 "A pull request already exists" is the
race's loser. The token goes in PyGithub's ``Auth.Token`` and nowhere else.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException
from github.PullRequest import PullRequest

from rollouts.forge.base import (
    ForgeConfig,
    Retry,
    Review,
    ReviewState,
    body_text,
    choose,
    find_or_create,
    open_only,
)
from rollouts.forge.errors import AlreadyExistsError, ForgeError, TransientError

T = TypeVar("T")
DEFAULT_URL = "https://api.github.com"


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    parts = [str(data.get("message") or "")]
    for error in data.get("errors") or []:
        if isinstance(error, dict) and error.get("message"):
            parts.append(str(error["message"]))
    return "; ".join(p for p in parts if p) or f"HTTP {exc.status}"


class GitHubForge:
    """Pull requests of one repository (``owner/name``)."""

    kind = "github"

    def __init__(self, config: ForgeConfig, *, retry: Retry, timeout: float = 15.0) -> None:
        self.config = config
        self.retry = retry
        self._github = Github(
            auth=Auth.Token(config.token),
            base_url=config.url or DEFAULT_URL,
            timeout=int(max(timeout, 1)),
            retry=None,
        )
        self._repo: Any = None
        self.owner = config.repository.split("/", 1)[0]

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One API call with GitHub's failures sorted into transient, already-exists and final."""
        where = f"GitHub {self.config.repository}: {what}"
        try:
            return fn()
        except GithubException as exc:
            message = _message(exc)
            if exc.status in (429, 500, 502, 503, 504) or (
                exc.status == 403 and "rate limit" in message.lower()
            ):
                raise TransientError(f"{where}: HTTP {exc.status} {message}") from None
            if exc.status == 422 and "already exists" in message:
                raise AlreadyExistsError(f"{where}: {message}") from None
            raise ForgeError(f"{where}: HTTP {exc.status} {message}") from None
        except requests.RequestException as exc:
            raise TransientError(f"{where}: {type(exc).__name__}") from None

    def _repository(self) -> Any:
        if self._repo is None:
            self._repo = self._call(
                "read the repository", lambda: self._github.get_repo(self.config.repository)
            )
        return self._repo

    @staticmethod
    def _review(pull: PullRequest) -> Review:
        state: ReviewState = "merged" if pull.merged else ("open" if pull.state == "open" else "closed")
        return Review(
            number=pull.number,
            url=pull.html_url,
            state=state,
            branch=pull.head.ref,
            base=pull.base.ref,
            title=pull.title,
        )

    def find(self, branch: str) -> Review | None:
        """Open first, else the newest; retried."""
        return self.retry.call(f"GitHub {self.config.repository}: find {branch}", lambda: self._find(branch))

    def _find(self, branch: str) -> Review | None:
        """Open first, else the newest (GitHub lists newest first)."""

        def listed() -> list[Review]:
            pulls = self._repository().get_pulls(state="all", head=f"{self.owner}:{branch}")
            return [self._review(p) for p in itertools.islice(pulls, 20)]

        reviews = self._call(f"list pulls of {branch}", listed)
        return choose(reviews, branch)

    def open(self, branch: str, base: str, title: str, body: str) -> Review:
        def create() -> Review:
            pull = self._call(
                f"open a pull request from {branch}",
                lambda: self._repository().create_pull(
                    base=base, head=branch, title=title, body=body_text(body)
                ),
            )
            return self._review(pull)

        def find() -> Review | None:
            return open_only(self._find(branch))

        return find_or_create(
            f"GitHub {self.config.repository}: pull request for {branch}", self.retry, find, create
        )

    def get(self, number: int) -> Review:
        return self.retry.call(
            f"GitHub {self.config.repository}: #{number}",
            lambda: self._review(self._call(f"read #{number}", lambda: self._repository().get_pull(number))),
        )

    def enable_auto_merge(self, review: Review) -> None:
        method = self.config.merge_method.upper()

        def enable() -> None:
            pull = self._repository().get_pull(review.number)
            pull.enable_automerge(merge_method=method)

        self.retry.call(
            f"GitHub {self.config.repository}: auto-merge #{review.number}",
            lambda: self._call(f"enable auto-merge on #{review.number}", enable),
        )

    def close(self, review: Review, comment: str) -> None:
        def close() -> None:
            pull = self._repository().get_pull(review.number)
            if pull.state != "open":
                return  # merged or closed meanwhile: nothing to close
            pull.create_issue_comment(body_text(comment))
            pull.edit(state="closed")

        self.retry.call(
            f"GitHub {self.config.repository}: close #{review.number}",
            lambda: self._call(f"close #{review.number}", close),
        )
