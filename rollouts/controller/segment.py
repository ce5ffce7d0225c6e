"""A window that says how its sides were read, and the verdict that repeats it.

An A/B rollout with ``analysis.segmentLabel`` compares the canary's matching requests with GA's
matching requests; when GA served none in a window, :mod:`rollouts.controller.source` reads all of
GA's requests instead. That must never be silent: the window carries a note, and :func:`noted` puts
it into the verdict's reasons (and ``ga_segment_fallback = 1`` into its evidence), which the
decision log, the step's commit message and the report show. Pure; it must never read metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer import Verdict, Window


@dataclass(frozen=True)
class NotedWindow(Window):
    """A :class:`Window` with a note on how its sides were read (e.g. GA's segment fallback)."""

    note: str = field(default="")


def noted(verdict: Verdict, window: Window) -> Verdict:
    """``verdict`` with ``window``'s note (if any) added to its reasons and evidence."""
    if not isinstance(window, NotedWindow) or not window.note:
        return verdict
    return Verdict(
        action=verdict.action,
        reasons=[*verdict.reasons, window.note],
        evidence={**verdict.evidence, "ga_segment_fallback": 1.0},
    )


__all__ = ["NotedWindow", "noted"]
