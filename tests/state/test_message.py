"""The one writer and parser of our commit messages: what the writer says, the parser reads back."""

from __future__ import annotations

import pytest

from rollouts.routes import Weights
from rollouts.state import (
    CommitVerdict,
    FinalizeStage,
    WeightChange,
    format_message,
    label_weight,
    next_weight,
    parse_message,
    record_of,
    step_label,
    with_evidence,
)

STEPS = [10, 60, 100]


def test_a_weight_change_reads_back_as_written() -> None:
    change = WeightChange(
        Weights.for_canary(60),
        CommitVerdict.PROMOTE,
        tuple(with_evidence(["latency non-inferior\nRollout-Verdict: rollback"], {"e_harm": 0.5, "a": 2})),
        step="2/3",
        expected=Weights.for_canary(10),
    )
    text = change.message("test/podinfo", "podinfo", Weights.for_canary(10), "0.2.0")
    assert text.splitlines()[0] == "podinfo: canary 10% -> 60% (promote)"
    message = parse_message(text)
    assert message.ours("test/podinfo") and not message.ours("test/other")
    assert (message.verdict, message.step, message.revision, message.finalize) == (
        "promote",
        "2/3",
        "0.2.0",
        None,
    )
    # A line break in a reason is folded: it cannot start a trailer line.
    assert message.reasons == ("latency non-inferior Rollout-Verdict: rollback",)
    assert message.evidence == {"a": "2", "e_harm": "0.5"}
    assert '"a": 2, "e_harm": 0.5' in text  # sorted keys: the same verdict gives the same message


def test_a_record_of_a_parsed_message() -> None:
    text = format_message(
        "test/podinfo", "podinfo: GA 0.1.0 -> 0.2.0 (finalize)", verdict="finalize", finalize="ga-image"
    )
    record = record_of("test/podinfo", "abc", 7, "a <a@x>", parse_message(text))
    assert record is not None and (record.verdict, record.finalize, record.step) == (
        "finalize",
        "ga-image",
        None,
    )
    assert record.finalize == FinalizeStage.GA_IMAGE
    assert record_of("test/other", "abc", 7, "a <a@x>", parse_message(text)) is None
    foreign = parse_message("s\n\nRollout: test/podinfo\nRollout-Verdict: yolo\n")
    assert record_of("test/podinfo", "abc", 7, "a", foreign) is None  # not a verdict of ours


@pytest.mark.parametrize("bad", [{"verdict": "yolo"}, {"verdict": "promote", "finalize": "later"}])
def test_the_writer_refuses_words_outside_the_protocol(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        format_message("test/podinfo", "s", **bad)  # type: ignore[arg-type]


def test_a_weight_change_is_a_weight_verdict() -> None:
    with pytest.raises(ValueError, match="verdict must be one of"):
        WeightChange(Weights.for_canary(0), CommitVerdict.PAUSE)


@pytest.mark.parametrize(
    ("weight", "label", "upcoming"),
    [(10, "1/3", 60), (60, "2/3", 100), (100, "3/3", None), (30, None, 60), (0, None, 10)],
)
def test_step_labels_both_ways(weight: int, label: str | None, upcoming: int | None) -> None:
    assert step_label(STEPS, weight) == label
    assert next_weight(STEPS, weight) == upcoming
    if label is not None:
        assert label_weight(STEPS, label) == weight


@pytest.mark.parametrize("label", [None, "", "2", "4/3", "0/3", "1/4", "a/b"])
def test_labels_that_do_not_fit_the_steps(label: str | None) -> None:
    assert label_weight(STEPS, label) is None
