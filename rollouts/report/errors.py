"""What can go wrong making a report: the history cannot be read, the spec's metrics settings cannot
select GA and canary, or the report cannot be written. Prometheus being down is not an error: the
page says so."""

from __future__ import annotations


class HistoryError(ValueError):
    """The history cannot be read; the message names the repository, branch or file."""


class MetricsConfigError(ValueError):
    """The spec's metrics settings cannot select GA and canary; the message names the field."""


class ReportError(ValueError):
    """A report that cannot be made or written; the message names the option, path or problem."""
