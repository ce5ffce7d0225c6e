"""Statistics and metric access for canary analysis.

Numbers in, verdicts with their evidence out: no Git, no Kubernetes, no Locust. The data flows
``prometheus`` (fetch) -> ``histogram`` (model) -> tests -> sequential evidence -> ``judge``.
"""

from analyzer.histogram import Histogram

__all__ = ["Histogram"]
