"""The interface every traffic API implements.

Editors work on text, not on files or clusters: the Git workspace reads a file, asks the editor for
the new text and writes it back; the local mesh reads the file from Git and asks only for weights.
That keeps every editor a pure function that is easy to test byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rollouts.routes.strategies import Match, RouteTable, SessionAffinity

from rollouts.routes.errors import RouteError


@dataclass(frozen=True)
class Weights:
    """Traffic split between the stable (GA) and the canary destination, in percent."""

    stable: int
    canary: int

    def __post_init__(self) -> None:
        for name, value in (("stable", self.stable), ("canary", self.canary)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise RouteError(f"weight of {name} must be an integer 0-100, got {value!r}")
        if self.stable + self.canary != 100:
            raise RouteError(f"weights must sum to 100, got stable={self.stable} canary={self.canary}")

    @classmethod
    def for_canary(cls, canary: int) -> Weights:
        """The split that sends ``canary`` percent to the canary and the rest to stable."""
        return cls(stable=100 - canary, canary=canary)


class RouteEditor(Protocol):
    """Reads and writes the stable/canary weights of one route in one file's text, and the blocks
    of the strategies (A/B match route, mirror, session affinity) around it.

    ``write`` changes only the weight scalars (and, where the canary destination is missing, adds
    it with the smallest possible change); everything else stays byte for byte.
    """

    kind: str

    def read(self, text: str) -> Weights:
        """The weights in ``text``; ``RouteError`` naming file, route and subset when unreadable."""
        ...

    def write(self, text: str, weights: Weights) -> str:
        """``text`` with the weights replaced."""
        ...

    def set_match(self, text: str, match: Match | None) -> str:
        """``text`` with the A/B match route to the canary (None: removed); a route of ours only."""
        ...

    def set_mirror(self, text: str, percent: float | None) -> str:
        """``text`` with the default route mirroring ``percent`` to the canary (None: removed)."""
        ...

    def set_affinity(self, text: str, affinity: SessionAffinity | None) -> str:
        """``text`` with session affinity for the canary (None: removed)."""
        ...

    def table(self, text: str) -> RouteTable:
        """Every route of the file that leads to stable or canary, in the order they apply."""
        ...


# The errors are defined in errors.py and raised here: importable from here too.
__all__ = ["RouteEditor", "RouteError", "Weights"]
