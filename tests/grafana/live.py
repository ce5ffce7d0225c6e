"""What the Grafana tests read from the live run (``conftest.live``): Prometheus, and what the
controller did."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rollouts.controller.machine import TickResult
from tests.grafana.promserver import Prometheus

TOTAL = 'istio_requests_total{reporter="destination", destination_workload_namespace="test"}'


@dataclass(frozen=True)
class Live:
    """What the tests read: Prometheus, and what the controller did."""

    prometheus: Prometheus
    ticks: list[TickResult]
    served: Counter[tuple[str, int]]  # (subset that answered, status) -> requests
    pipeline: TickResult  # the pipeline job's tick
