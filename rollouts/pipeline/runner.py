"""The pipeline's shell: read each environment's facts out of Git, plan (pure), write the hand-overs.

One :class:`PipelineRunner` per Pipeline. A tick reads every environment (its own repository and
branch, through its own :class:`~rollouts.gitops.Workspace`), calls :func:`rollouts.pipeline.plan`,
and writes one hand-over commit per ready transition into the target's canary manifest. Nothing is
kept between ticks: everything is rebuilt from Git, so a controller killed at any moment and started
again neither repeats nor loses a hand-over (a pushed hand-over is a fact on the next read: ``done``).

A hand-over re-checks, on the head it commits on, that the target's canary manifest is still the text
the plan was made on; when someone changed it meanwhile (a person pinning a version, image
automation), their change wins and the tick reports it (:attr:`HandOver.outcome` ``yielded``).

With ``approval: merge`` the same hand-over commit goes to a branch of ours instead, with a pull or
merge request where the target's Rollout names a forge (:mod:`rollouts.pipeline.merge`); the plan is
made twice per tick, the second time with what Git and the forge say of the candidates' branches.

This module must never decide: what a transition should do is :mod:`rollouts.pipeline.plan`'s; what a
commit says is :mod:`rollouts.state.pipeline`'s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from rollouts.forge.base import Forge
from rollouts.gates.proposals import open_review
from rollouts.gitops.approvals import propose_edit
from rollouts.gitops.errors import ManifestError
from rollouts.gitops.manifest import canary_images, copy_images, revision_of
from rollouts.gitops.workspace import CommitResult, FileEdit, Workspace
from rollouts.pipeline import merge
from rollouts.pipeline.errors import PipelineSpecError
from rollouts.pipeline.plan import (
    EnvironmentFacts,
    Event,
    MergeFacts,
    Pin,
    PipelinePlan,
    Superseded,
    Transition,
    TransitionState,
    plan,
)
from rollouts.pipeline.spec import Pipeline, parse_pipeline, rollout_paths
from rollouts.spec import Rollout, SpecError, load_spec
from rollouts.state import parse_message
from rollouts.state.pipeline import (
    PIPELINE,
    PipelineRecord,
    PipelineVerdict,
    approve_subject,
    events_of,
    format_pipeline_message,
    handover_subject,
    pipeline_record_of,
)
from rollouts.yamlsafe import SPEC, YamlLimitError, load_all, read_text

log = logging.getLogger("rollouts.pipeline")


@dataclass(frozen=True)
class Stage:
    """One environment of a loaded pipeline: its name and its Rollout."""

    name: str
    rollout: Rollout


@dataclass(frozen=True)
class LoadedPipeline:
    """A Pipeline document with every environment's Rollout loaded."""

    pipeline: Pipeline
    stages: tuple[Stage, ...]
    source: str


def load_pipeline(path: str | Path, *, root: Path | None = None) -> LoadedPipeline:
    """Load the Pipeline at ``path`` and each environment's Rollout spec (relative to it).

    :class:`PipelineSpecError` naming the file and field; an environment's bad Rollout spec is named
    with the environment (``pipeline.yaml: spec.environments[1].rollout: prod.yaml: ...``). With
    ``root`` (a repository clone: discovery), every environment's file must be a regular file inside
    it: ``../`` out of the clone and symbolic links are errors, never read.
    """
    path = Path(path)
    try:  # the spec's bounds: size, depth, aliases, duplicate keys, UTF-8 (docs/limits.md)
        documents = [d for d in load_all(read_text(path, SPEC), str(path), SPEC) if d is not None]
    except YamlLimitError as exc:
        raise PipelineSpecError(str(exc)) from None
    if len(documents) != 1:
        raise PipelineSpecError(f"{path}: must hold exactly one Pipeline document, found {len(documents)}")
    pipeline = parse_pipeline(documents[0], source=str(path))
    stages: list[Stage] = []
    keys: dict[str, str] = {}
    for i, (env, spec_path) in enumerate(
        zip(pipeline.spec.environments, rollout_paths(pipeline, path), strict=True)
    ):
        field_path = f"{path}: spec.environments[{i}].rollout"
        if root is not None:
            _inside(spec_path, root, field_path)
        try:
            rollout = load_spec(spec_path)
        except SpecError as exc:
            raise PipelineSpecError(f"{field_path}: {exc}") from None
        if rollout.key in keys:
            raise PipelineSpecError(
                f"{field_path}: rollout {rollout.key} is already environment {keys[rollout.key]!r}"
            )
        keys[rollout.key] = env.name
        stages.append(Stage(env.name, rollout))
    return LoadedPipeline(pipeline, tuple(stages), str(path))


def _inside(spec_path: Path, root: Path, field_path: str) -> None:
    """``spec_path`` names a file of the repository at ``root`` with no symbolic link on the way
    (checked on the names first, then against where the names really lead)."""
    rel = os.path.relpath(os.path.abspath(spec_path), os.path.abspath(root))
    if rel == ".." or rel.startswith(("../", "/")):
        raise PipelineSpecError(f"{field_path}: {spec_path.name} is outside the repository; not read")
    if spec_path.resolve() != root.resolve() / rel:
        raise PipelineSpecError(
            f"{field_path}: {rel} is (or is under) a symbolic link; Rollout specs must be regular files"
        )


@dataclass(frozen=True)
class HandOver:
    """What a tick did for one ready transition."""

    transition: Transition
    # pushed: on the watched branch; proposed: on a branch of ours (approval: merge), or its request
    # opened; superseded: an older revision's request closed; done: nothing to write; yielded:
    # someone else's change wins.
    outcome: Literal["pushed", "proposed", "superseded", "done", "yielded"]
    sha: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class PipelineTick:
    """One tick: the plan it made, and the hand-overs it wrote (or yielded)."""

    plan: PipelinePlan
    facts: tuple[EnvironmentFacts, ...]
    handovers: tuple[HandOver, ...] = ()
    # The canary manifest text each target's facts were read from (the hand-over re-checks it).
    manifests: Mapping[str, str] = field(default_factory=dict)


class PipelineRunner:
    """Reads, plans and hands over for one pipeline. ``workspaces``: one per environment name."""

    def __init__(
        self,
        loaded: LoadedPipeline,
        workspaces: Mapping[str, Workspace],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        forges: Mapping[str, Forge | None] | None = None,
    ) -> None:
        missing = [s.name for s in loaded.stages if s.name not in workspaces]
        if missing:
            raise ValueError(f"no workspace for environment(s) {', '.join(missing)}")
        self.loaded = loaded
        self.workspaces = workspaces
        self.clock = clock
        # approval: merge: the forge of each target (its Rollout's spec.approval.forge), if any.
        self.forges: Mapping[str, Forge | None] = forges or {}

    @classmethod
    def for_pipeline(cls, loaded: LoadedPipeline, *, cache_dir: Path | None = None) -> PipelineRunner:
        """The runner of ``loaded`` with one :class:`~rollouts.gitops.Workspace` per environment
        (its Rollout's ``spec.git``), cloned under ``cache_dir``."""
        from rollouts.gates.step import forge_of

        workspaces = {s.name: Workspace.for_spec(s.rollout, cache_dir=cache_dir) for s in loaded.stages}
        forges = {
            s.name: forge_of(s.rollout.spec.approval)
            for s in loaded.stages
            if loaded.pipeline.environment(s.name).promotion.approval == "merge"
        }
        return cls(loaded, workspaces, forges=forges)

    def close(self) -> None:
        """Stop the Git helper processes of the workspaces that can be closed."""
        for workspace in self.workspaces.values():
            close = getattr(workspace, "close", None)
            if callable(close):
                close()

    @property
    def key(self) -> str:
        """The pipeline's ``namespace/name``."""
        return self.loaded.pipeline.key

    # -- reading --------------------------------------------------------------------------------------

    def read(self) -> tuple[list[EnvironmentFacts], dict[str, str]]:
        """Every environment's facts, in pipeline order, and the canary manifest text of each."""
        facts: list[EnvironmentFacts] = []
        manifests: dict[str, str] = {}
        for stage in self.loaded.stages:
            env_facts, text = self._facts(stage)
            facts.append(env_facts)
            manifests[stage.name] = text
        return facts, manifests

    def _facts(self, stage: Stage) -> tuple[EnvironmentFacts, str]:
        ws = self.workspaces[stage.name]
        rollout = stage.rollout
        records = ws.records(rollout)  # fetches
        canary_path = rollout.spec.canary.path
        text = ws.show("HEAD", canary_path)
        images = canary_images(text, canary_path)
        promote_ga = rollout.spec.finalize.action == "promote-ga"
        events: list[Event] = []
        for event in events_of(records, promote_ga=promote_ga):
            finalized_images: dict[str, str] = {}
            if event.kind == "finalize":
                finalized_images = self._images_at(ws, event.sha, canary_path, promote_ga, rollout)
            events.append(
                Event(
                    revision=event.revision,
                    kind=event.kind,  # type: ignore[arg-type]  # start | finalize | rollback
                    at=event.at,
                    sha=event.sha,
                    reason=event.reason,
                    images=finalized_images,
                    evidence=event.reasons if event.kind == "finalize" else (),
                )
            )
        ours = self._pipeline_records(ws, stage.name)
        events += [
            Event(revision=r.revision, kind="handover", at=r.at, sha=r.sha)
            for r in ours
            if r.verdict is PipelineVerdict.HANDOVER
        ]
        events.sort(key=lambda e: e.at)
        approvals = frozenset(r.revision for r in ours if r.verdict is PipelineVerdict.APPROVE)
        return (
            EnvironmentFacts(
                name=stage.name,
                canary_revision=revision_of(images),
                canary_images=images,
                events=tuple(events),
                approvals=approvals,
                pin=self._pin(ws, canary_path, revision_of(images)),
            ),
            text,
        )

    @staticmethod
    def _images_at(
        ws: Workspace, sha: str, canary_path: str, promote_ga: bool, rollout: Rollout
    ) -> dict[str, str]:
        """The images the environment finalized: the canary manifest at the finalize commit (with
        ``promote-ga``, the GA manifest, which then holds the canary's images)."""
        path = rollout.spec.finalize.ga_path if promote_ga and rollout.spec.finalize.ga_path else canary_path
        try:
            return canary_images(ws.show(sha, path), path)
        except (ManifestError, SpecError, ValueError) as exc:
            log.warning("%s: cannot read the images finalized in %s: %s", rollout.key, sha[:12], exc)
            return {}

    def _pipeline_records(self, ws: Workspace, environment: str) -> list[PipelineRecord]:
        found = []
        for entry in ws.log(grep=f"{PIPELINE}: {self.key}"):
            record = pipeline_record_of(
                self.key, entry.sha, entry.timestamp, entry.author, parse_message(entry.message)
            )
            if record is not None and record.environment == environment:
                found.append(record)
        return found

    def _pin(self, ws: Workspace, canary_path: str, revision: str) -> Pin | None:
        """The newest commit that changed the canary manifest, unless it is one of our hand-overs."""
        newest = ws.log(path=canary_path, max_count=1)
        if not newest:
            return None
        entry = newest[0]
        if pipeline_record_of(
            self.key, entry.sha, entry.timestamp, entry.author, parse_message(entry.message)
        ):
            return None
        return Pin(
            sha=entry.sha,
            at=datetime.fromtimestamp(entry.timestamp, UTC),
            revision=revision,
            author=entry.author,
        )

    # -- one tick -------------------------------------------------------------------------------------

    def assess(self) -> PipelineTick:
        """Read and plan, writing nothing: what ``rollouts status PIPELINE`` prints. With
        ``approval: merge``, the plan is made again with the merge facts of its candidates and
        of the other branches of ours (superseded ones)."""
        facts, manifests = self.read()
        now = self.clock()
        first = plan(self.loaded.pipeline, facts, now)
        merges, others = self._merges(first)
        result = plan(self.loaded.pipeline, facts, now, merges, others) if merges or others else first
        return PipelineTick(plan=result, facts=tuple(facts), manifests=manifests)

    def _merges(
        self, first: PipelinePlan
    ) -> tuple[dict[tuple[str, str], MergeFacts], dict[str, list[MergeFacts]]]:
        """The merge facts of each ``approval: merge`` candidate still on its way, and of every
        other branch of ours on its target's remote."""
        found: dict[tuple[str, str], MergeFacts] = {}
        others: dict[str, list[MergeFacts]] = {}
        for t in first.transitions:
            promotion = self.loaded.pipeline.environment(t.target).promotion
            if promotion.approval != "merge" or t.revision is None:
                continue
            stage = self._stage(t.target)
            ws, forge = self.workspaces[t.target], self.forges.get(t.target)
            branch = merge.branch_of(self.key, t.target, stage.rollout, t.revision)
            prefix = merge.prefix_of(self.key, t.target, stage.rollout)
            listed = merge.proposals(ws, forge, prefix, self.key, skip=branch)
            if listed:
                others[t.target] = listed
            if t.state in (TransitionState.DONE, TransitionState.BLOCKED, TransitionState.PINNED):
                continue
            found[(t.target, t.revision)] = merge.merge_facts(ws, forge, branch, self.key)
        return found, others

    def tick(self) -> PipelineTick:
        """Read, plan, and write the hand-over of every ready transition (``approval: merge``: its
        branch and request; an awaiting one's request when the forge had none)."""
        assessed = self.assess()
        result, facts, manifests = assessed.plan, assessed.facts, assessed.manifests
        for stop in result.out_of_order:
            log.warning("%s: out of order: %s", self.key, stop.reason)
        handovers = tuple(self._supersede(s, result) for s in result.superseded)
        handovers += tuple(self._hand_over(t, manifests[t.target], facts) for t in result.ready)
        handovers += tuple(
            self._request(t, t.branch, None)
            for t in result.transitions
            if t.state is TransitionState.AWAITING_APPROVAL
            and t.via_branch
            and t.review_url is None
            and self.forges.get(t.target) is not None
        )
        return PipelineTick(plan=result, facts=facts, handovers=handovers, manifests=manifests)

    def _supersede(self, superseded: Superseded, result: PipelinePlan) -> HandOver:
        """Close an older revision's request and delete its branch (a newer one passed)."""
        done = merge.close_superseded(
            self.workspaces[superseded.target], self.forges.get(superseded.target), superseded, self.key
        )
        log.info("%s: %s (%s)", self.key, superseded.reason, done)
        transition = next(t for t in result.transitions if t.target == superseded.target)
        return HandOver(transition, "superseded", detail=f"{superseded.reason}: {done}")

    def _stage(self, name: str) -> Stage:
        return next(s for s in self.loaded.stages if s.name == name)

    def _hand_over(
        self, transition: Transition, planned_on: str, facts: Sequence[EnvironmentFacts]
    ) -> HandOver:
        assert transition.revision is not None
        stage = self._stage(transition.target)
        ws = self.workspaces[stage.name]
        path = stage.rollout.spec.canary.path
        revision, images = transition.revision, dict(transition.images)
        before = next(f.canary_revision for f in facts if f.name == stage.name)
        yielded: list[str] = []
        reasons = [_passed(transition), transition.reason]

        def edit(read: Callable[[str], str | None]) -> FileEdit | None:
            text = read(path)
            if text is None:
                raise ManifestError(f"{path}: missing in {stage.name}'s repository")
            if revision_of(canary_images(text, path)) == revision:
                return None  # already there (a restart after a push, or someone did it)
            if text != planned_on:
                yielded.append(f"{stage.name}'s canary manifest changed while handing over {revision}")
                return None  # someone changed it since we planned: theirs wins
            message = format_pipeline_message(
                self.key,
                handover_subject(
                    stage.rollout.metadata.name, stage.name, before, revision, transition.source
                ),
                verdict=PipelineVerdict.HANDOVER,
                environment=stage.name,
                revision=revision,
                reasons=reasons,
                source=transition.source,
                source_commit=transition.evidence_sha or None,
            )
            return FileEdit(message, {path: copy_images(text, images, path)})

        sha: str | None
        if transition.via_branch:
            # approval: merge: the same commit, on a branch of ours; the watched branch is untouched.
            branch = merge.branch_of(self.key, stage.name, stage.rollout, revision)
            sha = propose_edit(ws, edit, branch=branch).sha
        else:
            sha = ws.commit_edit(edit).sha
        if yielded:
            log.warning("%s: %s: it wins, not overwritten", self.key, yielded[-1])
            return HandOver(transition, "yielded", detail=yielded[-1])
        if sha is None:
            return HandOver(transition, "done", detail=f"{stage.name} has {revision} already")
        if transition.via_branch:
            log.info(
                "%s: proposed %s from %s to %s on branch %s (%s)",
                self.key,
                revision,
                transition.source,
                stage.name,
                branch,
                sha[:12],
            )
            return self._request(transition, branch, sha, reasons)
        log.info(
            "%s: handed %s over from %s to %s in %s",
            self.key,
            revision,
            transition.source,
            stage.name,
            sha[:12],
        )
        return HandOver(transition, "pushed", sha=sha)

    def _request(
        self, transition: Transition, branch: str, sha: str | None, reasons: Sequence[str] = ()
    ) -> HandOver:
        """The pull or merge request of a proposed hand-over (found, else opened; no forge: none)."""
        stage = self._stage(transition.target)
        forge = self.forges.get(stage.name)
        spec = stage.rollout.spec
        # Found, else opened (the forge's race rule: never a second one); None without a forge.
        review = open_review(
            forge,
            branch=branch,
            base=spec.git.branch,
            title=f"{stage.rollout.metadata.name}: hand {transition.revision} over from "
            f"{transition.source} to {stage.name}",
            body=merge.request_body(self.key, transition, reasons or [_passed(transition)]),
            auto_merge=bool(spec.approval.forge and spec.approval.forge.auto_merge),
            key=self.key,
        )
        where = review.url if review else f"branch {branch}"
        return HandOver(transition, "proposed", sha=sha, detail=f"merge {where} to hand it over")

    # -- people ---------------------------------------------------------------------------------------

    def approve(self, environment: str, revision: str, reasons: Sequence[str] = ()) -> CommitResult:
        """``rollouts approve``: an empty commit approving ``revision`` for ``environment`` (a no-op
        when it is approved already). ``ValueError`` for an unknown environment, the first one, or
        one whose approval is a merge (a record would approve nothing there)."""
        names = [s.name for s in self.loaded.stages]
        if environment not in names:
            raise ValueError(f"{self.loaded.source}: no environment {environment!r} (has {', '.join(names)})")
        if environment == names[0]:
            raise ValueError(f"{environment} is the first environment: its revisions need no approval")
        if self.loaded.pipeline.environment(environment).promotion.approval == "merge":
            stage = self._stage(environment)
            branch = merge.branch_of(self.key, environment, stage.rollout, revision)
            raise ValueError(
                f"{environment} takes its approval as a merge (approval: merge): merge branch {branch} "
                "(or its pull request) instead"
            )
        ws = self.workspaces[environment]
        stage = self.loaded.stages[names.index(environment)]

        ws.records(stage.rollout)  # fetch: the approvals below are read on the remote's head
        approved = {
            r.revision
            for r in self._pipeline_records(ws, environment)
            if r.verdict is PipelineVerdict.APPROVE
        }
        message = format_pipeline_message(
            self.key,
            approve_subject(stage.rollout.metadata.name, environment, revision),
            verdict=PipelineVerdict.APPROVE,
            environment=environment,
            revision=revision,
            reasons=reasons,
        )

        # Checked before the change loop (reading the log there would take the workspace lock twice):
        # two people approving at the same moment leave two approval records, which mean the same.
        def edit(_read: Callable[[str], str | None]) -> FileEdit | None:
            return None if revision in approved else FileEdit(message, {})

        return ws.commit_edit(edit)


def _passed(transition: Transition) -> str:
    """``0.2.0 passed staging: finalized in 3f9c2a1b7d0e at 2026-12-01 10:00 UTC``."""
    return (
        f"{transition.revision} passed {transition.source}: finalized in {transition.evidence_sha[:12]} "
        f"at {_clock(transition.finalized_at)}"
    )


def _clock(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else "an unknown time"
