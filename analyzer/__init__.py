"""Statistics and metric access for canary analysis.

Numbers in, verdicts with their evidence out: no Git, no Kubernetes, no Locust. The data flows
``prometheus`` (fetch) -> ``histogram`` (model) -> tests -> sequential evidence -> ``judge``.
"""

from analyzer.histogram import Histogram
from analyzer.judge import Judge, SubsetWindow, Verdict, Window
from analyzer.mannwhitney import MannWhitneyResult, mann_whitney
from analyzer.noninferiority import (
    LatencyNonInferiorityResult,
    RateNonInferiorityResult,
    TailNonInferiorityResult,
    error_rate_noninferiority,
    latency_noninferiority,
    rate_noninferiority,
    tail_bound,
    tail_noninferiority,
)
from analyzer.policy import Policy, PolicyError
from analyzer.sequential import CountEProcess, CountWindow, OrderEProcess
from analyzer.variation import SubsetVariation, scale_sensitivity

__all__ = [
    "CountEProcess",
    "CountWindow",
    "Histogram",
    "Judge",
    "LatencyNonInferiorityResult",
    "MannWhitneyResult",
    "OrderEProcess",
    "Policy",
    "PolicyError",
    "RateNonInferiorityResult",
    "SubsetVariation",
    "SubsetWindow",
    "TailNonInferiorityResult",
    "Verdict",
    "Window",
    "error_rate_noninferiority",
    "latency_noninferiority",
    "mann_whitney",
    "rate_noninferiority",
    "scale_sensitivity",
    "tail_bound",
    "tail_noninferiority",
]
