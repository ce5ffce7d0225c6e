"""The controller's sections of the Rollout spec: ``analysis``, ``load``, ``notify``, ``finalize``.

```yaml
spec:
  analysis:
    interval: 1m                  # one analysis window per interval (Flagger: analysis.interval)
    threshold: 5                  # consecutive windows without usable data before onError
    onError: pause                # pause | rollback  (never promote without data)
    syncTimeout: 5m               # the cluster must run the committed weights within this
    metrics: istio                # a built-in template (istio, istio-version, podinfo) or a template
    subsets:                      # how the metrics name GA and canary (the template's selector fields)
      stable: {workload: podinfo, version: ga, service: podinfo}
      canary: {workload: podinfo-canary, version: canary, service: podinfo}
    prometheus: {url: http://prometheus.istio-system:9090, bearerTokenFile: /var/run/secrets/prom}
    policy:                       # the analyzer's Policy: alpha, margins, SLOs, minimum data,
      alpha: 0.01                 # max_windows_per_step and on_max_windows (pause | rollback) ...
                                  # (the analyzer's Policy model itself: errors name the key)
  load: {mode: endpoint, endpoint: http://loadtester.test:8089, target: http://podinfo-canary.test:9898/,
         rate: 20, tokenFile: /var/run/secrets/loadtest/token}
  notify: ["slack://T000/B000/XXX", {urlFile: /var/run/secrets/notify/urls}]
  finalize: leave-canary          # leave-canary | promote-ga (then gaPath: the GA manifest)
```

Kept apart from :mod:`rollouts.spec` (which owns identity, Git, route and steps) so each part can
grow on its own; :class:`rollouts.spec.RolloutSpec` embeds these models. Same rules: unknown keys are
errors, values are strict, errors name the field.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from analyzer.policy import Policy
from analyzer.prometheus.templates import BUILTIN, template_from_mapping
from rollouts.spec_strategy import StrategySpec

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")


def parse_duration(value: Any) -> Any:
    """``"1m30s"``, ``"90s"``, ``"500ms"``, ``"2h"`` (Go/Flagger style) or a number of seconds -> seconds."""
    if isinstance(value, bool):
        return value  # let the float check reject it
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not value.strip() or match is None or not any(match.groups()):
            raise ValueError(f"must be a duration like 30s, 1m or 1m30s, got {value!r}")
        hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
        return hours * 3600 + minutes * 60 + seconds + millis / 1000
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be positive")
    return value


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    AfterValidator(_positive),
    WithJsonSchema({"type": ["string", "number"], "description": "duration: 30s, 1m, 1m30s or seconds"}),
]
OnFailure = Literal["pause", "rollback"]


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL")
    if re.match(r"^https?://[^/@]*:[^/@]*@", value):
        raise ValueError("must not contain credentials; use a token or password file")
    return value


def _repo_path(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts:
        raise ValueError("must be a relative path inside the repository (no leading '/', no '..')")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class PrometheusSpec(_Model):
    """Where the metrics are; credentials only from files."""

    url: HttpUrl = Field(default="http://prometheus:9090", description="Prometheus' base URL.")
    bearer_token_file: str | None = Field(
        default=None, alias="bearerTokenFile", description="File holding a bearer token for Prometheus."
    )
    username: str | None = Field(default=None, description="Basic-auth user (with `passwordFile`).")
    password_file: str | None = Field(
        default=None, alias="passwordFile", description="File holding the basic-auth password."
    )
    timeout: Duration = Field(default=10.0, description="Timeout of one query (duration).")

    @model_validator(mode="after")
    def _auth(self) -> PrometheusSpec:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and passwordFile go together")
        if self.username is not None and self.bearer_token_file is not None:
            raise ValueError("use either bearerTokenFile or username/passwordFile, not both")
        return self


class SubsetSpec(_Model):
    """How the metrics name one side (the query template's selector fields; namespace is the rollout's).
    Empty fields are derived from the files the route points at (``rollouts/workloads.py``): the
    canary and GA manifests' names, the destination's host or backend, the DestinationRule's
    ``version`` label; else ``<name>-<route subset>``, the route subset and ``<name>``."""

    workload: str = Field(
        default="",
        description="Workload (Deployment) name; empty: the canary (or GA, `gaPath`) manifest's name, a "
        "host's or backend's service name, else `<name>-<route subset>`.",
    )
    version: str = Field(
        default="",
        description="The pods' `version` label; empty: the DestinationRule subset's `version` label, else "
        "the route's subset name.",
    )
    service: str = Field(
        default="",
        description="Service name; empty: the destination's host or backend, else the rollout's name.",
    )


class SubsetsSpec(_Model):
    """GA (``stable``) and canary as the metrics know them."""

    stable: SubsetSpec = Field(default=SubsetSpec(), description="How the metrics name GA.")
    canary: SubsetSpec = Field(default=SubsetSpec(), description="How the metrics name the canary.")


class AnalysisSpec(StrategySpec):
    """How each step is judged (names as in Flagger's ``analysis`` where the meaning is the same,
    the strategies' ``iterations``, ``match``, ``mirror``, ``mirrorWeight`` and ``sessionAffinity``
    included; see docs/strategies.md)."""

    interval: Duration = Field(default=60.0, description="One analysis window per interval (duration).")
    threshold: int = Field(
        default=5, ge=1, description="Consecutive windows without usable data before `onError` applies."
    )
    on_error: OnFailure = Field(
        default="pause", alias="onError", description="What `threshold` windows without data lead to."
    )
    sync_timeout: Duration = Field(
        default=300.0,
        alias="syncTimeout",
        description="The cluster must run the committed weights within this, or the rollout pauses "
        "(duration).",
    )
    metrics: str | dict[str, Any] = Field(
        default="istio",
        description="A built-in query template (`istio`, `istio-version`, `istio-ambient`, "
        "`istio-source`... with `-grpc` and `-4xx` variants, `podinfo`; see docs/prometheus.md) or a "
        "template of your own (`selector`, `histogram`, `requests`, `errors`).",
    )
    subsets: SubsetsSpec = Field(default=SubsetsSpec(), description="How the metrics name GA and canary.")
    prometheus: PrometheusSpec = Field(default=PrometheusSpec(), description="Where the metrics are.")
    policy: Policy = Field(
        default_factory=Policy,
        description="The judge's policy: the analyzer's `Policy` (its fields are in its own section).",
    )

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        # The analyzer owns the query templates: a typo fails when the spec is loaded, not at the
        # first analysis window.
        if isinstance(value, str):
            if value not in BUILTIN:
                raise ValueError(f"unknown template {value!r}; built-in: {', '.join(sorted(BUILTIN))}")
        else:
            template_from_mapping({"name": "custom", **value}, source="metrics")
        return value


class LoadSpec(_Model):
    """Load during analysis: a ``loadtest serve`` endpoint, a local subprocess, or none."""

    mode: Literal["endpoint", "local", "none"] = Field(
        default="none",
        description="`endpoint`: a `loadtest serve` pod; `local`: a `loadtest` subprocess; `none`: "
        "the service has traffic of its own.",
    )
    endpoint: HttpUrl | None = Field(default=None, description="The `loadtest serve` URL (mode `endpoint`).")
    target: HttpUrl | None = Field(default=None, description="The URL to load (required unless mode `none`).")
    rate: float | None = Field(
        default=20.0, gt=0, description="Requests per second; null: as fast as `concurrency` allows."
    )
    concurrency: int | None = Field(default=None, ge=1, description="Concurrent workers.")
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] = Field(
        default="GET", description="HTTP method of the requests."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="HTTP headers of the requests.")
    token_file: str | None = Field(
        default=None,
        alias="tokenFile",
        description="File holding the endpoint's bearer token (mode `endpoint`).",
    )

    @model_validator(mode="after")
    def _complete(self) -> LoadSpec:
        if self.mode != "none" and self.target is None:
            raise ValueError(f"mode {self.mode} needs target (the URL to load)")
        if self.mode == "endpoint" and (self.endpoint is None or self.token_file is None):
            raise ValueError("mode endpoint needs endpoint and tokenFile")
        return self


class UrlFile(_Model):
    """A file with notification URLs, one per line (secret webhooks stay out of the spec)."""

    url_file: str = Field(alias="urlFile", description="File of apprise URLs, one per line.")


class FinalizeSpec(_Model):
    """What happens after the last step passed: the guide's full promotion, or back to GA.

    ``leave-canary``: the canary keeps 100 % of the traffic. ``promote-ga``: the canary's images are
    copied into the GA manifest (``gaPath``) and, once GA is ready, traffic goes back to GA.
    """

    action: Literal["leave-canary", "promote-ga"] = Field(
        default="leave-canary", description="What follows the last step (see above)."
    )
    ga_path: Annotated[str, AfterValidator(_repo_path)] | None = Field(
        default=None, alias="gaPath", description="The GA workload manifest (`promote-ga`)."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"action": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _ga(self) -> FinalizeSpec:
        if self.action == "promote-ga" and self.ga_path is None:
            raise ValueError("promote-ga needs gaPath (the GA workload manifest)")
        return self


class ControllerSections(_Model):
    """The controller's sections as one model (embedded field by field in ``RolloutSpec``)."""

    analysis: AnalysisSpec = AnalysisSpec()
    load: LoadSpec = LoadSpec()
    notify: list[str | UrlFile] = Field(default_factory=list)
    finalize: FinalizeSpec = FinalizeSpec()
