"""Quoting label values into PromQL, so that no name can change the shape of a query.

Two layers: a value inside a double-quoted PromQL string (Go's escaping rules), and, for ``=~``
matchers, a literal inside an RE2 regular expression, which Prometheus anchors at both ends.
Python's ``re.escape`` is not used: it escapes characters (space, ``#``, ``&``, ``~``) that are not
special in RE2 and whose escaped forms RE2 does not promise to accept.
"""

from __future__ import annotations

from collections.abc import Iterable

# Go's interpreted string literal escapes; every other control character becomes \xHH.
_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: RE2's metacharacters outside a character class.
RE2_META = frozenset("\\.+*?()|[]{}^$")


def promql_string(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal."""
    out = ['"']
    for char in value:
        escaped = _STRING_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        elif 0xD800 <= ord(char) <= 0xDFFF:
            raise ValueError(f"label value {value!r} holds a lone surrogate and cannot be sent to Prometheus")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def regex_literal(value: str) -> str:
    """An RE2 pattern that matches exactly ``value`` (Prometheus anchors ``=~`` patterns)."""
    return "".join("\\" + char if char in RE2_META else char for char in value)


def regex_alternation(values: Iterable[str]) -> str:
    """An RE2 pattern matching exactly one of ``values``; sorted, so equal sets give equal queries."""
    unique = sorted(set(values))
    if not unique:
        raise ValueError("a regex alternation needs at least one value")
    return "|".join(regex_literal(v) for v in unique)


def label_matcher(label: str, values: Iterable[str]) -> str:
    """``label="v"`` for one value, ``label=~"v1|v2"`` for several; values are escaped."""
    unique = sorted(set(values))
    if len(unique) == 1:
        return f"{label}={promql_string(unique[0])}"
    return f"{label}=~{promql_string(regex_alternation(unique))}"
