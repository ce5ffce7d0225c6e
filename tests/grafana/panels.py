"""Every PromQL expression of the committed dashboards, with where it comes from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana.queries import promql_of, render

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"

# What Grafana would substitute for the dashboard variables in the local stack's demo.
VARIABLES = {
    "namespace": "test",
    "service": "podinfo",
    "rollout": "test/podinfo",
    "metric": "request-rate",
    "pipeline": "test/podinfo",
    "datasource": "prometheus",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}


@dataclass(frozen=True)
class DashboardQuery:
    """One expression: a panel target, a variable query or an annotation."""

    dashboard: str
    where: str
    expr: str

    @property
    def promql(self) -> str:
        """The expression as Prometheus receives it from Grafana."""
        return render(promql_of(self.expr), VARIABLES)

    def __str__(self) -> str:
        return f"{self.dashboard}: {self.where}"


def load(name: str) -> dict[str, Any]:
    """The committed JSON of dashboard ``name``."""
    board: dict[str, Any] = json.loads((DASHBOARDS / f"{name}.json").read_text())
    return board


def dashboard_names() -> list[str]:
    """The committed dashboards, by file stem."""
    return sorted(p.stem for p in DASHBOARDS.glob("*.json"))


def dashboard_queries() -> list[DashboardQuery]:
    """Every expression of every committed dashboard."""
    found = []
    for name in dashboard_names():
        board = load(name)
        for panel in board.get("panels", []):
            for target in panel.get("targets", []):
                found.append(
                    DashboardQuery(name, f"panel {panel['title']!r} {target['refId']}", target["expr"])
                )
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                found.append(DashboardQuery(name, f"variable ${variable['name']}", variable["query"]))
        for annotation in board.get("annotations", {}).get("list", []):
            if annotation.get("expr"):
                found.append(DashboardQuery(name, f"annotation {annotation['name']!r}", annotation["expr"]))
    return found
