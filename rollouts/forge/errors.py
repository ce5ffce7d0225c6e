"""What can go wrong talking to a forge: one hierarchy, named for what failed.

::

    ForgeError                  a forge call that failed for good (refused, not found, bad answer)
    ├── ForgeUnavailableError   the forge kept failing transiently through every retry
    ├── AlreadyExistsError      a create refused because a request for the branch exists (the race)
    └── TransientError          one transient failure (connection, timeout, 5xx, 429, rate limit)

Messages name the forge, the repository and the branch; never the token.
"""

from __future__ import annotations


class ForgeError(RuntimeError):
    """A forge call that failed for good (refused, not found, bad answer); names forge, repo, branch."""


class ForgeUnavailableError(ForgeError):
    """The forge kept failing transiently (down, 5xx, rate-limited) through every retry."""


class AlreadyExistsError(ForgeError):
    """The forge refused a create because a request for the branch exists (the race's loser)."""


class TransientError(ForgeError):
    """One transient failure, worth another attempt."""
