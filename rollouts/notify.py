"""Notifications: one message per rollout event (start, step, rollback, pause, finalize, ...) to every
configured target, through apprise (Slack, Teams, Discord, e-mail, webhooks, ... by URL)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import apprise

from analyzer.redaction import RedactingFilter, redact, url_secrets

log = logging.getLogger(__name__)
APPRISE_LOGGER = "apprise"  # the one logger apprise writes to


class NotifyConfigError(ValueError):
    """A notification target that apprise cannot use; the message names it (secrets redacted)."""


class Kind(StrEnum):
    """What happened to the rollout."""

    START = "start"
    STEP = "step"
    HOLD = "hold"
    ROLLBACK = "rollback"
    PAUSE = "pause"
    RESUME = "resume"
    FINALIZE = "finalize"
    OVERRIDE = "override"
    ERROR = "error"


_TYPES = {
    Kind.START: apprise.NotifyType.INFO,
    Kind.STEP: apprise.NotifyType.SUCCESS,
    Kind.HOLD: apprise.NotifyType.INFO,
    Kind.ROLLBACK: apprise.NotifyType.FAILURE,
    Kind.PAUSE: apprise.NotifyType.WARNING,
    Kind.RESUME: apprise.NotifyType.INFO,
    Kind.FINALIZE: apprise.NotifyType.SUCCESS,
    Kind.OVERRIDE: apprise.NotifyType.WARNING,
    Kind.ERROR: apprise.NotifyType.FAILURE,
}


@dataclass(frozen=True)
class Notice:
    """One rollout event, with the verdict's reasons and evidence to put into words."""

    rollout: str  # namespace/name
    kind: Kind
    summary: str  # one line: "canary 0.2.0 promoted to 60 %"
    reasons: tuple[str, ...] = ()
    evidence: Mapping[str, float] = field(default_factory=dict)
    revision: str = ""
    commit: str = ""

    @property
    def title(self) -> str:
        """The message title: rollout, event and canary revision."""
        revision = f" ({self.revision})" if self.revision else ""
        return f"[{self.rollout}] {self.kind.value}{revision}"

    @property
    def body(self) -> str:
        """The summary, the reasons as sentences, the evidence as figures, and the commit."""
        lines = [self.summary]
        lines += [f"- {reason}" for reason in self.reasons]
        if self.evidence:
            figures = ", ".join(f"{key} {_number(value)}" for key, value in sorted(self.evidence.items()))
            lines.append(f"Evidence: {figures}.")
        if self.commit:
            lines.append(f"Commit: {self.commit[:12]}")
        return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _redact(url: str) -> str:
    # Webhook URLs carry their secret in the path or query: name the service only.
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    shown = f"{scheme}://{host}/..." if rest else "(not a URL)"
    return redact(shown, url_secrets(url))


def read_url_files(paths: Iterable[str | Path]) -> list[str]:
    """Target URLs from files (one per line, ``#`` comments): secret webhooks stay out of the spec."""
    urls: list[str] = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise NotifyConfigError(f"notify url file {path}: {exc.strerror}") from exc
        urls += [
            line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
        ]
    return urls


class Notifier:
    """Sends every :class:`Notice` to all targets. Failures are logged and counted, never raised:
    a Slack outage must not stop a rollback."""

    def __init__(self, urls: Iterable[str] = ()) -> None:
        self._apprise = apprise.Apprise()
        self.targets = 0
        self.failures = 0
        urls = list(urls)
        # apprise logs its targets' URLs (the secret is their path) at DEBUG, and their transport
        # errors at WARNING: while it works for us, its records pass a filter that knows our secrets.
        self._filter = RedactingFilter(s for url in urls for s in url_secrets(url))
        with self._scrubbed():
            for url in urls:
                if not self._apprise.add(url):
                    raise NotifyConfigError(f"notify target {_redact(url)} is not a URL apprise supports")
                self.targets += 1

    @contextmanager
    def _scrubbed(self) -> Iterator[None]:
        """This notifier's secrets are masked in apprise's log records for the duration (apprise
        notifies synchronously: its worker threads are done when ``notify`` returns)."""
        logger = logging.getLogger(APPRISE_LOGGER)
        logger.addFilter(self._filter)
        try:
            yield
        finally:
            logger.removeFilter(self._filter)

    def send(self, notice: Notice) -> bool:
        """Deliver ``notice`` to every target; False (logged) when any delivery failed."""
        if self.targets == 0:
            return True
        with self._scrubbed():
            ok = bool(
                self._apprise.notify(body=notice.body, title=notice.title, notify_type=_TYPES[notice.kind])
            )
        if not ok:
            self.failures += 1
            log.warning("notification %r could not be delivered to every target", notice.title)
        return ok
