"""Logging: plain text for people, or one JSON object per line (``--log-format json``) for machines.

Every decision of a state machine is one record with its rollout, action and reasons (see
:func:`decision`); the JSON formatter puts those fields at the top level of the line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from analyzer.redaction import redact

DECISION = "decision"  # the ``extra`` key carrying a decision's fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and a decision's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single-line JSON object."""
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, DECISION, None)
        if isinstance(fields, Mapping):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class RedactingFormatter(logging.Formatter):
    """Another formatter's line, redacted (:func:`analyzer.redaction.redact`): the last line of
    defence for every record of every library (apprise logs webhook URLs at DEBUG, GitPython logs
    command lines), tracebacks included."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's text with URL credentials and webhook secrets masked."""
        return redact(self.inner.format(record))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record (it may be replaced later)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


@contextmanager
def configured(fmt: str = "text", level: str = "INFO") -> Iterator[logging.Handler]:
    """:func:`configure` for the duration of a block; the previous root logging comes back after."""
    root = logging.getLogger()
    handlers, old_level = list(root.handlers), root.level
    handler = configure(fmt, level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for old in handlers:
            root.addHandler(old)
        root.setLevel(old_level)


def configure(fmt: str = "text", level: str = "INFO", stream: Any = None) -> logging.Handler:
    """Install one handler on the root logger: ``fmt`` is ``text`` or ``json``."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {fmt!r}")
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(
        RedactingFormatter(
            JsonFormatter()
            if fmt == "json"
            else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def decision(
    logger: logging.Logger,
    rollout: str,
    action: str,
    reasons: Sequence[str],
    *,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Log one decision of a rollout's state machine: one line, with its reasons."""
    because = "; ".join(reasons) if reasons else "no reason given"
    payload = {"rollout": rollout, "action": action, "reasons": list(reasons), **fields}
    logger.log(level, "%s: %s because %s", rollout, action, because, extra={DECISION: payload})
