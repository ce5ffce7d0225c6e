"""An open-loop load generator: requests start at evenly spaced times, whatever the answers do.

hey's ``-q`` rate limit starts all workers' tickers together, so at 500 req/s with 10 workers the
server sees bursts of 10 simultaneous requests every 20 ms and the median measures the queue of a
burst, not the latency at a steady 500 req/s. Here request ``i`` starts at ``i / rate``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class OpenLoopResult:
    """Achieved rate and latency percentiles (seconds) of the successful requests."""

    rps: float
    p50: float
    p99: float
    errors: int


async def _run(url: str, rate: float, seconds: float) -> OpenLoopResult:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal errors
            begin = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
                    if response.status >= 500:
                        errors += 1
                        return
            except aiohttp.ClientError:
                errors += 1
                return
            latencies.append(time.perf_counter() - begin)

        total = int(rate * seconds)
        tasks = []
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    latencies.sort()
    return OpenLoopResult(
        rps=len(latencies) / elapsed,
        p50=statistics.median(latencies),
        p99=latencies[int(0.99 * (len(latencies) - 1))],
        errors=errors,
    )


def open_loop(url: str, *, rate: float, seconds: float) -> OpenLoopResult:
    """GET ``url`` at ``rate`` requests/s, evenly spaced, for ``seconds``."""
    return asyncio.run(_run(url, rate, seconds))
