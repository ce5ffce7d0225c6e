"""What can go wrong when driving load: the endpoint is down (the step holds), or it refused the job
(a person fixes the configuration; the rollout pauses)."""

from __future__ import annotations


class LoadError(RuntimeError):
    """Base of load-driver errors."""


class LoadUnavailableError(LoadError):
    """The load endpoint is down or unreachable (or answered 5xx): the step holds and it is reported."""


class LoadRejectedError(LoadError):
    """The endpoint refused the job (bad token, target outside its allowlist, malformed, too many jobs):
    a configuration problem a person has to fix, so the rollout pauses."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
