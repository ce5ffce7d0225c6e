"""Statistics and metric access for canary analysis.

Numbers in, verdicts with their evidence out: no Git, no Kubernetes, no Locust. The data flows
``prometheus`` (fetch) -> ``histogram`` (model) -> tests -> sequential evidence -> ``judge``.
"""

# Names are imported on first use (PEP 562): ``import analyzer.redaction`` (the CLIs' start-up)
# must not pull in numpy and scipy.
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "CountEProcess": "analyzer.sequential",
    "CountWindow": "analyzer.sequential",
    "Histogram": "analyzer.histogram",
    "Judge": "analyzer.judge",
    "LatencyNonInferiorityResult": "analyzer.noninferiority",
    "MannWhitneyResult": "analyzer.mannwhitney",
    "OrderEProcess": "analyzer.sequential",
    "Policy": "analyzer.policy",
    "PolicyError": "analyzer.policy",
    "RateNonInferiorityResult": "analyzer.noninferiority",
    "SubsetWindow": "analyzer.judge",
    "TailNonInferiorityResult": "analyzer.noninferiority",
    "Verdict": "analyzer.judge",
    "Window": "analyzer.judge",
    "error_rate_noninferiority": "analyzer.noninferiority",
    "latency_noninferiority": "analyzer.noninferiority",
    "mann_whitney": "analyzer.mannwhitney",
    "rate_noninferiority": "analyzer.noninferiority",
    "tail_bound": "analyzer.noninferiority",
    "tail_noninferiority": "analyzer.noninferiority",
}

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
    "SubsetWindow",
    "TailNonInferiorityResult",
    "Verdict",
    "Window",
    "error_rate_noninferiority",
    "latency_noninferiority",
    "mann_whitney",
    "rate_noninferiority",
    "tail_bound",
    "tail_noninferiority",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'analyzer' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
