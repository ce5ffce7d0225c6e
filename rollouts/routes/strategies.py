"""What a route says about who gets the canary, beyond weights: request matches, a mirror, session
affinity; and the routing table an editor reads from a file (for the local mesh).

These are plain values: the spec turns ``analysis.match``, ``mirror`` and ``sessionAffinity`` into
them, the route editors write them into a VirtualService or an HTTPRoute as the smallest edit, and
read them back as a :class:`RouteTable` that the local mesh serves. This module must never know
about files, YAML or Git.

The vocabulary is Istio's (``exact``, ``prefix``, ``regex``), which Flagger's ``analysis.match``
uses too; the Gateway API editor translates it (``Exact``, ``RegularExpression``; a prefix becomes
a regular expression, as Gateway API has no prefix match for headers).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

from rollouts.routes.base import RouteError, Weights

MatchKind = Literal["exact", "prefix", "regex"]
MATCH_KINDS: tuple[MatchKind, ...] = ("exact", "prefix", "regex")
#: Longest value of a match condition; Istio and Gateway API cap theirs (Gateway API: 4096).
MAX_VALUE = 4096
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$")  # an RFC 9110 token
_QUERY_NAME = re.compile(r"^[A-Za-z0-9._~!$'()*+,;:@/?-]{1,256}$")
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")


@dataclass(frozen=True)
class StringMatch:
    """One condition on a string: ``exact``, ``prefix`` or ``regex`` (RE2 syntax; full match)."""

    kind: MatchKind
    value: str

    def __post_init__(self) -> None:
        if self.kind not in MATCH_KINDS:
            raise RouteError(f"match kind must be one of {', '.join(MATCH_KINDS)}, got {self.kind!r}")
        if not isinstance(self.value, str) or len(self.value) > MAX_VALUE or "\n" in self.value:
            raise RouteError(f"match value must be one line of at most {MAX_VALUE} characters")
        if self.kind == "regex":
            try:
                re.compile(self.value)
            except re.error as exc:
                raise RouteError(f"invalid regex {self.value!r}: {exc}") from None

    def matches(self, text: str | None) -> bool:
        """Whether ``text`` (None: absent) satisfies the condition, as Envoy evaluates it."""
        if text is None:
            return False
        if self.kind == "exact":
            return text == self.value
        if self.kind == "prefix":
            return text.startswith(self.value)
        return re.fullmatch(self.value, text) is not None

    def as_regex(self) -> str:
        """The same condition as a full-match regular expression (for Gateway API headers)."""
        if self.kind == "regex":
            return self.value
        escaped = re.escape(self.value)
        return escaped + ".*" if self.kind == "prefix" else escaped


@dataclass(frozen=True)
class RequestMatch:
    """The conditions of one match alternative; all must hold (an empty match holds for every request).

    ``headers`` and ``query`` are ``(name, condition)`` pairs, header names lower case. ``path`` and
    ``method`` are carried over from the default route when a canary route is placed before it, so
    that the canary route never takes a request the default route would not have taken.
    """

    headers: tuple[tuple[str, StringMatch], ...] = ()
    query: tuple[tuple[str, StringMatch], ...] = ()
    path: StringMatch | None = None
    method: str | None = None

    def __post_init__(self) -> None:
        names = [name for name, _ in self.headers]
        for name in names:
            if not _HEADER_NAME.match(name) or name != name.lower():
                raise RouteError(f"invalid header name {name!r} (a lower-case HTTP token)")
        if len(set(names)) != len(names):
            raise RouteError(f"a header appears twice in one match: {', '.join(names)}")
        queries = [name for name, _ in self.query]
        for name in queries:
            if not _QUERY_NAME.match(name):
                raise RouteError(f"invalid query parameter name {name!r}")
        if len(set(queries)) != len(queries):
            raise RouteError(f"a query parameter appears twice in one match: {', '.join(queries)}")

    def holds(self, request: Request) -> bool:
        """Whether ``request`` satisfies every condition."""
        if self.method is not None and request.method != self.method:
            return False
        if self.path is not None and not self.path.matches(request.path):
            return False
        for name, condition in self.headers:
            if not condition.matches(request.header(name)):
                return False
        return all(condition.matches(request.query_param(name)) for name, condition in self.query)

    def merged(self, other: RequestMatch, where: str) -> RequestMatch:
        """Both matches' conditions (a request must satisfy both); ``RouteError`` naming ``where``
        when they constrain the same header, parameter, path or method differently."""
        headers = dict(other.headers)
        for name, condition in self.headers:
            if name in headers and headers[name] != condition:
                raise RouteError(f"{where}: both constrain header {name!r}; cannot combine them")
            headers[name] = condition
        query = dict(other.query)
        for name, condition in self.query:
            if name in query and query[name] != condition:
                raise RouteError(f"{where}: both constrain query parameter {name!r}; cannot combine them")
            query[name] = condition
        for attr in ("path", "method"):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            if mine is not None and theirs is not None and mine != theirs:
                raise RouteError(f"{where}: both constrain the {attr}; cannot combine them")
        return RequestMatch(
            headers=tuple(sorted(headers.items())),
            query=tuple(sorted(query.items())),
            path=self.path or other.path,
            method=self.method or other.method,
        )


def header(name: str, kind: MatchKind, value: str) -> RequestMatch:
    """A match on one header (name case-insensitive, as in HTTP)."""
    return RequestMatch(headers=((name.lower(), StringMatch(kind, value)),))


def cookie_condition(name: str, value: str | None = None) -> tuple[str, StringMatch]:
    """A cookie as a regex on the ``cookie`` header, as Flagger writes cookie matches: the cookie
    ``name`` is present (with ``value`` when given) among the request's cookies."""
    if not _COOKIE_NAME.match(name):
        raise RouteError(f"invalid cookie name {name!r}")
    wanted = re.escape(name) + "=" + (re.escape(value) if value is not None else "[^;]*")
    return "cookie", StringMatch("regex", rf"^(.*?;\s*)?{wanted}(;.*)?$")


@dataclass(frozen=True)
class Request:
    """What a match looks at in one HTTP request (for the local mesh and for tests)."""

    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive); repeated headers joined by ``, ``
        (``; `` for ``cookie``), as Envoy presents them to a match."""
        values = [v for k, v in self.headers if k.lower() == name]
        if not values:
            return None
        return ("; " if name == "cookie" else ", ").join(values)

    def query_param(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        return next((v for k, v in self.query if k == name), None)

    def cookie(self, name: str) -> str | None:
        """The value of cookie ``name``."""
        for part in (self.header("cookie") or "").split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value
        return None


@dataclass(frozen=True)
class Match:
    """The A/B match: the canary gets the requests that satisfy any one of ``alternatives``;
    ``weight`` percent of them (below 100 the match route splits them with GA, so that GA still
    serves requests of the segment for the judge to compare with)."""

    alternatives: tuple[RequestMatch, ...]
    weight: int = 100

    def __post_init__(self) -> None:
        if not self.alternatives:
            raise RouteError("a match needs at least one alternative")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int) or not 1 <= self.weight <= 100:
            raise RouteError(f"the match route's canary weight must be 1 to 100, got {self.weight!r}")
        if any(not (a.headers or a.query) for a in self.alternatives):
            raise RouteError("every match alternative needs a header, cookie or query condition")

    def holds(self, request: Request) -> bool:
        """Whether ``request`` satisfies one alternative."""
        return any(a.holds(request) for a in self.alternatives)


@dataclass(frozen=True)
class SessionAffinity:
    """Users stay on the canary once it has served them, as Flagger's ``sessionAffinity``: the
    canary's answers set cookie ``cookie_name=value``, and a route before the default one sends
    requests carrying it to the canary. New sessions split by the step's weights.

    ``value`` must change with every canary revision (see :func:`affinity_value`), so a cookie from
    an earlier canary never pins a user to a later one.
    """

    cookie_name: str
    value: str
    max_age: int = 86400
    #: Flagger's ``primaryCookieName``: GA's answers set this cookie too, with ``primary_max_age``
    #: (Flagger: the analysis interval), and its holders stay on GA until it expires; None: GA's
    #: users are not pinned.
    primary_cookie_name: str | None = None
    primary_max_age: int = 60

    def __post_init__(self) -> None:
        if not _COOKIE_NAME.match(self.cookie_name):
            raise RouteError(f"invalid cookie name {self.cookie_name!r}")
        if self.primary_cookie_name is not None and (
            not _COOKIE_NAME.match(self.primary_cookie_name) or self.primary_cookie_name == self.cookie_name
        ):
            raise RouteError(f"invalid primary cookie name {self.primary_cookie_name!r}")
        if isinstance(self.primary_max_age, bool) or not 1 <= self.primary_max_age <= 400 * 86400:
            raise RouteError(f"primary cookie max-age must be 1 s to 400 days, got {self.primary_max_age!r}")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.value):
            raise RouteError(f"invalid cookie value {self.value!r}")
        if isinstance(self.max_age, bool) or not 1 <= self.max_age <= 400 * 86400:
            raise RouteError(f"cookie max-age must be 1 s to 400 days, got {self.max_age!r}")

    @property
    def set_cookie(self) -> str:
        """The ``Set-Cookie`` header the canary's answers carry."""
        return f"{self.cookie_name}={self.value}; Max-Age={self.max_age}; Path=/"

    @property
    def condition(self) -> tuple[str, StringMatch]:
        """The ``cookie`` header condition of the sticky route."""
        return cookie_condition(self.cookie_name, self.value)

    @property
    def primary_set_cookie(self) -> str | None:
        """The ``Set-Cookie`` header GA's answers carry (None: GA's users are not pinned)."""
        if self.primary_cookie_name is None:
            return None
        return f"{self.primary_cookie_name}={self.value}; Max-Age={self.primary_max_age}; Path=/"

    @property
    def primary_condition(self) -> tuple[str, StringMatch] | None:
        """The ``cookie`` header condition of GA's sticky route."""
        if self.primary_cookie_name is None:
            return None
        return cookie_condition(self.primary_cookie_name, self.value)


def affinity_value(rollout: str, canary_revision: str) -> str:
    """A cookie value that is the same for one canary revision of one rollout (so a restarted
    controller writes the same route) and different for the next revision."""
    return hashlib.sha256(f"{rollout}\0{canary_revision}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Rule:
    """One route of a routing table: the requests it takes (no alternatives: every request), the
    split, the mirrored percentage (None: no mirror) and ``Set-Cookie`` values added per
    destination (``"stable"`` or ``"canary"``)."""

    matches: tuple[RequestMatch, ...]
    weights: Weights
    mirror: float | None = None
    set_cookie: tuple[tuple[str, str], ...] = ()
    label: str = ""

    def takes(self, request: Request) -> bool:
        """Whether this rule takes ``request``."""
        return not self.matches or any(m.holds(request) for m in self.matches)


@dataclass(frozen=True)
class RouteTable:
    """The routes of one file that lead to the stable or the canary, in the order they apply."""

    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def route(self, request: Request) -> Rule | None:
        """The rule that takes ``request``, or None (no route: Envoy answers 404)."""
        return next((rule for rule in self.rules if rule.takes(request)), None)

    @property
    def default(self) -> Rule | None:
        """The last rule, the one that takes what the others leave."""
        return self.rules[-1] if self.rules else None


__all__ = [
    "MATCH_KINDS",
    "Match",
    "MatchKind",
    "Request",
    "RequestMatch",
    "RouteTable",
    "Rule",
    "SessionAffinity",
    "StringMatch",
    "affinity_value",
    "cookie_condition",
    "header",
]
