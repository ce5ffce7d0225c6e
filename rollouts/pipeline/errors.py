"""What can go wrong loading a pipeline: a Pipeline file, or one of its environments' Rollout specs,
that cannot be loaded. One exception type, so ``rollouts run`` and discovery can tell a bad pipeline
(one error line naming file and field, the others still run) from a failure of Git or the forge.
Nothing here reads a file or decides anything."""

from __future__ import annotations

from rollouts.spec import SpecError


class PipelineSpecError(SpecError):
    """A Pipeline spec that cannot be loaded; one line per problem, each naming file and field."""
