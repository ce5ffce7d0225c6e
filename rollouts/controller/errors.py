"""What can go wrong in the controller itself: a window's metrics that cannot be read (asked again
next tick), a window without usable data (passed over), or a controller that cannot be set up as
asked. Git's, the load's and the cluster's errors are their packages' own."""

from __future__ import annotations


class MetricsUnavailableError(RuntimeError):
    """The metrics of a window could not be read (Prometheus down, query error): the same window is
    asked for again on the next tick, since Prometheus keeps it."""


class NoDataError(MetricsUnavailableError):
    """Prometheus answered, but has no usable data for the window: asking again will not help, so
    the window is passed over (and counted towards ``analysis.threshold``)."""


class SetupError(RuntimeError):
    """The controller cannot be set up as asked: a flag, or a rollout's own settings (its load token
    file); the message names the flag, rollout or file."""
