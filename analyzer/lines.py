"""The input lines of ``analyzer judge``: one JSON object per line, validated by pydantic models.

A line is untrusted: it may be anything a pipe can carry. Parsing is bounded (at most
:data:`MAX_LINE_CHARS` characters, JSON nesting past the interpreter's limit is an error, not a
crash), numbers are exact (an integer beyond 2**53 is refused instead of being rounded to a float),
and every error names the field (``canary.buckets[4]``) without echoing more than a short scalar of
the input. :func:`parse_window` turns a line into a :class:`~analyzer.judge.Window`; the statistics
(:class:`~analyzer.histogram.Histogram`, :class:`~analyzer.judge.SubsetWindow`) keep their own checks,
whose messages are renamed to the line's field names; they are imported when the first window is
built, so that validating lines (and ``analyzer --help``) needs only pydantic.

This module never judges and never writes output; ``analyzer.cli`` does.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from analyzer.judge import SubsetWindow, Window

__all__ = ["MAX_EXACT_INTEGER", "MAX_LINE_CHARS", "InputError", "SubsetLine", "WindowLine", "parse_window"]

#: Longest input line (characters). A window of two histograms with a few hundred buckets each is a
#: few tens of kilobytes; anything near this is not a window.
MAX_LINE_CHARS = 1 << 20
#: Integers beyond this lose digits as floats (IEEE 754 doubles are exact up to 2**53).
MAX_EXACT_INTEGER = 2**53
#: Problems named per line; the rest are counted (a list of a million bad numbers is one answer).
MAX_ERRORS = 5
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_SUBSET_KEYS = "le, buckets, requests, errors"


class InputError(ValueError):
    """A malformed input line; the message names the field. ``rollout`` is the line's rollout id
    when it had a usable one (so that the answer still names it)."""

    def __init__(self, message: str, rollout: str | None = None) -> None:
        super().__init__(message)
        self.rollout = rollout


def _exact(value: int) -> int:
    if abs(value) > MAX_EXACT_INTEGER:
        raise ValueError(f"is too large: {_short(value)} > 2**53 (it would be rounded as a float)")
    return value


def _number(value: Any) -> Any:
    """A JSON number, or a string of one as Prometheus writes them (``"+Inf"``, ``"0.25"``)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {json.dumps(value)}")
    if isinstance(value, int):
        return _exact(value)
    if isinstance(value, str):
        if _INTEGER.match(value):
            try:
                number = int(value)
            except ValueError:  # past Python's digit limit for int(str): far beyond 2**53
                digits = len(value.strip().lstrip("+-"))
                raise ValueError(f"is too large: an integer of {digits} digits > 2**53") from None
            return float(_exact(number))
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"is not a number: {_short(value)}") from None
    return value  # floats pass; anything else fails pydantic's float check


Number = Annotated[float, BeforeValidator(_number)]


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SubsetLine(_Line):
    """One subset (GA or canary) of a window: a cumulative histogram and the window's counts."""

    le: list[Number] = Field(description="Bucket bounds (seconds), ascending, the last one +Inf.")
    buckets: list[Number] = Field(description="Cumulative counts of this window, one per bound.")
    requests: Number = Field(description="All requests of the window.")
    errors: Number = Field(description="Failed requests of the window.")

    def subset(self, side: str) -> SubsetWindow:
        """The statistics' view of this subset; ``InputError`` naming ``side`` and the field."""
        from analyzer.histogram import Histogram
        from analyzer.judge import SubsetWindow

        try:
            histogram = Histogram.from_cumulative(self.le, self.buckets)
        except ValueError as exc:
            raise InputError(_histogram_error(str(exc), side)) from None
        try:
            return SubsetWindow(histogram, self.requests, self.errors)
        except ValueError as exc:
            raise InputError(f"{side}.{exc}") from None


class WindowLine(_Line):
    """One input line: an analysis window of one rollout."""

    rollout: str = Field(min_length=1, description="The rollout's id; evidence accumulates per id.")
    weight: Number = Field(description="The canary weight (0-100) during the window.")
    baseline: SubsetLine = Field(description="GA over the window.")
    canary: SubsetLine = Field(description="The canary over the same window.")

    def window(self) -> Window:
        """The statistics' view of this line; ``InputError`` naming the field."""
        from analyzer.judge import Window

        baseline = self.baseline.subset("baseline")
        canary = self.canary.subset("canary")
        if baseline.histogram.bounds != canary.histogram.bounds:
            raise InputError("canary.le differs from baseline.le: both subsets need the same bucket bounds")
        try:
            return Window(baseline=baseline, canary=canary, weight=self.weight)
        except ValueError as exc:
            raise InputError(str(exc)) from None


def _short(value: Any) -> str:
    """A scalar of the input for an error message, cut short; containers only by kind."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        try:
            return f"an integer of {len(str(abs(value)))} digits"
        except ValueError:  # past Python's digit limit for str(int)
            return f"an integer of about {round(value.bit_length() * math.log10(2))} digits"
    text = json.dumps(value) if isinstance(value, str | float | bool) or value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("function-"):
            continue  # validator names pydantic inserts
        else:
            out += ("." if out else "") + part
    return out


def _describe(error: Any) -> str:
    """One pydantic error in this command's words (``canary.le is missing``)."""
    loc = tuple(error["loc"])
    path = _path(loc)
    kind = error["type"]
    if loc[:1] == ("rollout",):
        return "rollout must be a non-empty string"
    if kind == "extra_forbidden":
        parent = _path(loc[:-1])
        return f"{parent + ': ' if parent else ''}unknown key {str(loc[-1])!r}"
    if kind == "missing":
        return f"{path} is missing"
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"{path} must be an object with {_SUBSET_KEYS}"
    if kind == "list_type":
        return f"{path} must be a list"
    if kind == "value_error":
        return f"{path} {error['ctx']['error']}"
    if kind.startswith("float"):
        return f"{path} must be a number, got {_short(error['input'])}"
    return f"{path}: {error['msg']}"


def _histogram_error(message: str, side: str) -> str:
    """Histogram messages speak of bounds/counts; the input calls them le/buckets."""
    renamed = message.replace("counts", "buckets").replace("bounds", "le")
    if message.startswith(("counts", "bounds")):
        return f"{side}.{renamed}"
    return f"{side}.{'le' if 'bound' in message else 'buckets'}: {message}"


def _rollout_of(data: dict[str, Any]) -> str | None:
    rollout = data.get("rollout")
    return rollout if isinstance(rollout, str) and rollout else None


def parse_window(line: str) -> tuple[str, Window]:
    """Parse one input line into (rollout id, Window); raises :class:`InputError` naming the field."""
    if len(line) - line.endswith("\n") > MAX_LINE_CHARS:
        raise InputError(f"line longer than {MAX_LINE_CHARS} characters")
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:  # the C decoder stops cleanly at the interpreter's recursion limit
        raise InputError("not valid JSON here: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal past Python's digit limit
        raise InputError(f"not valid JSON here: {str(exc)[:80]}") from None
    if not isinstance(data, dict):
        raise InputError("each line must be a JSON object")
    rollout = _rollout_of(data)
    try:
        parsed = WindowLine.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors()[: MAX_ERRORS + 1]]
        more = exc.error_count() - MAX_ERRORS
        text = "; ".join(problems[:MAX_ERRORS]) + (f"; and {more} more" if more > 0 else "")
        raise InputError(text, rollout) from None
    except RecursionError:  # pragma: no cover - json.loads refuses such depth first
        raise InputError("nested too deeply", rollout) from None
    try:
        return parsed.rollout, parsed.window()
    except InputError as exc:
        raise InputError(str(exc), parsed.rollout) from None


def bounded_lines(stream: IO[str], limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of ``stream``, each read with at most ``limit + 1`` characters kept in memory: an
    overlong line is yielded cut at ``limit + 1`` (so :func:`parse_window` refuses it) and the rest
    of it is skipped."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith("\n"):
            rest = line
            while rest and not rest.endswith("\n"):  # skip to the end of this line, in bounded reads
                rest = stream.readline(limit)
        yield line
