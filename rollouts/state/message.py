"""Our commit messages: the one writer and the one parser (the format is in :mod:`rollouts.state`).

Writing is strict (:func:`format_message`, :func:`weights_subject` ...): one reason per line, the
trailers in a fixed order, evidence as sorted JSON, so the same decision gives the same message.
Reading is liberal (:func:`parse_message`): messages are also written by people and by older
versions, so reasons may be ``-``/``*`` bullets or prose, and evidence a JSON object or
``key = value`` lines under an ``Evidence:`` line.

This module must never run Git or read files: text in, text or a :class:`Message` out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from rollouts.state.errors import MessageError
from rollouts.state.vocabulary import CommitVerdict, FinalizeStage

#: Trailer keys, in the order the writer emits them.
ROLLOUT = "Rollout"
STEP = "Rollout-Step"
REVISION = "Rollout-Revision"
VERDICT = "Rollout-Verdict"
FINALIZE = "Rollout-Finalize"
APPROVAL = "Rollout-Approval"  # the branch of ours a commit waits on (approvals, protected branches)
EVIDENCE = "Evidence"

_TRAILER = re.compile(r"^(?P<key>Rollout(?:-[A-Za-z0-9-]+)?)\s*:\s*(?P<value>.*?)\s*$")
_BULLET = re.compile(r"^\s*[-*•]\s+(?P<text>.+?)\s*$")
_EVIDENCE_HEADER = re.compile(r"^\s*(?:Rollout-)?Evidence\s*:\s*(?P<rest>.*?)\s*$", re.IGNORECASE)
_PAIR = re.compile(r"(?P<key>[A-Za-z_][\w.\-/]*)\s*(?:=|:)\s*(?P<value>[^\s,;]+)")
# Other people's trailers (Signed-off-by, Co-authored-by, ...) are not reasons.
_OTHER_TRAILER = re.compile(r"^[A-Z][A-Za-z-]*-[Bb]y\s*:")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%?$|^[+-]?(?:inf|nan)$", re.IGNORECASE)


# -- writing ---------------------------------------------------------------------------------------------


def weights_subject(name: str, before: int, after: int, label: str) -> str:
    """``podinfo: canary 10% -> 60% (promote)`` (``label``: the verdict, or e.g. ``restart``)."""
    return f"{name}: canary {before}% -> {after}% ({label})"


def ga_subject(name: str, before: str, revision: str) -> str:
    """``podinfo: GA 0.1.0 -> 0.2.0 (finalize)`` (``finalize: promote-ga``, its first commit)."""
    return f"{name}: GA {before} -> {revision} (finalize)"


def record_subject(name: str, verdict: str) -> str:
    """``podinfo: pause rollout`` (an empty commit)."""
    return f"{name}: {verdict} rollout"


def approval_line(branch: str) -> str:
    """``Rollout-Approval: <branch>``: the last trailer line of a commit made on a branch of ours."""
    return f"{APPROVAL}: {branch}"


def evidence_line(evidence: Mapping[str, float]) -> str:
    """``Evidence: {json}`` with sorted keys (numpy scalars become Python numbers)."""
    return f"{EVIDENCE}: " + json.dumps({k: _plain(v) for k, v in evidence.items()}, sort_keys=True)


def with_evidence(reasons: Sequence[str], evidence: Mapping[str, float] | None) -> list[str]:
    """The reasons of a commit, plus an ``Evidence: {json}`` line when the verdict had evidence."""
    lines = list(reasons)
    if evidence:
        lines.append(evidence_line(evidence))
    return lines


def _plain(value: object) -> object:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def format_message(
    rollout_key: str,
    subject: str,
    *,
    verdict: str,
    reasons: Sequence[str] = (),
    step: str | None = None,
    revision: str | None = None,
    finalize: str | None = None,
) -> str:
    """Subject, a body with one reason per line, and the ``Rollout-*`` trailers."""
    if verdict not in tuple(CommitVerdict):
        raise MessageError(f"verdict must be one of {', '.join(CommitVerdict)}, got {verdict!r}")
    if finalize is not None and finalize not in tuple(FinalizeStage):
        raise MessageError(f"finalize must be one of {', '.join(FinalizeStage)}, got {finalize!r}")
    lines = [subject, ""]
    if reasons:
        # One line per reason: a line break in a reason would start lines that read as trailers.
        lines += [f"- {' '.join(reason.split())}" for reason in reasons] + [""]
    lines.append(f"{ROLLOUT}: {rollout_key}")
    if step:
        lines.append(f"{STEP}: {step}")
    if revision:
        lines.append(f"{REVISION}: {revision}")
    lines.append(f"{VERDICT}: {verdict}")
    if finalize:
        lines.append(f"{FINALIZE}: {finalize}")
    return "\n".join(lines) + "\n"


# -- step labels ------------------------------------------------------------------------------------------


#: The ``Rollout-Step`` label of the mirror stage: canary weight 0, GA's requests mirrored to it
#: (``analysis.mirror``), committed as a rollout's first stage, before the first weight step.
MIRROR_STEP = "mirror"
#: The ``Rollout-Step`` label of the A/B stage: canary weight 0, the match route before the default
#: route (``analysis.match``), committed as a rollout's first stage, before the first weight step.
MATCH_STEP = "match"
#: The ``Rollout-Step`` label of the preview stage (blue/green): canary weight 0, the route unchanged,
#: the analysis load sent to the preview's own Service (``analysis.previewService``), committed (an
#: empty commit: nothing in the route changes) as a rollout's first stage, before the first step.
PREVIEW_STEP = "preview"
#: Not a ``Rollout-Step`` label but a stage of the position: blue/green after its 0 -> 100 switch
#: (a ``promote`` commit at the last step) while ``postPromotionAnalysis`` judges the switched version.
SWITCHED_STAGE = "switched"
#: The stages before the first weight step, at weight 0.
PRELUDE_STEPS = (MIRROR_STEP, MATCH_STEP, PREVIEW_STEP)


def step_label(steps: Sequence[int], weight: int) -> str | None:
    """``"2/3"`` when ``weight`` is one of ``steps``."""
    return f"{steps.index(weight) + 1}/{len(steps)}" if weight in steps else None


def label_weight(steps: Sequence[int], label: str | None) -> int | None:
    """The weight of a ``Rollout-Step`` label (``"2/3"`` -> ``steps[1]``, the mirror or A/B stage
    -> 0); None when it does not fit."""
    if label in PRELUDE_STEPS:
        return 0
    try:
        index, count = (int(part) for part in (label or "").split("/"))
    except ValueError:
        return None
    return steps[index - 1] if count == len(steps) and 1 <= index <= len(steps) else None


def is_first_step(label: str | None) -> bool:
    """``"1/N"``, the mirror or the A/B stage: the label of a rollout's start (those stages come
    before ``"1/N"``, so :func:`rollouts.state.derive.derive` looks one record further back at
    ``"1/N"``)."""
    return label in PRELUDE_STEPS or (label or "").startswith("1/")


def next_weight(steps: Sequence[int], weight: int) -> int | None:
    """The first step above ``weight``; None after the last step."""
    return next((s for s in steps if s > weight), None)


# -- reading -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A commit message taken apart: subject, reasons, evidence and ``Rollout-*`` trailers."""

    subject: str
    body: str
    reasons: tuple[str, ...]
    evidence: dict[str, str]
    trailers: dict[str, str]

    def ours(self, rollout_key: str) -> bool:
        """A commit of ours for this rollout (its ``Rollout`` trailer names it)."""
        return self.trailers.get(ROLLOUT) == rollout_key

    @property
    def verdict(self) -> CommitVerdict | None:
        """The ``Rollout-Verdict``, when it is one of ours."""
        value = self.trailers.get(VERDICT)
        return CommitVerdict(value) if value in tuple(CommitVerdict) else None

    @property
    def step(self) -> str | None:
        """``Rollout-Step``."""
        return self.trailers.get(STEP)

    @property
    def revision(self) -> str | None:
        """``Rollout-Revision``."""
        return self.trailers.get(REVISION)

    @property
    def finalize(self) -> str | None:
        """``Rollout-Finalize``."""
        return self.trailers.get(FINALIZE)


def parse_message(message: str) -> Message:
    """Split a commit message into subject, reasons, evidence and ``Rollout-*`` trailers.

    Liberal on purpose (the message is written by the controller, by ``rollouts set-weight`` or by a
    person): reasons are ``-``/``*`` bullet lines, or else the body's other lines; evidence is a
    JSON object (on an ``Evidence:`` line or alone on a line) or the ``key = value`` / ``key: value``
    lines following an ``Evidence:`` line, up to the next blank line. Trailers are those of the last
    paragraph that has any, as Git reads them.
    """
    lines = message.replace("\r\n", "\n").split("\n")
    subject = lines[0].strip() if lines else ""
    body_lines = lines[1:]
    trailers: dict[str, str] = {}
    evidence: dict[str, str] = {}
    reasons: list[str] = []
    plain: list[str] = []
    # Trailers of the last paragraph that has any, as Git reads them: a "Rollout: x" line typed into
    # a reason earlier in the body must not decide whose commit this is or what its verdict was.
    paragraph: dict[str, str] = {}
    in_evidence = False
    for raw in body_lines:
        line = raw.rstrip()
        if not line.strip():
            in_evidence = False
            if paragraph:
                trailers, paragraph = paragraph, {}
            continue
        trailer = _TRAILER.match(line)
        # "- Evidence: ..." too: reasons passed through format_message arrive as bullets.
        header = _EVIDENCE_HEADER.match(_BULLET.sub(r"\g<text>", line))
        if header is not None:
            rest = header["rest"]
            if rest.startswith("{"):
                evidence.update(_json_object(rest))
            else:
                evidence.update(_pairs(rest))
                in_evidence = True
            continue
        if trailer is not None:
            paragraph.setdefault(trailer["key"], trailer["value"])
            continue
        if line.lstrip().startswith("{") and (parsed := _json_object(line.strip())):
            evidence.update(parsed)
            continue
        if in_evidence:
            bullet = _BULLET.match(line)
            pairs = _pairs(bullet["text"] if bullet else line)
            if pairs:
                evidence.update(pairs)
                continue
            in_evidence = False
        bullet = _BULLET.match(line)
        if bullet is not None:
            reasons.append(bullet["text"])
        elif not _OTHER_TRAILER.match(line):
            plain.append(line.strip())
    if paragraph:
        trailers = paragraph
    body = "\n".join(body_lines).strip("\n")
    return Message(
        subject=subject,
        body=body,
        reasons=tuple(reasons or plain),
        evidence=evidence,
        trailers=trailers,
    )


def _json_object(text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): _scalar(v) for k, v in _flatten(data)}


def _flatten(data: dict[str, object], prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _scalar(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(_scalar(v) for v in value)
    return str(value)


def _pairs(text: str) -> dict[str, str]:
    """``a=1 b=0.5`` or ``p99: 0.12`` -> pairs; only when the values are numbers (else it is prose)."""
    found = {m["key"]: m["value"] for m in _PAIR.finditer(text)}
    return {k: v for k, v in found.items() if _NUMBER.match(v)}
