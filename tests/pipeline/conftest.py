"""The pipeline tests' fixtures (defined in :mod:`tests.pipeline.world` beside its helpers)."""

from tests.pipeline.world import _git_isolated, world

__all__ = ["_git_isolated", "world"]
