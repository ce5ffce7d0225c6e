"""What can go wrong on the single-machine stack: a child process that does not start, no Prometheus
binary, a podinfo option out of range, an HTTP message the mesh's forwarder cannot frame."""

from __future__ import annotations


class ProcessError(RuntimeError):
    """A child process failed to start or to become ready; the message names it and quotes its log."""


class PrometheusNotFoundError(FileNotFoundError):
    """No ``prometheus`` binary: not given, not in ``$PROMETHEUS_BINARY``, not on ``PATH``."""


class ConfigError(ValueError):
    """A podinfo option out of range; the message names the flag."""


class ProtocolError(Exception):
    """A message that cannot be framed (bad head, bad chunk)."""
