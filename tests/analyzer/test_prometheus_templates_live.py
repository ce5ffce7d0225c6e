"""The ambient, sidecar-less, gRPC and 4xx templates against real Prometheus, on crafted series.

The series are written as OpenMetrics with timestamps, backfilled with ``promtool tsdb
create-blocks-from openmetrics`` into a fresh TSDB, and Prometheus is started on it: every count
a template reads back is known exactly (a steady rate sampled every 15 s over the whole window, so
``increase()`` needs no extrapolation guess).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.prometheus import (
    BUILTIN,
    MetricsReader,
    NoData,
    PrometheusClient,
    Subset,
    SubsetMetrics,
)
from tests.fixtures.backfill import backfilled_prometheus

pytestmark = pytest.mark.integration

WINDOW = 60.0
STEP = 15
#: The window ends here (aligned, an hour ago: inside the TSDB's retention, outside the head block).
END = (int(time.time()) // 3600 - 1) * 3600
GA = Subset("test", workload="podinfo-ga", service="podinfo", version="ga")
CANARY = Subset("test", workload="podinfo-canary", service="podinfo", version="canary")

#: (reporter, workload, version, response_code, grpc_response_status) -> requests per second.
RATES: dict[tuple[str, str, str, str, str], float] = {
    # ambient: the waypoint reports GA's L7 traffic
    ("waypoint", "podinfo-ga", "ga", "200", ""): 10.0,
    ("waypoint", "podinfo-ga", "ga", "503", ""): 1.0,
    ("waypoint", "podinfo-ga", "ga", "404", ""): 3.0,
    ("waypoint", "podinfo-ga", "ga", "200", "0"): 5.0,  # gRPC OK
    ("waypoint", "podinfo-ga", "ga", "200", "14"): 2.0,  # gRPC UNAVAILABLE on HTTP 200
    ("waypoint", "podinfo-ga", "ga", "503", "14"): 0.5,  # both: counted once
    # a decoy of another reporter for the same workload: never read by the waypoint templates
    ("destination", "podinfo-ga", "ga", "500", ""): 100.0,
    # the canary has no sidecar: only the client side reports it
    ("source", "podinfo-canary", "canary", "200", ""): 4.0,
    ("source", "podinfo-canary", "canary", "500", ""): 0.25,
    ("source", "podinfo-canary", "canary", "429", ""): 0.75,
}
BOUNDS_MS = ("5", "10", "50", "100", "+Inf")
SHARE = (0.2, 0.5, 0.9, 1.0, 1.0)  # cumulative share of requests under each bound


def _openmetrics() -> str:
    """Both families, each series' samples together and in time order (as OpenMetrics wants)."""
    times = range(END - 300, END + 1, STEP)
    counters, buckets = (
        ["# TYPE istio_requests counter"],
        ["# TYPE istio_request_duration_milliseconds histogram"],
    )
    for (reporter, workload, version, code, grpc), rate in RATES.items():
        labels = (
            f'reporter="{reporter}",destination_workload_namespace="test",destination_workload="{workload}",'
            f'destination_service_name="podinfo",destination_version="{version}",response_code="{code}",'
            f'grpc_response_status="{grpc}"'
        )
        counters += [f"istio_requests_total{{{labels}}} {rate * (t - END + 300)} {t}" for t in times]
        for bound, share in zip(BOUNDS_MS, SHARE, strict=True):
            buckets += [
                f'istio_request_duration_milliseconds_bucket{{{labels},le="{bound}"}} '
                f"{rate * share * (t - END + 300)} {t}"
                for t in times
            ]
    return "\n".join([*counters, *buckets, "# EOF"]) + "\n"


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsReader]:
    with backfilled_prometheus(Path(tmp_path_factory.mktemp("templates")), _openmetrics()) as url:
        yield MetricsReader(PrometheusClient(url))


def _read(reader: MetricsReader, template: str, subset: Subset) -> SubsetMetrics | NoData:
    return reader.read_window(BUILTIN[template], [subset], WINDOW, END)[subset]


def _rate(reporter: str, workload: str, keep: object) -> float:
    return sum(
        rate
        for (rep, wl, _, code, grpc), rate in RATES.items()
        if rep == reporter and wl == workload and keep(code, grpc)  # type: ignore[operator]
    )


def _5xx(code: str, grpc: str) -> bool:
    return code.startswith("5")


def _4xx(code: str, grpc: str) -> bool:
    return code[0] in "45"


def _grpc(http: object) -> object:
    return lambda code, grpc: http(code, grpc) or grpc not in ("", "0")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("template", "keep"),
    [
        ("istio-ambient", _5xx),
        ("istio-ambient-4xx", _4xx),
        ("istio-ambient-grpc", _grpc(_5xx)),
        ("istio-ambient-grpc-4xx", _grpc(_4xx)),
        ("istio-ambient-version-grpc", _grpc(_5xx)),
    ],
)
def test_ambient_templates_read_the_waypoints_series_and_count_their_errors(
    reader: MetricsReader, template: str, keep: object
) -> None:
    got = _read(reader, template, GA)
    assert isinstance(got, SubsetMetrics), got
    assert got.requests == pytest.approx(WINDOW * _rate("waypoint", "podinfo-ga", lambda c, g: True))
    assert got.errors == pytest.approx(WINDOW * _rate("waypoint", "podinfo-ga", keep))
    # the latency histogram is the waypoint's, in seconds
    assert got.histogram.total == pytest.approx(got.requests)
    assert got.histogram.bounds[:4] == (0.005, 0.01, 0.05, 0.1)


def test_the_sidecar_templates_see_none_of_that(reader: MetricsReader) -> None:
    """The default template reads only ``reporter="destination"`` (here: the decoy)."""
    got = _read(reader, "istio", GA)
    assert isinstance(got, SubsetMetrics)
    assert got.requests == pytest.approx(WINDOW * 100.0) and got.errors == pytest.approx(WINDOW * 100.0)


def test_a_destination_without_a_sidecar_is_read_from_the_source_side(reader: MetricsReader) -> None:
    assert isinstance(_read(reader, "istio", CANARY), NoData)  # no server-side series at all
    for template, keep in (
        ("istio-source", _5xx),
        ("istio-source-4xx", _4xx),
        ("istio-source-version", _5xx),
    ):
        got = _read(reader, template, CANARY)
        assert isinstance(got, SubsetMetrics), (template, got)
        assert got.requests == pytest.approx(WINDOW * 5.0)
        assert got.errors == pytest.approx(WINDOW * _rate("source", "podinfo-canary", keep)), template


def test_grpc_failures_on_http_200_count_once(reader: MetricsReader) -> None:
    plain = _read(reader, "istio-ambient", GA)
    grpc = _read(reader, "istio-ambient-grpc", GA)
    assert isinstance(plain, SubsetMetrics) and isinstance(grpc, SubsetMetrics)
    # 503 (1.0) and 503+UNAVAILABLE (0.5) were 5xx already; UNAVAILABLE on 200 (2.0) is added once
    assert grpc.errors - plain.errors == pytest.approx(WINDOW * 2.0)
