"""GitLab merge requests through python-gitlab.

python-gitlab's retries of 5xx are off: :class:`rollouts.forge.base.Retry` retries connection errors
and 5xx. Its handling of 429 stays on (it waits ``Retry-After``, at most 10 times); a 429 that
still comes through is transient for us too. 409 "Another open merge request already exists" is the race's
loser. Auto-merge is "merge when the pipeline succeeds" (``PUT .../merge``). The token goes in
``private_token`` and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import gitlab
import requests
from gitlab.exceptions import GitlabError

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
DEFAULT_URL = "https://gitlab.com"
_STATES: dict[str, ReviewState] = {"opened": "open", "merged": "merged", "closed": "closed", "locked": "open"}


class GitLabForge:
    """Merge requests of one project (``group/project``)."""

    kind = "gitlab"

    def __init__(self, config: ForgeConfig, *, retry: Retry, timeout: float = 15.0) -> None:
        self.config = config
        self.retry = retry
        self._gitlab = gitlab.Gitlab(
            config.url or DEFAULT_URL,
            private_token=config.token,
            timeout=timeout,
            retry_transient_errors=False,
        )
        self._project: Any = None

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        where = f"GitLab {self.config.repository}: {what}"
        try:
            return fn()
        except GitlabError as exc:
            code = exc.response_code or 0
            message = str(exc.error_message)
            if code == 429 or code >= 500:
                raise TransientError(f"{where}: HTTP {code} {message}") from None
            if code == 409 and "already exists" in message:
                raise AlreadyExistsError(f"{where}: {message}") from None
            raise ForgeError(f"{where}: HTTP {code} {message}") from None
        except requests.RequestException as exc:
            raise TransientError(f"{where}: {type(exc).__name__}") from None

    def _projects(self) -> Any:
        if self._project is None:
            self._project = self._gitlab.projects.get(self.config.repository, lazy=True)
        return self._project

    @staticmethod
    def _review(mr: Any) -> Review:
        return Review(
            number=int(mr.iid),
            url=str(mr.web_url),
            state=_STATES.get(str(mr.state), "closed"),
            branch=str(mr.source_branch),
            base=str(mr.target_branch),
            title=str(mr.title),
        )

    def find(self, branch: str) -> Review | None:
        """Open first, else the newest; retried."""
        return self.retry.call(f"GitLab {self.config.repository}: find {branch}", lambda: self._find(branch))

    def _find(self, branch: str) -> Review | None:
        def listed() -> list[Review]:
            found = self._projects().mergerequests.list(
                source_branch=branch, state="all", order_by="created_at", per_page=20, get_all=False
            )
            return [self._review(mr) for mr in found]

        reviews = self._call(f"list merge requests of {branch}", listed)
        return choose(reviews, branch)

    def open(self, branch: str, base: str, title: str, body: str) -> Review:
        def create() -> Review:
            data = {
                "source_branch": branch,
                "target_branch": base,
                "title": title,
                "description": body_text(body),
            }
            return self._review(
                self._call(
                    f"open a merge request from {branch}", lambda: self._projects().mergerequests.create(data)
                )
            )

        def find() -> Review | None:
            return open_only(self._find(branch))

        return find_or_create(
            f"GitLab {self.config.repository}: merge request for {branch}", self.retry, find, create
        )

    def get(self, number: int) -> Review:
        return self.retry.call(
            f"GitLab {self.config.repository}: !{number}",
            lambda: self._review(
                self._call(f"read !{number}", lambda: self._projects().mergerequests.get(number))
            ),
        )

    def enable_auto_merge(self, review: Review) -> None:
        def enable() -> None:
            mr = self._projects().mergerequests.get(review.number, lazy=True)
            mr.merge(merge_when_pipeline_succeeds=True)

        self.retry.call(
            f"GitLab {self.config.repository}: auto-merge !{review.number}",
            lambda: self._call(f"merge !{review.number} when the pipeline succeeds", enable),
        )

    def close(self, review: Review, comment: str) -> None:
        def close() -> None:
            mr = self._projects().mergerequests.get(review.number)
            if str(mr.state) != "opened":
                return  # merged or closed meanwhile: nothing to close
            mr.notes.create({"body": body_text(comment)})
            mr.state_event = "close"
            mr.save()

        self.retry.call(
            f"GitLab {self.config.repository}: close !{review.number}",
            lambda: self._call(f"close !{review.number}", close),
        )
