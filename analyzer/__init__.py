"""Statistics and metric access for canary analysis.

Numbers in, verdicts with their evidence out: no Git, no Kubernetes, no Locust. The data flows
``prometheus`` (fetch) -> ``histogram`` (model) -> tests -> sequential evidence -> ``judge``.

The public names below are loaded on first use (PEP 562 ``__getattr__``), so that importing one
light module (``analyzer.policy``, which the Rollout spec embeds) never pays for numpy and scipy.
This module must never import a submodule at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_exports

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

# Public name -> the module that defines it. Written out rather than through a lazy-loading library:
# it is one mapping, and mypy reads the real imports above.
_EXPORTS = {
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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals)
