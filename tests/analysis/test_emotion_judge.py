"""`emotau analyze --emotion-judge`: the scripted judge's emotion labels, the second
manipulation check built on them, its agreement with the lexicon, and the judge's failures.

Numbers are recomputed here from the raw shard lines and the labelled message table.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pandas as pd
import pytest

import emotau as api
from emotau.analysis.emotion import (
    JUDGE_RUBRIC,
    detected_emotion,
    label_with_judge,
    parse_judge_answer,
    score_message,
)
from emotau.analysis.labellers import judge_prompt as _judge_prompt
from emotau.analysis.report import analyze, judge_agreement
from emotau.core._chat import ChatRequest
from emotau.core._errors import UserError
from emotau.emotion import INTENSITY_CUTS as JUDGE_INTENSITY_CUTS
from emotau.scripted._models import ScriptedJudge
from helpers import all_lines, emotau_here, mock_server, mock_stats

pytest.importorskip("matplotlib")
pytest.importorskip("pyarrow")

FURIOUS = "This is appalling and I am FURIOUS!! Stop making excuses!"
CALM = "I would like to change my booking to Tuesday, please."
CONFUSED = "Sorry, I don't understand what that means."


def ask(judge: ScriptedJudge, texts: list[str], count: int | None = None) -> str:
    md = {"role": "judge", "purpose": "emotion_labels", "count": count or len(texts)}
    prompt = _judge_prompt(JUDGE_RUBRIC, texts)
    r = asyncio.run(
        judge.complete(ChatRequest([{"role": "user", "content": prompt}], None, None, md))
    )
    return r.content or ""


def expected(text: str) -> tuple[str, int]:
    """The documented rule, written out again: lexicon label; intensity from the top score."""
    scores = score_message(text, valence=False)
    label = detected_emotion(scores)
    top = max(scores[e] for e in ("frustration", "anxiety", "anger", "confusion"))
    if label == "none":
        return "none", 0
    return label, 1 if top < JUDGE_INTENSITY_CUTS[0] else 2 if top < JUDGE_INTENSITY_CUTS[1] else 3


# ------------------------------------------------------------------ the scripted judge
def test_scripted_judge_labels_each_message_from_its_text() -> None:
    judge = ScriptedJudge()
    answer = ask(judge, [FURIOUS, CALM, CONFUSED])
    data = json.loads(answer)  # plain JSON, no fence
    assert [x["id"] for x in data["labels"]] == [1, 2, 3]
    labels = parse_judge_answer(answer, 3)
    assert labels[0][0] == "anger" and labels[0][1] >= 2
    assert labels[1] == ("none", 0)
    assert labels[2][0] == "confusion" and labels[2][1] >= 1
    assert labels == [expected(t) for t in (FURIOUS, CALM, CONFUSED)]
    # a function of the text, not of the position: the same messages reversed
    assert parse_judge_answer(ask(judge, [CONFUSED, CALM, FURIOUS]), 3) == labels[::-1]
    # the count is respected: only messages 1..count are labelled
    assert parse_judge_answer(ask(judge, [FURIOUS, CALM, CONFUSED], count=2), 2) == labels[:2]
    # text that looks like JSON, quotes and newlines survive the prompt's JSON lines
    tricky = 'He said "{\\"id\\": 9}"\nand I am FURIOUS about it'
    assert parse_judge_answer(ask(judge, [tricky]), 1) == [expected(tricky)]


def test_scripted_judge_through_label_with_judge_and_missing_ids() -> None:
    texts = [FURIOUS, CALM, CONFUSED, FURIOUS]
    out = asyncio.run(label_with_judge(ScriptedJudge(), texts, batch_size=2))
    got = list(zip(out["judge_emotion"], out["judge_intensity"], strict=True))
    assert got == [expected(t) for t in texts]
    # a prompt without message 2 gets no label for it, so the caller's parser refuses it
    judge = ScriptedJudge()
    prompt = _judge_prompt(JUDGE_RUBRIC, [FURIOUS, CALM]).replace('{"id": 2', '{"id": 7')
    md = {"role": "judge", "purpose": "emotion_labels", "count": 2}
    r = asyncio.run(
        judge.complete(ChatRequest([{"role": "user", "content": prompt}], None, None, md))
    )
    with pytest.raises(ValueError, match="no label for message"):
        parse_judge_answer(r.content, 2)
    # other purposes are unchanged
    yes = asyncio.run(judge.complete(ChatRequest([{"role": "user", "content": "ok?"}])))
    assert yes.content == "YES"


def test_agreement_and_kappa_by_hand() -> None:
    df = pd.DataFrame(
        {
            "variant": ["a", "a", "a", "a", "b", "b", "b"],
            "detected": ["anger", "anger", "none", "none", "none", "none", "none"],
            "judge_emotion": ["anger", "none", "none", "none", "none", "none", None],
        }
    )
    t = judge_agreement(df, ["b", "a"]).set_index("variant")
    assert list(t.index) == ["all", "b", "a"]
    # a: p_o = 3/4; shares lexicon anger .5 none .5, judge anger .25 none .75 -> p_e = .5
    assert t.loc["a", "messages"] == 4 and t.loc["a", "agree"] == 3
    assert t.loc["a", "kappa"] == pytest.approx((0.75 - 0.5) / (1 - 0.5))
    # b: one label throughout on both sides (the unlabelled row is left out): p_e = 1
    assert t.loc["b", "messages"] == 2 and t.loc["b", "agreement"] == 1.0
    assert math.isnan(t.loc["b", "kappa"])
    # all: 6 messages, 5 agree; lexicon anger 2/6, judge anger 1/6 -> p_e = 2/36 + 20/36
    p_e = (2 / 6) * (1 / 6) + (4 / 6) * (5 / 6)
    assert t.loc["all", "kappa"] == pytest.approx((5 / 6 - p_e) / (1 - p_e))


# ------------------------------------------------------------------ in process
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("runs")
    opts = dict(tasks=3, num_trials=1, variants=["control", "anger", "confusion"])
    return api.run(experiment_name="judged", out=str(tmp), **opts).path


def test_analyze_with_the_scripted_judge(run_dir, tmp_path) -> None:
    out = tmp_path / "rep"
    a = analyze(run_dir, out, n_boot=200, emotion_judge=True)
    m = a.messages
    # every message's label is the scripted judge's rule applied to the raw text
    texts = [
        t["content"] or "" for r in all_lines(run_dir) for t in r["turns"] if t["role"] == "user"
    ]
    labelled = m[m["judge_emotion"].notna()]
    assert len(labelled) == len(texts)
    assert set(zip(labelled["judge_emotion"], labelled["judge_intensity"], strict=True)) == {
        expected(t) for t in texts
    }
    # the anger arm's expression rate and mean score, by hand from the labelled table
    anger = m[m["variant"] == "anger"]
    by_ep = anger.groupby(["task_id", "trial"])
    rate = by_ep["judge_emotion"].agg(lambda s: (s == "anger").any()).mean()
    score = anger["judge_intensity"].astype(float) / 3 * (anger["judge_emotion"] == "anger")
    mean_score = score.groupby([anger["task_id"], anger["trial"]]).mean().mean()
    ex = a.manipulation_judge["expression"].set_index("variant")
    assert ex.loc["anger", "rate"] == pytest.approx(rate)
    inten = a.manipulation_judge["intensity"].set_index("emotion")
    assert inten.loc["anger", "mean_score"] == pytest.approx(mean_score)
    # ... which is not the lexicon's number (the section is not a copy of the other one)
    assert inten.loc["anger", "mean_score"] != pytest.approx(
        a.manipulation["intensity"].set_index("emotion").loc["anger", "mean_score"]
    )
    # the scripted judge is the lexicon under another name: full agreement
    agree = a.manipulation_judge["agreement"].set_index("variant")
    assert agree.loc["all", "messages"] == len(texts) and agree.loc["all", "agreement"] == 1.0
    assert a.judge["synthetic"] and a.judge["model"] == "scripted" and a.judge["calls"] >= 1
    # the report: its own section, SYNTHETIC there too, its tables, labels in emotion.parquet
    md = (out / "summary.md").read_text()
    section = md.split("## Manipulation check (LLM judge)")[1].split("\n## ")[0]
    assert "**Warning:** SYNTHETIC" in section
    assert "Agreement with the lexicon" in section and "Expression rate" in section
    assert 'id="manipulation-judge"' in (out / "report.html").read_text()
    for name in ("expression", "confusion_counts", "intensity", "stability", "agreement"):
        assert (out / "tables" / f"manipulation_judge_{name}.csv").is_file(), name
    csv = pd.read_csv(out / "tables" / "manipulation_judge_expression.csv").set_index("variant")
    assert csv.loc["anger", "rate"] == pytest.approx(rate)
    counts = pd.read_csv(out / "tables" / "manipulation_judge_confusion_counts.csv", index_col=0)
    assert counts.loc["anger", "anger"] == len(by_ep)
    assert {"judge_emotion", "judge_intensity"} <= set(pd.read_parquet(out / "emotion.parquet"))
    # without the flag: no section, no text kept, nothing from the judge
    plain = analyze(run_dir, n_boot=200)
    assert plain.manipulation_judge == {} and "judge_emotion" not in plain.messages
    assert "text" not in plain.messages and "text" not in m


def test_judge_labels_drive_the_section(run_dir, monkeypatch) -> None:
    """A judge that sees no emotion anywhere: the judge's check flags every arm, the
    lexicon's does not, and agreement drops."""
    monkeypatch.setattr("emotau.scripted._models.lexicon_label", lambda text: ("none", 0))
    a = analyze(run_dir, n_boot=200, emotion_judge=True)
    ex = a.manipulation_judge["expression"]
    assert (ex["rate"] == 0).all() and ex["flag"].all()
    assert not a.manipulation["expression"]["flag"].any()
    assert any(w.startswith("manipulation check (LLM judge): the customer in") for w in a.warnings)
    assert a.manipulation_judge["agreement"].set_index("variant").loc["all", "agreement"] < 1


def test_unusable_answers_are_one_user_error_and_no_report(run_dir, tmp_path, monkeypatch):
    async def says_yes(self, request):  # the scripted judge before it knew emotion labels
        from emotau.core._chat import ChatResponse

        return ChatResponse("YES")

    monkeypatch.setattr(ScriptedJudge, "complete", says_yes)
    out = tmp_path / "new" / "rep"
    with pytest.raises(UserError, match="no usable emotion labels") as err:
        analyze(run_dir, out, n_boot=200, emotion_judge=True)
    assert "\n" not in str(err.value) and "judge model 'scripted'" in str(err.value)
    assert not (tmp_path / "new").exists()  # the directories it made are gone again
    with pytest.raises(UserError, match="in-process scripted model"):
        analyze(run_dir, emotion_judge=True, judge_base_url="http://127.0.0.1:9/v1")
    with pytest.raises(UserError, match="options of --emotion-judge"):
        analyze(run_dir, judge_base_url="http://127.0.0.1:9/v1")


# ------------------------------------------------------------------ over HTTP
@pytest.fixture(scope="module")
def http_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("http")
    # the run's own retry policy is what the judge uses; short waits keep the test fast
    config = tmp / "fast-retries.toml"
    config.write_text("[retry]\nbase_delay = 0.01\nmax_delay = 0.02\n")
    with mock_server() as url:
        r = emotau_here(
            "run", "-c", str(config), "--out", str(tmp), "--base-url", url,
            "--model", "scripted-agent", "--user-model", "scripted-user",
            "--judge-model", "scripted-judge", "--tasks", "3", "--num-trials", "1",
            "--variants", "control,anger,confusion", "--progress", "none",
            "--experiment-name", "http",
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return tmp / "http"


def test_cli_emotion_judge_through_the_mock_server(http_run, tmp_path) -> None:
    out = tmp_path / "rep"
    # the run's mock server is gone: the judge moves to a new one
    with mock_server() as url:
        r = emotau_here(
            "analyze", str(http_run), "--out", str(out), "--bootstrap", "200",
            "--emotion-judge", "--judge-base-url", url,
        )  # fmt: skip
        requests = mock_stats(url)["requests"]
    assert r.returncode == 0, r.stderr
    assert "manipulation check (LLM judge): SYNTHETIC" in r.stderr
    md = (out / "summary.md").read_text()
    section = md.split("## Manipulation check (LLM judge)")[1].split("\n## ")[0]
    assert f"`scripted-judge` at {url}" in section
    assert "**Warning:** SYNTHETIC" in section  # the mock server's replies say synthetic
    assert f"({requests} call" in section and requests >= 1
    ex = pd.read_csv(out / "tables" / "manipulation_judge_expression.csv").set_index("variant")
    emo = pd.read_parquet(out / "emotion.parquet")
    anger = emo[emo["variant"] == "anger"]
    rate = anger.groupby("task_id")["judge_emotion"].agg(lambda s: (s == "anger").any()).mean()
    assert ex.loc["anger", "rate"] == pytest.approx(rate)

    # an unreachable judge: one line, status 2, and the report above is left as it was
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for target in (out, tmp_path / "other"):
        r = emotau_here(
            "analyze", str(http_run), "--out", str(target), "--emotion-judge",
            "--judge-base-url", "http://127.0.0.1:9/v1",
        )  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("emotau: error: --emotion-judge: judge model 'scripted-judge'")
        assert "http://127.0.0.1:9/v1" in r.stderr and "cannot connect" in r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and r.stdout == ""
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "other").exists()


def test_judge_endpoint_flags_are_checked_before_any_work(http_run, tmp_path, monkeypatch):
    monkeypatch.delenv("EMOTAU_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(UserError, match=r"'EMOTAU_TEST_NO_SUCH_KEY' .* is not set"):
        analyze(
            http_run, tmp_path / "rep", emotion_judge=True, api_key_env="EMOTAU_TEST_NO_SUCH_KEY"
        )
    with pytest.raises(UserError, match="must look like"):
        analyze(http_run, tmp_path / "rep", emotion_judge=True, judge_base_url="nonsense")
    assert not (tmp_path / "rep").exists()
