"""Pipelines: a revision that passes one environment's canary analysis becomes the next one's canary.

``spec`` validates the Pipeline document, ``plan`` decides (pure) what each transition should do now,
and the shell reads the facts out of Git and writes the hand-over commits. Each environment stays an
ordinary Rollout; a pipeline only adds the hand-over between them, so the whole path of a release reads
in ``git log``.
"""

from rollouts.pipeline.errors import PipelineSpecError
from rollouts.pipeline.plan import (
    EnvironmentFacts,
    Event,
    LineStop,
    MergeFacts,
    OutOfOrder,
    Pin,
    PipelinePlan,
    Transition,
    TransitionState,
    plan,
)
from rollouts.pipeline.spec import (
    Environment,
    Pipeline,
    Promotion,
    TimeWindow,
    parse_pipeline,
)

__all__ = [
    "Environment",
    "EnvironmentFacts",
    "Event",
    "LineStop",
    "MergeFacts",
    "OutOfOrder",
    "Pin",
    "Pipeline",
    "PipelinePlan",
    "PipelineSpecError",
    "Promotion",
    "TimeWindow",
    "Transition",
    "TransitionState",
    "parse_pipeline",
    "plan",
]
