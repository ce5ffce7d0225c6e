"""The strategies' part of the Rollout spec, in Flagger's words, and the pure plan it makes.

```yaml
spec:
  steps: [100]                    # blue/green: one switch after the preview's analysis
  analysis:
    iterations: 10                # windows judged at weight 0 before the first step
    match:                        # A/B: only these requests go to the canary during the iterations
    - headers: {x-user: {exact: beta}}
    - headers: {cookie: {regex: "^(.*?;)?(canary=always)(;.*)?$"}}
    - queryParams: {variant: {exact: b}}
    matchWeight: 50               # A/B: percent of the matching requests to the canary (default 100)
    segmentLabel:                 # A/B: the metric label the mesh puts on the matching requests
      name: request_segment       # (Istio: a Telemetry tagOverrides tag), and its value on them
      value: match
    mirror: true                  # or: mirror GA's requests to the canary during the iterations
    mirrorWeight: 100             # percent of the requests mirrored
    previewService:               # or: the preview judged on load sent to its own Service
      name: podinfo-preview
      url: http://podinfo-preview.test:9898/
    postPromotionAnalysis:        # blue/green: judged again after the switch; harm switches back
      iterations: 3
      stableService: {name: podinfo-stable, url: http://podinfo-stable.test:9898/}
    sessionAffinity: {cookieName: rollouts-podinfo, maxAge: 86400, primaryCookieName: rollouts-ga}
```

The names and shapes are Flagger's (``analysis.iterations``, ``match`` as Istio's
``HTTPMatchRequest`` headers and query parameters, ``mirror``, ``mirrorWeight``,
``sessionAffinity.cookieName`` and ``maxAge``). What they mean here, as a plan of route states
(:func:`plan`):

- no ``iterations``: a weighted canary, one stage per step (``sessionAffinity`` adds the cookie);
- ``iterations`` with ``match``: A/B testing, at least ``iterations`` windows (until the judge
  promotes) with the match route at weight 0, then the steps (``[100]``: promotion routes
  everyone) with the match route removed;
- ``matchWeight`` (A/B only, default 100): the match route sends this percent of the matching
  requests to the canary and the rest to GA, so that GA keeps serving some of the segment;
- ``segmentLabel`` (A/B only): during the match stage the canary's series, and GA's, are read
  restricted to the requests whose metric label ``name`` is ``value`` (the matching requests), so
  the canary is compared with GA on the same kind of requests; where GA serves none of them (the
  match route sends them all to the canary, ``matchWeight`` 100) GA's series falls back to all of
  its requests and the verdict says so;
- ``iterations`` with ``mirror``: at least ``iterations`` windows mirroring ``mirrorWeight``
  percent at weight 0, then the steps with the mirror removed (a step may mirror, then shift);
- ``iterations`` with ``previewService``: the preview is judged at weight 0 on the load sent to its
  own Service (Argo Rollouts' ``previewService``), users all on GA, no route change until the steps;
- ``steps: [100]`` after iterations is blue/green: one commit switches 0 -> 100; with
  ``postPromotionAnalysis`` (Argo Rollouts' name) the switched version is judged for at least its
  ``iterations`` windows more against GA (still running, loaded on its own ``stableService``), and
  harm is one commit that switches back 100 -> 0.

A rollback state always has weight 0 and none of the blocks. This module is pure: no Git, no files;
the commit path applies a state with :func:`apply_state`, the only place that orders the edits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, HttpUrl, model_validator

from rollouts.routes.base import RouteEditor, RouteError, Weights
from rollouts.routes.strategies import (
    Match,
    Request,
    RequestMatch,
    SessionAffinity,
    StringMatch,
)
from rollouts.spec_model import SpecModel as _Model  # the spec's rules, in one place


class StringMatchSpec(_Model):
    """One condition: exactly one of ``exact``, ``prefix``, ``regex`` (RE2, full match)."""

    exact: str | None = Field(default=None, description="The value, exactly.")
    prefix: str | None = Field(default=None, description="The value starts with this.")
    regex: str | None = Field(default=None, description="The value matches this RE2 regular expression.")

    @model_validator(mode="after")
    def _one(self) -> StringMatchSpec:
        given = [k for k in ("exact", "prefix", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("must have exactly one of exact, prefix, regex")
        try:
            self.condition()
        except RouteError as exc:
            raise ValueError(str(exc)) from None
        return self

    def condition(self) -> StringMatch:
        """As a :class:`StringMatch`."""
        for kind in ("exact", "prefix", "regex"):
            value = getattr(self, kind)
            if value is not None:
                return StringMatch(kind, value)
        raise ValueError("empty condition")  # pragma: no cover - excluded by the validator


class MatchSpec(_Model):
    """One alternative of ``analysis.match`` (Istio's ``HTTPMatchRequest``: headers and query
    parameters; a cookie is a regex on the ``cookie`` header, as in Flagger)."""

    headers: dict[str, StringMatchSpec] = Field(
        default_factory=dict, description="Header name -> condition; all must hold."
    )
    query_params: dict[str, StringMatchSpec] = Field(
        default_factory=dict, alias="queryParams", description="Query parameter -> condition; all must hold."
    )

    @model_validator(mode="after")
    def _some(self) -> MatchSpec:
        if not self.headers and not self.query_params:
            raise ValueError("needs headers or queryParams")
        try:
            self.request_match()
        except RouteError as exc:
            raise ValueError(str(exc)) from None
        return self

    def request_match(self) -> RequestMatch:
        """As a :class:`RequestMatch`."""
        return RequestMatch(
            headers=tuple(sorted((name.lower(), c.condition()) for name, c in self.headers.items())),
            query=tuple(sorted((name, c.condition()) for name, c in self.query_params.items())),
        )


_LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


#: Labels of Istio's standard metrics (and Prometheus') a segment label must not reuse.
_RESERVED_LABELS = frozenset(
    {
        "le",
        "reporter",
        "response_code",
        "grpc_response_status",
        "request_protocol",
        "response_flags",
        "connection_security_policy",
        "job",
        "instance",
        "namespace",
        "app",
        "version",
        "path",
        "status",
    }
)


class SegmentLabelSpec(_Model):
    """The metric label that marks the requests of the A/B match, as the mesh emits it (Istio: a
    tag added by the Telemetry API's ``tagOverrides``, e.g. ``request_segment`` with the CEL value
    ``request.headers['x-user'] == 'beta' ? 'match' : 'other'``)."""

    name: str = Field(
        default="request_segment",
        pattern=_LABEL_NAME,
        max_length=128,
        description="The Prometheus label (Istio: the `tagOverrides` tag name).",
    )
    value: str = Field(
        default="match",
        min_length=1,
        max_length=256,
        description="Its value on the requests that the match takes.",
    )

    @model_validator(mode="after")
    def _not_istio_label(self) -> SegmentLabelSpec:
        if self.name in _RESERVED_LABELS or self.name.startswith(("source_", "destination_")):
            raise ValueError(
                f"name: {self.name!r} is one of Istio's standard labels; name a label of your own"
            )
        return self


class SessionAffinitySpec(_Model):
    """Flagger's ``sessionAffinity``: the cookie the canary's answers set."""

    cookie_name: str = Field(alias="cookieName", description="Name of the session cookie.")
    max_age: int = Field(
        default=86400, alias="maxAge", ge=1, le=400 * 86400, description="Cookie lifetime in seconds."
    )
    primary_cookie_name: str | None = Field(
        default=None,
        alias="primaryCookieName",
        description="GA's answers set this cookie (lifetime: the analysis interval) and its holders stay "
        "on GA until it expires, as Flagger's; unset: GA's users are not pinned.",
    )


class ServiceSpec(_Model):
    """A Service that selects the pods of one version only: Argo Rollouts' ``previewService`` (the
    canary's), or GA's own (``postPromotionAnalysis.stableService``)."""

    name: str = Field(
        min_length=1, description="The Service, e.g. `podinfo-preview` (canary) or `podinfo-stable` (GA)."
    )
    url: HttpUrl | None = Field(
        default=None,
        description="Where the analysis load goes while this version is judged on it (e.g. "
        "`http://podinfo-preview.test:9898/`); required unless `load.mode` is `none`.",
    )


class PostPromotionSpec(_Model):
    """Argo Rollouts' ``postPromotionAnalysis``, for blue/green: the switched version judged again."""

    iterations: int = Field(
        ge=1,
        le=10_000,
        description="Windows judged after the 0 -> 100 switch (at least; until the judge promotes); "
        "a rollback verdict in them is one commit that switches back 100 -> 0.",
    )
    stable_service: ServiceSpec | None = Field(
        default=None,
        alias="stableService",
        description="A Service of GA alone: the analysis load goes to its `url` after the switch, so "
        "that GA (still running) has requests to be compared with; required unless `load.mode` is "
        "`none`.",
    )


class StrategySpec(_Model):
    """The strategy fields of ``spec.analysis`` (Flagger's names)."""

    iterations: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="The stage before the first step, at weight 0 (with `match`, `mirror`, or "
        "`previewService`: load to the preview's own Service), lasts at least this many windows and "
        "ends when the judge promotes (or rolls back); with `steps: [100]` this is blue/green.",
    )
    match: list[MatchSpec] = Field(
        default_factory=list,
        description="A/B testing: during the iterations only requests matching one of these go to the "
        "canary (the match stage at weight 0, committed before the first step; a load that sends "
        "no matching request holds it, naming the header).",
    )
    match_weight: int = Field(
        default=100,
        alias="matchWeight",
        ge=1,
        le=100,
        description="A/B testing: percent of the matching requests the match route sends to the canary; "
        "below 100 the match route splits them with GA, so that GA still serves requests of the "
        "segment (what `segmentLabel` compares the canary with).",
    )
    segment_label: SegmentLabelSpec | None = Field(
        default=None,
        alias="segmentLabel",
        description="A/B testing: the metric label the mesh sets on the requests `match` takes (Istio: "
        "a Telemetry `tagOverrides` tag); the match stage then compares the canary with GA on those "
        "requests only (GA's matching requests, where it serves any; else all of GA's, and the "
        "verdict says so). Unset: the canary's matching requests are compared with all of GA's.",
    )
    mirror: bool = Field(
        default=False,
        description="During the iterations, mirror GA's requests to the canary (canary weight 0, "
        "the mirror stage committed before the first step; its windows judge the mirrored copies).",
    )
    mirror_weight: int = Field(
        default=100, alias="mirrorWeight", ge=1, le=100, description="Percent of the requests mirrored."
    )
    preview_service: ServiceSpec | None = Field(
        default=None,
        alias="previewService",
        description="During the iterations the analysis load goes to this Service of the canary alone "
        "(users all stay on GA, the route is not changed) and the canary's windows are judged against "
        "GA's; then the steps (`[100]`: one switch).",
    )
    post_promotion: PostPromotionSpec | None = Field(
        default=None,
        alias="postPromotionAnalysis",
        description="Blue/green (`iterations` with `steps: [100]`): after the switch, the switched "
        "version is judged against GA for at least these windows; harm switches back in one commit.",
    )
    session_affinity: SessionAffinitySpec | None = Field(
        default=None,
        alias="sessionAffinity",
        description="Users the canary served stay on it (a cookie route, as Flagger's).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> StrategySpec:
        if self.match and self.iterations is None:
            raise ValueError("match needs iterations (the windows judged on the matching requests)")
        if self.mirror and self.iterations is None:
            raise ValueError("mirror needs iterations (the windows judged on mirrored requests)")
        if self.match and self.mirror:
            raise ValueError("match and mirror cannot be combined: choose A/B testing or mirroring")
        if self.preview_service is not None and (self.match or self.mirror):
            raise ValueError("previewService cannot be combined with match or mirror: choose one")
        if self.preview_service is not None and self.iterations is None:
            raise ValueError("previewService needs iterations (the windows judged on the preview)")
        if self.match_weight != 100 and not self.match:
            raise ValueError("matchWeight: only for A/B testing (analysis.match with analysis.iterations)")
        if self.segment_label is not None and not self.match:
            raise ValueError(
                "segmentLabel: only for A/B testing (analysis.match with analysis.iterations); "
                "other strategies do not route by request, so there is no segment to compare on"
            )
        if self.match and self.session_affinity is not None:
            raise ValueError("match and sessionAffinity cannot be combined (as in Flagger)")
        return self

    @property
    def kind(self) -> Literal["canary", "ab", "mirror", "preview"]:
        """The analysis before the first step: none, A/B match, mirror, or load to the preview."""
        if self.iterations is None:
            return "canary"
        if self.match:
            return "ab"
        return "mirror" if self.mirror else "preview"

    def to_match(self) -> Match | None:
        """``match`` as a :class:`Match` (None when empty)."""
        if not self.match:
            return None
        return Match(tuple(m.request_match() for m in self.match), weight=self.match_weight)


def check_runnable(strategy: StrategySpec, load_mode: str = "none") -> None:
    """``ValueError`` naming the field when the spec's stage before the first step has nothing to
    judge: ``iterations`` needs ``mirror``, ``match`` or ``previewService`` (and the preview's
    ``url`` when the controller sends the load)."""
    if strategy.kind != "preview":
        return
    preview = strategy.preview_service
    if preview is None:
        raise ValueError(
            "analysis.previewService: required with analysis.iterations without analysis.mirror or "
            "analysis.match (blue/green: the preview's own Service, where the analysis load goes)"
        )
    if preview.url is None and load_mode != "none":
        raise ValueError(
            f"analysis.previewService.url: required with load.mode {load_mode} (the load goes to "
            "the preview's Service during the iterations)"
        )


def check_post_promotion(strategy: StrategySpec, steps: Sequence[int], load_mode: str = "none") -> None:
    """``ValueError`` naming the field when ``postPromotionAnalysis`` is set outside blue/green or
    without GA's own Service for the controller's load."""
    post = strategy.post_promotion
    if post is None:
        return
    if not is_blue_green(strategy, steps):
        raise ValueError(
            "analysis.postPromotionAnalysis: only for blue/green (analysis.iterations with steps: [100])"
        )
    if load_mode != "none" and (post.stable_service is None or post.stable_service.url is None):
        raise ValueError(
            f"analysis.postPromotionAnalysis.stableService.url: required with load.mode {load_mode} "
            "(after the switch the load goes to GA's own Service)"
        )


def check_route_kind(strategy: StrategySpec, kind: str) -> None:
    """``ValueError`` naming the field when route ``kind`` cannot express the strategy."""
    if kind != "TrafficSplit":
        return
    used = [
        field
        for field, present in (
            ("analysis.match", bool(strategy.match)),
            ("analysis.segmentLabel", strategy.segment_label is not None),
            ("analysis.mirror", strategy.mirror),
            ("analysis.sessionAffinity", strategy.session_affinity is not None),
        )
        if present
    ]
    if used:
        raise ValueError(
            f"{', '.join(used)}: a TrafficSplit cannot express {'it' if len(used) == 1 else 'them'}; "
            "use a VirtualService or an HTTPRoute"
        )


@dataclass(frozen=True)
class RouteState:
    """Everything a step commits to the route file."""

    weights: Weights
    match: Match | None = None
    mirror: float | None = None
    affinity: SessionAffinity | None = None


@dataclass(frozen=True)
class Stage:
    """One stage of a rollout: its route state and, for the iterations, how many windows."""

    name: str
    state: RouteState
    windows: int | None = None  # the iterations: at least this many windows (None: no minimum)


def plan(
    strategy: StrategySpec, steps: Sequence[int], *, affinity_value: str | None = None, interval: float = 60.0
) -> tuple[Stage, ...]:
    """The stages of a rollout, in order (pure). ``affinity_value`` is the session cookie's value for
    this canary revision (:func:`rollouts.routes.strategies.affinity_value`); ``interval`` (seconds)
    is the lifetime of the primary cookie."""
    affinity = None
    if strategy.session_affinity is not None:
        if affinity_value is None:
            raise ValueError("sessionAffinity needs the cookie value of this canary revision")
        spec = strategy.session_affinity
        affinity = SessionAffinity(
            spec.cookie_name,
            affinity_value,
            spec.max_age,
            primary_cookie_name=spec.primary_cookie_name,
            primary_max_age=max(1, round(interval)),
        )
    stages: list[Stage] = []
    if strategy.iterations is not None:
        zero = Weights.for_canary(0)
        name = {"ab": "match", "mirror": "mirror", "preview": "preview"}[strategy.kind]
        state = RouteState(
            weights=zero,
            match=strategy.to_match(),
            mirror=float(strategy.mirror_weight) if strategy.mirror else None,
        )
        stages.append(Stage(name=name, state=state, windows=strategy.iterations))
    for weight in steps:
        with_affinity = affinity if 0 < weight < 100 else None
        stages.append(
            Stage(
                name=f"step {weight}%", state=RouteState(Weights.for_canary(weight), affinity=with_affinity)
            )
        )
    return tuple(stages)


def rollback_state() -> RouteState:
    """Everything back to GA: weight 0, no match, no mirror, no cookie route."""
    return RouteState(weights=Weights.for_canary(0))


def is_blue_green(strategy: StrategySpec, steps: Sequence[int]) -> bool:
    """Iterations at weight 0, then one switch to 100."""
    return strategy.iterations is not None and list(steps) == [100]


def apply_state(editor: RouteEditor, text: str, state: RouteState) -> str:
    """``text`` with the route in ``state``: the blocks that go are removed first, then the weights
    are written, then the blocks that stay are set (so a switch to 100 never mirrors the canary's own
    traffic, and a rollback removes the cookie route in the same commit that moves the weights)."""
    if state.match is None:
        text = editor.set_match(text, None)
    if state.mirror is None:
        text = editor.set_mirror(text, None)
    if state.affinity is None:
        text = editor.set_affinity(text, None)
    text = editor.write(text, state.weights)
    if state.match is not None:
        text = editor.set_match(text, state.match)
    if state.mirror is not None:
        text = editor.set_mirror(text, state.mirror)
    if state.affinity is not None:
        text = editor.set_affinity(text, state.affinity)
    return text


def load_misses_match(match: Match, target: str, headers: dict[str, str]) -> str | None:
    """Why the load (``target`` URL, ``headers``) sends no request the match takes, or None when it
    does: the reason of a hold ("never promote") when the canary would get no traffic."""
    parts = urlsplit(target)
    request = Request(
        path=parts.path or "/",
        headers=tuple((k.lower(), v) for k, v in headers.items()),
        query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
    )
    if match.holds(request):
        return None
    wanted = []
    for alternative in match.alternatives:
        names = [f"header {n}" for n, _ in alternative.headers] + [f"query {n}" for n, _ in alternative.query]
        wanted.append(" and ".join(names))
    return (
        "analysis.match: the load sends no request that matches (it needs "
        + "; or ".join(wanted)
        + "); the canary gets no traffic, so the rollout holds: set load.headers or load.target"
    )


__all__ = [
    "MatchSpec",
    "PostPromotionSpec",
    "RouteState",
    "SegmentLabelSpec",
    "ServiceSpec",
    "SessionAffinitySpec",
    "Stage",
    "StrategySpec",
    "StringMatchSpec",
    "apply_state",
    "check_post_promotion",
    "check_route_kind",
    "check_runnable",
    "is_blue_green",
    "load_misses_match",
    "plan",
    "rollback_state",
]
