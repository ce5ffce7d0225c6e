"""GA and canary of the local-stack tests: podinfo options with disjoint latencies."""

from __future__ import annotations

from rollouts.local.stack import ServiceOptions

# Delays that put GA and canary in known, disjoint buckets of both bucket layouts:
# GA 11-19 ms -> Istio le=25 ms, podinfo le=0.025 s; canary 30-44 ms -> le=50 ms, le=0.05 s.
GA = ServiceOptions(
    version="6.5.0",
    args=("--random-delay", "--random-delay-unit=ms", "--random-delay-min=11", "--random-delay-max=20"),
)
CANARY = ServiceOptions(
    version="6.5.1",
    args=("--random-delay", "--random-delay-unit=ms", "--random-delay-min=30", "--random-delay-max=45"),
)
