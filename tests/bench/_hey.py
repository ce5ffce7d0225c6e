"""Drive load with ``hey`` (the load tool of the guide) and parse its summary."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class HeyResult:
    """hey's summary: throughput and latency percentiles in seconds."""

    rps: float
    p50: float
    p99: float
    responses: int


def hey(url: str, *, seconds: float, concurrency: int, rate_per_worker: float | None = None) -> HeyResult:
    """Run hey against ``url``; ``RuntimeError`` when hey is missing or reports nothing."""
    binary = shutil.which("hey")
    if binary is None:
        raise RuntimeError("hey not found on PATH (apt-get install hey)")
    argv = [binary, "-z", f"{seconds}s", "-c", str(concurrency)]
    if rate_per_worker is not None:
        argv += ["-q", f"{rate_per_worker:g}"]
    prefix = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    out = subprocess.run(
        [*prefix, *argv, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50% in ([\d.]+) secs", out)
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    responses = sum(int(n) for n in re.findall(r"\[\d{3}\]\s+(\d+) responses", out))
    if not (rps and p50 and p99):
        raise RuntimeError(f"cannot parse hey's output:\n{out}")
    return HeyResult(float(rps.group(1)), float(p50.group(1)), float(p99.group(1)), responses)
