"""Plan validation: every bad input names the flag or value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loadtest.options import RunPlan, parse_duration, parse_header


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10), ("3m", 180), ("1h30m", 5400), ("500ms", 0.5), ("90", 90)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10x", "s", "1m10", "ten"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_headers_use_heys_syntax() -> None:
    assert parse_header("Accept: text/html") == ("Accept", "text/html")
    with pytest.raises(ValueError, match="could not parse"):
        parse_header("no colon here")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "ftp://x/"}, "invalid URL"),
        ({"url": "http://"}, "invalid URL"),
        ({"url": "http://h/", "rate": -5.0}, "--rate must be a positive"),
        ({"url": "http://h/", "requests": 10, "duration": 5.0}, "-n and -z conflict"),
        ({"url": "http://h/", "requests": 10, "concurrency": 50}, "-n cannot be less than -c"),
        ({"url": "http://h/", "concurrency": 0}, "-c cannot be smaller than 1"),
        ({"url": "http://h/", "method": "BREW"}, "method 'BREW'"),
        ({"url": "http://h/", "qps": 1.0, "rate": 5.0}, "-q .* conflict"),
    ],
)
def test_bad_plans_name_the_flag(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RunPlan.model_validate(fields)


def test_hey_defaults_and_split() -> None:
    plan = RunPlan(url="http://h/")
    assert (plan.requests, plan.concurrency, plan.timeout) == (200, 50, 20.0)
    assert plan.per_user_requests == 4
    assert RunPlan(url="http://h/", timeout=0).timeout is None


def test_a_bad_method_is_named() -> None:
    with pytest.raises(ValidationError, match=r"method 'BREW' is not one of GET, POST, PUT, DELETE"):
        RunPlan(url="http://h/", method="BREW")
    assert RunPlan(url="http://h/", method="patch").method == "PATCH"
