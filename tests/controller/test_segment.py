"""The verdict repeats how a window's sides were read (GA's segment fallback), never silently."""

from __future__ import annotations

from analyzer import Histogram, SubsetWindow, Verdict, Window
from rollouts.controller.segment import NotedWindow, noted


def side(requests: float) -> SubsetWindow:
    return SubsetWindow(
        histogram=Histogram.from_cumulative([0.1, float("inf")], [requests, requests]),
        requests=requests,
        errors=0.0,
    )


def test_a_noted_window_puts_its_note_into_the_reasons_and_the_evidence():
    verdict = Verdict(action="hold", reasons=["too few requests"], evidence={"windows": 1.0})
    plain = Window(baseline=side(10), canary=side(5), weight=0)
    assert noted(verdict, plain) is verdict
    assert noted(verdict, NotedWindow(baseline=side(10), canary=side(5), weight=0)) is verdict  # no note
    window = NotedWindow(baseline=side(10), canary=side(5), weight=0, note="GA served no request")
    out = noted(verdict, window)
    assert out.action == "hold" and out.reasons == ["too few requests", "GA served no request"]
    assert out.evidence == {"windows": 1.0, "ga_segment_fallback": 1.0}
    assert verdict.reasons == ["too few requests"]  # the judge's verdict itself is unchanged
