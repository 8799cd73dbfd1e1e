"""Emotion labellers: the registry, the built-ins as entry points, the table they fill, and
what a wrong labeller gets (one line, no report)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pandas as pd
import pytest

import emotau as api
from emotau.analysis.labellers import (
    LABELLERS,
    EmotionLabeller,
    JudgeLabeller,
    LexiconLabeller,
    label_messages,
)
from emotau.analysis.report import analyze
from emotau.core import UserError
from emotau.emotion import lexicon_label
from helpers import emotau

pytest.importorskip("matplotlib")
pytest.importorskip("pyarrow")

TEXTS = [
    "This is appalling and I am FURIOUS!!",
    "Change it to Tuesday, please.",
    "What?? I'm lost.",
]


def test_built_ins_are_entry_points() -> None:
    assert {"lexicon", "judge"} <= set(LABELLERS.names())
    assert LABELLERS.get("lexicon") is LexiconLabeller and LABELLERS.get("judge") is JudgeLabeller
    assert LABELLERS.source("judge").startswith("emotau.analysis.labellers._judge:JudgeLabeller")
    with pytest.raises(UserError, match=r"unknown emotion labeller 'nope'; allowed: .*judge"):
        LABELLERS.get("nope")


def test_lexicon_labeller_fills_the_table_once_per_distinct_text() -> None:
    seen: list[list[str]] = []

    class Counting(LexiconLabeller):
        async def label(self, texts, judge, concurrency):
            seen.append(list(texts))
            return await super().label(texts, judge, concurrency)

    texts = [*TEXTS, TEXTS[0], "   "]
    out = asyncio.run(label_messages(Counting(), texts))
    assert seen == [TEXTS]  # distinct, blank left out
    got = list(zip(out["judge_emotion"], out["judge_intensity"], strict=True))
    assert got == [*(lexicon_label(t) for t in TEXTS), lexicon_label(TEXTS[0]), ("none", 0)]
    assert got[0][0] == "anger" and got[1] == ("none", 0) and got[2][0] == "confusion"
    anger = out["anger_score"].to_numpy()
    assert anger[0] == pytest.approx(got[0][1] / 3) and anger[1] == 0
    assert list(out["detected"][:3]) == ["anger", "none", "confusion"]
    assert out["valence"].isna().all()


class Wrong(EmotionLabeller):
    name = "wrong"

    def __init__(self, answer) -> None:
        self.answer = answer

    async def label(self, texts, judge, concurrency):
        return self.answer(texts)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (lambda t: [], "gave 0 labels for 3 messages"),
        (lambda t: [("joy", 2)] * len(t), "gave ('joy', 2)"),
        (lambda t: [("anger", 0)] * len(t), "intensity 0 is 'none' only"),
        (lambda t: [("anger", 4)] * len(t), "intensity 0 is 'none' only"),
        (lambda t: ["anger"] * len(t), "gave 'anger'"),
    ],
)
def test_bad_labels_are_refused(answer, problem) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        asyncio.run(label_messages(Wrong(answer), TEXTS))


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="no 'text' column"):
        asyncio.run(label_messages(LexiconLabeller(), pd.DataFrame({"x": [1]})))
    with pytest.raises(ValueError, match="not one string"):
        asyncio.run(label_messages(LexiconLabeller(), "hello"))
    with pytest.raises(ValueError, match="needs the run's judge model"):
        asyncio.run(label_messages(JudgeLabeller(), TEXTS))
    with pytest.raises(ValueError, match="batch_size"):
        JudgeLabeller(batch_size=0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("runs")
    opts = dict(tasks=2, num_trials=1, variants=["control", "anger"])
    return api.run(experiment_name="labelled", out=str(tmp), **opts).path


def test_analyze_with_the_lexicon_labeller(run_dir, tmp_path) -> None:
    a = analyze(run_dir, tmp_path / "rep", n_boot=100, labeller="lexicon")
    assert a.judge["labeller"] == "lexicon" and "model" not in a.judge
    labelled = a.messages[a.messages["judge_emotion"].notna()]
    assert (labelled["judge_emotion"] == labelled["detected"]).all()  # the lexicon, twice
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert "## Manipulation check (lexicon labels)" in md
    assert "The emotion labeller `lexicon` labelled each of the" in md


def test_wrong_combinations_are_one_line(run_dir, tmp_path) -> None:
    with pytest.raises(UserError, match="--emotion-judge is --labeller judge"):
        analyze(run_dir, emotion_judge=True, labeller="lexicon")
    with pytest.raises(UserError, match="are options of --emotion-judge"):
        analyze(run_dir, labeller="lexicon", judge_base_url="http://127.0.0.1:9/v1")
    r = emotau("analyze", str(run_dir), "--labeller", "nope", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().startswith("emotau: error: unknown emotion labeller 'nope'; allowed:")
    assert not (tmp_path / "x").exists()
