"""Drives load during analysis: a ``loadtest serve`` endpoint, a local ``loadtest serve`` subprocess,
or none (the service has real traffic).

A driver that cannot reach its endpoint raises ``LoadUnavailableError`` (the step holds, reported); one
whose job is refused raises ``LoadRejectedError`` (a configuration problem: the rollout pauses).
"""

from rollouts.load.base import LoadDriver, LoadRequest, LoadStats, NoLoad, ensure_running
from rollouts.load.errors import LoadError, LoadRejectedError, LoadUnavailableError
from rollouts.load.local import LocalLoad
from rollouts.load.serve import ServeLoad

__all__ = [
    "LoadDriver",
    "LoadError",
    "LoadRejectedError",
    "LoadRequest",
    "LoadStats",
    "LoadUnavailableError",
    "LocalLoad",
    "NoLoad",
    "ServeLoad",
    "ensure_running",
]
