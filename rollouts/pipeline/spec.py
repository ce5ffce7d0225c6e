"""The Pipeline spec: environments in order, and what a revision needs to go from one to the next.

```yaml
apiVersion: rollouts.dev/v1alpha1
kind: Pipeline
metadata: {name: podinfo, namespace: test}
spec:
  environments:
    - name: staging
      rollout: staging/podinfo.yaml        # a Rollout spec file, relative to this file
    - name: production
      rollout: production/podinfo.yaml     # its route, canary manifest and repo may be elsewhere
      promotion:                           # what a revision needs to enter this environment
        soak: 30m                          # after staging finalized it, with no rollback since
        approval: command                  # none | command (`rollouts approve`) | merge (a branch to merge)
        windows:                           # when a hand-over may happen; none listed: any time
          - {days: [Mon, Tue, Wed, Thu], from: "09:00", to: "17:00"}
          - {days: [Fri], from: "09:00", to: "12:00"}
        timezone: Europe/Berlin
```

A pipeline adds nothing to a Rollout: each environment is an ordinary Rollout, judged and stepped as
usual. The pipeline only decides when the revision that one environment finalized is written into the
next environment's canary manifest (the hand-over commit), and stops the line when a revision is
rolled back anywhere. The same rules as the Rollout spec: unknown keys are errors, values are strict,
errors name the field (``pipeline.yaml: spec.environments[1].promotion.windows[0].from: ...``).
This module must never read Git or the clock: it only validates.
"""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, ValidationError, field_validator

from rollouts.pipeline.errors import PipelineSpecError
from rollouts.spec import Metadata, format_errors
from rollouts.spec_controller import Duration
from rollouts.spec_model import SpecModel as _Model  # the spec's rules, in one place

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
Day = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
DAYS: tuple[Day, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _env_name(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError("must be a DNS-1123 label (lower case letters, digits and '-')")
    return value


def _clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise ValueError(f"must be a time of day as HH:MM (24 h), got {value!r}")
    return value


def _relative_file(value: str) -> str:
    if not value.strip() or "\x00" in value:
        raise ValueError("must be a file path")
    return value


Clock = Annotated[str, AfterValidator(_clock)]


class TimeWindow(_Model):
    """Days and a time of day (in the promotion's timezone) when a hand-over may happen."""

    days: list[Day] = Field(
        default_factory=lambda: list(DAYS),
        min_length=1,
        description="Days of the week (`Mon` … `Sun`); default every day.",
    )
    from_: Clock = Field(
        alias="from", default="00:00", description="Start of the window, `HH:MM`, inclusive."
    )
    to: Clock = Field(
        default="23:59",
        description="End of the window, `HH:MM`, inclusive to the minute (`23:59` is the end of the day).",
    )

    @field_validator("to")
    @classmethod
    def _after_start(cls, value: str, info: Any) -> str:
        start = info.data.get("from_")
        if start is not None and value < start:
            raise ValueError(f"must not be before from ({start}); use two windows to span midnight")
        return value

    @property
    def start(self) -> time:
        """The start of the window as a time of day."""
        return time.fromisoformat(self.from_)

    @property
    def end(self) -> time:
        """The last minute of the window as a time of day (inclusive to :59 seconds)."""
        return time.fromisoformat(self.to).replace(second=59, microsecond=999999)


class Promotion(_Model):
    """What a revision needs to enter an environment from the previous one."""

    soak: Duration | None = Field(
        default=None,
        description="How long the previous environment must have run the revision finalized, with no "
        "rollback of it, before the hand-over (e.g. `30m`); default none.",
    )
    approval: Literal["none", "command", "merge"] = Field(
        default="none",
        description="`command`: a `rollouts approve` commit must name the revision and this environment; "
        "`merge`: the hand-over commit goes on a branch of ours (a pull or merge request where this "
        "environment's Rollout names `spec.approval.forge`) and counts once merged; `none`: automatic.",
    )
    windows: list[TimeWindow] = Field(
        default_factory=list,
        description="When a hand-over may happen (days and times in `timezone`); none listed: any time.",
    )
    timezone: str = Field(default="UTC", description="IANA timezone of `windows`, e.g. `Europe/Berlin`.")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"must be an IANA timezone such as Europe/Berlin or UTC, got {value!r}"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The timezone of :attr:`windows`."""
        return ZoneInfo(self.timezone)


class Environment(_Model):
    """One environment of the pipeline: an ordinary Rollout, and what it takes to enter it."""

    name: Annotated[str, AfterValidator(_env_name)] = Field(
        description="The environment's name (a DNS-1123 label): `staging`, `production-eu`."
    )
    rollout: Annotated[str, AfterValidator(_relative_file)] = Field(
        description="The Rollout spec file of this environment, relative to the pipeline file."
    )
    promotion: Promotion = Field(
        default=Promotion(),
        description="Conditions for a revision to enter this environment from the previous one (ignored "
        "on the first environment, whose revisions come from image automation or people).",
    )


class PipelineSpec(_Model):
    """``spec`` of a Pipeline."""

    environments: list[Environment] = Field(
        min_length=2, description="The environments in the order a revision walks them (at least two)."
    )

    @field_validator("environments")
    @classmethod
    def _unique(cls, environments: list[Environment]) -> list[Environment]:
        seen: set[str] = set()
        for env in environments:
            if env.name in seen:
                raise ValueError(f"environment names must be unique ({env.name!r} appears twice)")
            seen.add(env.name)
        return environments


class Pipeline(_Model):
    """A Pipeline document."""

    api_version: Literal["rollouts.dev/v1alpha1"] = Field(
        alias="apiVersion", description="The schema version."
    )
    kind: Literal["Pipeline"] = Field(description="Always `Pipeline`.")
    metadata: Metadata = Field(description="Name and namespace of the pipeline.")
    spec: PipelineSpec = Field(description="The environments, in order.")

    @property
    def key(self) -> str:
        """``namespace/name``, as in the ``Rollout-Pipeline:`` commit trailer."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def environment(self, name: str) -> Environment:
        """The environment called ``name`` (``KeyError`` when there is none)."""
        for env in self.spec.environments:
            if env.name == name:
                return env
        raise KeyError(name)


def parse_pipeline(data: Any, *, source: str = "<pipeline>") -> Pipeline:
    """Validate already-parsed YAML; :class:`PipelineSpecError` naming ``source`` and the fields."""
    if not isinstance(data, dict):
        raise PipelineSpecError(
            f"{source}: must be a YAML mapping (a Pipeline document), got {type(data).__name__}"
        )
    try:
        return Pipeline.model_validate(data)
    except ValidationError as exc:
        raise PipelineSpecError(format_errors(source, exc)) from None


def is_pipeline_file(path: str | Path) -> bool:
    """True when the file at ``path`` holds a ``kind: Pipeline`` document (read errors: False, so the
    caller's own loader reports them)."""
    try:
        with Path(path).open(encoding="utf-8") as handle:
            head = handle.read(64 * 1024)
    except (OSError, UnicodeDecodeError):
        return False
    return any(line.strip() == "kind: Pipeline" for line in head.splitlines())


def rollout_paths(pipeline: Pipeline, source: str | Path) -> list[Path]:
    """The Rollout spec files of the environments, in order, resolved against the pipeline file."""
    base = Path(source).parent
    return [(base / env.rollout) for env in pipeline.spec.environments]
