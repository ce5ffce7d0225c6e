"""The one base of every spec model (Rollout, its controller and strategy sections, Pipeline).

Why one: the rules are the spec's promise to its users and must not drift between sections. Unknown
keys are errors (a typo is never a silently ignored setting), values are strict (``"10"`` is not a
weight), models are immutable, and fields are read by their YAML alias or their Python name.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SpecModel(BaseModel):
    """Base of the spec models: ``extra="forbid"``, ``strict``, ``frozen``, ``populate_by_name``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)
