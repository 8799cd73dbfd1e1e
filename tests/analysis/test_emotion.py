"""Manipulation check: the lexicon scorer, the episode table, the check, the LLM judge."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import emotau
from emotau.analysis.emotion import (
    DEFAULT_THRESHOLD,
    EMOTIONS,
    JUDGE_RUBRIC,
    LABELS,
    SCORE_COLUMNS,
    detected_emotion,
    label_with_judge,
    manipulation_check,
    parse_judge_answer,
    score_episodes,
    score_message,
)
from emotau.core._chat import ChatRequest, ChatResponse, ModelClient
from emotau.core._errors import InfraError

HOTEL_SAMPLE = Path("/tmp/samples/hotel-demo")

# Hand-written customer messages (not the scripted user's phrases). Each class has 18.
SENTENCES: dict[str, list[str]] = {
    "anger": [
        "This is absolutely disgraceful, you people charged me twice and nobody cares.",
        "I am furious that my room was given away to someone else.",
        "Your staff were rude and incompetent from start to finish.",
        "How dare you cancel my booking without telling me!",
        "This is completely unacceptable and I expect a full refund.",
        "Don't give me excuses, you messed up my reservation and I want it fixed.",
        "What a ridiculous, outrageous policy. It's a scam.",
        "I'm so angry right now, this hotel is a joke.",
        "You lied to me on the phone last week, shame on you.",
        "Worst service I've ever had, I'm going to leave a one-star review.",
        "You charged my card for a room I never got. Disgusting.",
        "I want to know who is responsible for this mess, I'm livid.",
        "Stop reading me the policy. It's your mistake, not mine, and you will fix it.",
        "Unbelievable. Absolutely pathetic customer service.",
        "I am NOT happy. Your company ruined my anniversary trip.",
        "This is theft, plain and simple. Refund me now.",
        "You should be ashamed of how you treat loyal guests.",
        "I'm outraged that nobody bothered to call me.",
    ],
    "frustration": [
        "I've already given you my booking number twice.",
        "How many times do I have to explain this?",
        "This is taking forever, can we just get it done?",
        "Ugh, I'm so tired of going round in circles with this.",
        "I've been waiting on hold for an hour and it's still not fixed.",
        "As I said before, I just want to change the dates.",
        "This whole process is such a waste of time.",
        "Honestly I'm fed up, every step needs another form.",
        "Again? I literally just answered that question.",
        "Why is it so hard to do one simple change? It's exhausting.",
        "Come on, this is the third time I'm typing my address.",
        "Can we speed this up please, I don't have all day.",
        "Still nothing? I asked for this an hour ago.",
        "I keep getting asked the same questions over and over.",
        "Ok... fine. Whatever gets this done.",
        "Seriously, how long does it take to move one night?",
        "I'm getting really impatient with this.",
        "This is so annoying, the website failed again.",
    ],
    "anxiety": [
        "I'm really worried that I'll lose my deposit if I cancel now.",
        "What if the payment doesn't go through and I end up without a room?",
        "Sorry, I'm just nervous about this, are you sure it's been updated?",
        "Please hurry, my flight leaves tonight and I'm scared I won't have a room.",
        "Could you double-check that nothing else was cancelled by mistake?",
        "I'm anxious that I'll be charged twice for the same night.",
        "Is everything okay? It's been a while and I'm getting stressed.",
        "I'm terrified I've messed something up with my booking.",
        "Can you reassure me that my reservation is still valid?",
        "This is urgent, I need to know my card is safe.",
        "I'm a bit worried the hotel won't have my booking when I arrive.",
        "Please, I really need this sorted today, I'm panicking a little.",
        "Will I get in trouble with my company if the invoice is wrong?",
        "I hope nothing goes wrong, this trip is really important to me.",
        "Are you certain the room is still held for me? I'm nervous.",
        "I'm afraid I'll get stuck with the full charge.",
        "Sorry sorry, I just want to make sure it actually went through.",
        "My heart is pounding, I can't find the confirmation email anywhere.",
    ],
    "confusion": [
        "I don't understand, what do you mean by a rate plan?",
        "Sorry, which booking are you talking about?",
        "I'm confused, is the refund going to my card or as credit?",
        "Wait, what? I thought you said the cancellation was free.",
        "What does non-refundable mean in this case?",
        "I'm lost, can you explain that again more simply?",
        "Hmm, I'm not sure I follow. What's the difference between the two rooms?",
        "That doesn't make sense to me, did I already pay or not??",
        "Huh? So do I need to do something now or is it done?",
        "I'm a bit puzzled about which option applies to me.",
        "Sorry, I don't get what you mean by 'guarantee'.",
        "So is it cancelled or not? I'm confused.",
        "Which of these two options is the one I have?",
        "Um, could you walk me through that one more time?",
        "I'm not following, what am I supposed to do next?",
        "That makes no sense, you said earlier it was included.",
        "Hang on, what's a folio?",
        "I have no idea what a deposit hold is.",
    ],
    "none": [
        "Hi, I'd like to change my reservation to next Friday.",
        "My booking ID is HB204311 and the name is Maria Lopez.",
        "Yes, please go ahead with the cancellation.",
        "Could you tell me the cancellation fee for this room?",
        "Thank you, that's everything I needed.",
        "Can I add breakfast for two people to my stay?",
        "I would like the refund to go to my original card, please.",
        "That works for me, thanks for your help.",
        "Is there a room with a sea view available on those dates?",
        "My email address is maria.lopez@example.com.",
        "I need to add a second guest to the reservation.",
        "The check-in date should be June 3rd.",
        "Please send the receipt to my work email.",
        "Okay, that sounds good.",
        "Can you book the same room type for two nights?",
        "My phone number is 555-0192.",
        "Great, thank you very much!",
        "I'd prefer a quiet room on a higher floor if possible.",
    ],
}


# ------------------------------------------------------------------------------ one message
def test_hand_written_sentences_are_detected() -> None:
    results = {
        label: [detected_emotion(score_message(s, valence=False)) for s in sentences]
        for label, sentences in SENTENCES.items()
    }
    per_class = {label: np.mean([d == label for d in got]) for label, got in results.items()}
    overall = np.mean([d == label for label, got in results.items() for d in got])
    assert overall >= 0.85, per_class
    assert all(acc >= 0.75 for acc in per_class.values()), per_class
    assert results["none"] == ["none"] * len(SENTENCES["none"])


def test_score_message_shape() -> None:
    s = score_message("I'm worried.", valence=False)
    assert set(s) == {*EMOTIONS, "valence"}
    assert math.isnan(s["valence"])
    assert all(0 <= s[e] < 1 for e in EMOTIONS)
    empty = score_message("", valence=False)
    assert [empty[e] for e in EMOTIONS] == [0.0] * 4
    with pytest.raises(TypeError):
        score_message(None)  # type: ignore[arg-type]


def test_intensifiers_raise_the_score() -> None:
    def sc(text: str, emotion: str) -> float:
        return score_message(text, valence=False)[emotion]

    assert sc("I'm a bit annoyed.", "frustration") < sc("I'm annoyed.", "frustration")
    assert sc("I'm annoyed.", "frustration") < sc("I'm so annoyed.", "frustration")
    assert sc("I'm so annoyed.", "frustration") < sc("I'm SO annoyed!!!", "frustration")
    assert sc("I am angry.", "anger") < sc("I am really angry.", "anger")
    assert sc("I am angry.", "anger") < sc("I AM ANGRY!!", "anger")
    assert sc("This is unacceptable.", "anger") < sc("THIS IS UNACCEPTABLE!!", "anger")
    assert sc("I'm confused.", "confusion") < sc("I'm sooo confused??", "confusion")
    assert sc("I'm slightly worried.", "anxiety") < sc("I'm extremely worried.", "anxiety")


def test_negation_lowers_the_score() -> None:
    worried = score_message("I'm worried about the booking.", valence=False)["anxiety"]
    assert worried >= DEFAULT_THRESHOLD
    for text in (
        "I'm not worried about the booking.",
        "im not worried about the booking",
        "No worries, take your time.",
        "Don't worry about it.",
        "There's nothing to worry about.",
    ):
        assert score_message(text, valence=False)["anxiety"] < worried / 2, text
    # a negated phrase that is itself a cue is not negated away
    assert detected_emotion(score_message("I don't understand.", valence=False)) == "confusion"
    assert detected_emotion(score_message("I can't stop worrying.", valence=False)) == "anxiety"
    # the negation stops at the clause
    assert score_message("No, I'm worried about it.", valence=False)["anxiety"] == worried


def test_detected_emotion() -> None:
    assert detected_emotion({"anger": 0.2, "anxiety": 0.1}) == "none"
    assert detected_emotion({"anger": 0.5, "anxiety": 0.6, "valence": -0.9}) == "anxiety"
    assert detected_emotion({"anger_score": 0.5, "confusion_score": math.nan}) == "anger"
    assert detected_emotion({"anger": 0.5}, threshold=0.6) == "none"
    assert detected_emotion({"frustration": 0.5, "anger": 0.5}) == "frustration"  # tie: order
    assert detected_emotion({}) == "none"


def test_valence_from_vader() -> None:
    pytest.importorskip("vaderSentiment")
    good = score_message("Thank you so much, that's wonderful!", valence=True)["valence"]
    bad = score_message("This is awful and I hate it.", valence=True)["valence"]
    assert good > 0.3 and bad < -0.3
    assert score_message("Thank you", valence=None)["valence"] == pytest.approx(
        score_message("Thank you", valence=True)["valence"]
    )


# ------------------------------------------------------------------------------ episodes
def _episode(
    task_id: Any,
    variant: str,
    messages: list[str],
    emotions: list[tuple[str | None, str]] | None = None,
    trial: int = 0,
) -> dict[str, Any]:
    """A minimal episode record: customer messages alternating with agent replies."""
    comps = [{"name": e or variant, "intensity": i, "emotion": e} for e, i in (emotions or [])] or [
        {"name": variant, "intensity": "moderate", "emotion": None}
    ]
    turns: list[dict[str, Any]] = []
    for m in messages:
        turns.append({"role": "user", "content": m})
        turns.append({"role": "agent", "content": "Let me check that for you."})
    return {
        "task_id": task_id,
        "variant": variant,
        "trial": trial,
        "variant_info": {"label": variant, "components": comps},
        "turns": turns,
    }


def test_score_episodes_columns_and_rows() -> None:
    eps = [
        _episode(1, "control", ["I need to cancel.", "Thanks, bye."]),
        _episode(1, "anger:severe", ["This is OUTRAGEOUS!"], [("anger", "severe")]),
        _episode(
            2,
            "frustration+confusion:mild",
            ["Ugh, again?", "Wait, what does that mean?", "Fine."],
            [("frustration", "moderate"), ("confusion", "mild")],
        ),
        _episode(3, "neutral", [], [(None, "moderate")]),  # the customer never spoke
    ]
    df = score_episodes(eps, valence=False)
    assert list(df.columns) == [
        "task_id", "variant", "trial", "turn_index", "n_user_turns", "intended",
        "intended_intensity", *SCORE_COLUMNS, "valence", "detected", "text",
    ]  # fmt: skip
    assert len(df) == 2 + 1 + 3 + 1
    comp = df[df["variant"] == "frustration+confusion:mild"]
    assert list(comp["turn_index"]) == [0, 1, 2]
    assert set(comp["n_user_turns"]) == {3}
    assert set(comp["intended"]) == {"frustration+confusion"}
    assert set(comp["intended_intensity"]) == {"moderate+mild"}
    assert list(comp["detected"])[:2] == ["frustration", "confusion"]
    ctrl = df[df["variant"] == "control"]
    assert set(ctrl["intended"]) == {"none"} and ctrl["intended_intensity"].isna().all()
    assert list(ctrl["detected"]) == ["none", "none"]
    assert df.loc[df["variant"] == "anger:severe", "anger_score"].item() > 0.8
    silent = df[df["variant"] == "neutral"]
    assert len(silent) == 1 and silent["n_user_turns"].item() == 0
    assert silent["turn_index"].isna().all() and silent[list(SCORE_COLUMNS)].isna().all(axis=None)
    assert silent["detected"].item() == "none" and silent["intended"].item() == "none"
    # the check still counts the silent episode, as not expressing anything
    out = manipulation_check(df, n_boot=50)
    assert out["confusion_counts"].loc["none"].sum() == 2


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="episode list is empty"):
        score_episodes([])
    with pytest.raises(ValueError, match="no 'turns'"):
        score_episodes([{"task_id": 1, "variant": "control", "trial": 0}])
    with pytest.raises(ValueError, match="not an episode record"):
        score_episodes(["hello"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="threshold"):
        score_episodes([_episode(1, "control", ["hi"])], threshold=0)
    df = score_episodes([_episode(1, "control", ["hi"]), _episode(1, "anger", ["I'm angry"])])
    with pytest.raises(ValueError, match="empty"):
        manipulation_check(df.iloc[0:0])
    with pytest.raises(ValueError, match="missing column"):
        manipulation_check(df.drop(columns=["anger_score"]))
    with pytest.raises(ValueError, match="reference arm 'neutral' is not in the table"):
        manipulation_check(df, reference="neutral")
    with pytest.raises(ValueError, match="DataFrame"):
        manipulation_check([1, 2])  # type: ignore[arg-type]


def _arm(variant: str, emotion: str | None, intensity: str, texts: list[str], n_tasks: int):
    emotions = [(emotion, intensity)] if emotion else None
    return [
        _episode(t, variant, [texts[t % len(texts)], "Thanks, that's all."], emotions)
        for t in range(n_tasks)
    ]


def test_flags_and_intervals_on_constructed_data() -> None:
    calm = ["I need to change my booking.", "Can I add breakfast?"]
    eps = (
        _arm("control", None, "moderate", calm, 12)
        + _arm("anger", "anger", "moderate", ["This is unacceptable, I'm angry."], 12)
        + _arm("anxiety", "anxiety", "moderate", calm, 12)  # the manipulation failed
        + _arm("neutral", None, "moderate", calm, 12)
    )
    out = manipulation_check(score_episodes(eps, valence=False), n_boot=500)
    ex = out["expression"].set_index("variant")
    assert list(ex.index) == ["anger", "anxiety", "neutral"]
    assert ex.loc["anger", "rate"] == 1.0 and ex.loc["anger", "reference_rate"] == 0.0
    assert not ex.loc["anger", "flag"] and ex.loc["anger", "diff_low"] > 0
    assert ex.loc["anxiety", "flag"] and ex.loc["anxiety", "rate"] == 0.0
    assert ex.loc["neutral", "flag"] and ex.loc["neutral", "placebo"]
    assert ex.loc["neutral", "emotion"] == "any"
    assert (ex["rate_low"] <= ex["rate"]).all() and (ex["rate"] <= ex["rate_high"]).all()
    # one task: no interval, flagged
    one = manipulation_check(score_episodes(eps[:1] + eps[12:13], valence=False), n_boot=100)[
        "expression"
    ]
    assert one["flag"].item() and math.isnan(one["rate_low"].item())


def test_monotonic_intensity_on_constructed_data() -> None:
    anger = {
        "mild": ["I'm a little displeased with this."],
        "moderate": ["I'm angry, this is unacceptable."],
        "severe": ["This is OUTRAGEOUS, I am FURIOUS!!"],
    }
    # confusion that does NOT rise with the requested intensity
    confusion = {
        "mild": ["I'm completely lost, what does any of that mean??"],
        "moderate": ["Sorry, I'm a bit unsure."],
        "severe": ["Hmm."],
    }
    eps = _arm("control", None, "moderate", ["Hello."], 4)
    for level in ("mild", "moderate", "severe"):
        eps += _arm(f"anger:{level}", "anger", level, anger[level], 4)
        eps += _arm(f"confusion:{level}", "confusion", level, confusion[level], 4)
    eps += _arm("frustration", "frustration", "moderate", ["Ugh."], 4)
    inten = manipulation_check(score_episodes(eps, valence=False), n_boot=50)["intensity"]
    a = inten[inten["emotion"] == "anger"]
    assert list(a["intensity"]) == ["mild", "moderate", "severe"]
    assert a["mean_score"].is_monotonic_increasing and a["monotonic"].all()
    c = inten[inten["emotion"] == "confusion"]
    assert not c["monotonic"].any()
    f = inten[inten["emotion"] == "frustration"]
    assert f["monotonic"].isna().all()  # a single intensity: undefined
    assert set(inten["n_episodes"]) == {4}


def test_stability_first_vs_last() -> None:
    eps = [
        _episode(t, "anger", ["I'm furious!!", "OK.", "Fine, thanks."], [("anger", "moderate")])
        for t in range(3)
    ] + [_episode(t, "control", ["Hello.", "Thanks."]) for t in range(3)]
    st = manipulation_check(score_episodes(eps, valence=False), n_boot=50)["stability"]
    row = st.set_index("variant").loc["anger"]
    assert row["first"] > 0.8 and row["last"] == 0 and row["diff"] == -row["first"]
    assert row["n_episodes"] == 3


def test_unknown_emotion_components_warn() -> None:
    eps = [_episode(t, "control", ["Hello."]) for t in range(3)] + [
        _episode(t, "sad", ["I'm sad."], [("sadness", "moderate")]) for t in range(3)
    ]
    with pytest.warns(UserWarning, match="sadness"):
        out = manipulation_check(score_episodes(eps, valence=False), n_boot=50)
    assert out["expression"].empty
    assert out["confusion_counts"].loc["sadness"].sum() == 3


# ------------------------------------------------------------------------------ real runs
def _check_run(eps: list[dict[str, Any]], placebo: bool) -> dict[str, pd.DataFrame]:
    df = score_episodes(eps)
    out = manipulation_check(df, n_boot=500)
    ex = out["expression"].set_index("variant")
    emotional = ex[~ex["placebo"]]
    assert len(emotional) >= 2
    assert (emotional["rate"] > emotional["reference_rate"]).all(), emotional
    assert not emotional["flag"].any(), emotional
    if placebo:
        assert ex.loc["neutral", "flag"] and ex.loc["neutral", "placebo"]
    # confusion-matrix rows add up to the episodes of each intended emotion
    eps_per_intended = out["episodes"].groupby("intended").size()
    counts = out["confusion_counts"]
    assert counts.sum(axis=1)[eps_per_intended.index].tolist() == eps_per_intended.tolist()
    assert counts.to_numpy().sum() == len(eps)
    assert list(counts.columns) == list(LABELS)
    rates = out["confusion_rates"].dropna()
    assert np.allclose(rates.sum(axis=1), 1.0)
    return out


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("emotion")
    run = emotau.run(
        {
            "variants": [
                "control",
                "neutral",
                "anger:mild",
                "anger",
                "anger:severe",
                "confusion",
                "frustration+anxiety",
            ]
        },
        out=str(out),
        experiment_name="m",
        num_trials=1,
        tasks=12,
    )
    return run.episodes()


def test_scripted_run(scripted_run: list[dict[str, Any]]) -> None:
    out = _check_run(scripted_run, placebo=True)
    ex = out["expression"]
    assert set(ex.loc[ex["variant"] == "frustration+anxiety", "emotion"]) == {
        "frustration",
        "anxiety",
    }
    assert (out["confusion_counts"].loc["none"].sum(), len(out["episodes"])) == (24, 84)
    # the scripted customer's stock phrases get stronger with the requested intensity
    inten = out["intensity"]
    anger = inten[inten["emotion"] == "anger"]
    assert list(anger["intensity"]) == ["mild", "moderate", "severe"]
    assert anger["monotonic"].all()
    st = out["stability"]
    assert set(st["variant"]) == {e["variant"] for e in scripted_run}


def test_hotel_sample() -> None:
    if not HOTEL_SAMPLE.exists():
        pytest.skip(f"{HOTEL_SAMPLE} is not here")
    eps = emotau.load_run(HOTEL_SAMPLE).episodes()
    out = _check_run(eps, placebo=True)
    ex = out["expression"].set_index("variant")
    assert set(ex.index) == {"neutral", "frustration", "anxiety", "anger", "confusion"}
    assert (ex.loc[["frustration", "anxiety", "anger", "confusion"], "rate"] > 0.9).all()


def test_many_distinct_messages_are_all_scored() -> None:
    """20,000 distinct messages (no cache hits); timing belongs to benchmarks, not tests."""
    base = [s for group in SENTENCES.values() for s in group]
    eps = [
        _episode(i, "control", [f"{base[(i * 2 + j) % len(base)]} (ref {i}-{j})" for j in range(2)])
        for i in range(10_000)
    ]
    df = score_episodes(eps, valence=False)
    assert len(df) == 20_000 and df["detected"].notna().all()


# ------------------------------------------------------------------------------ LLM judge
class FakeJudge(ModelClient):
    """Answers from the lexicon, after ``bad`` unusable answers; records every request."""

    def __init__(self, bad: list[str | None] | None = None, fence: bool = False) -> None:
        self.bad = list(bad or [])
        self.fence = fence
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        if self.bad:
            return ChatResponse(self.bad.pop(0))
        prompt = request.messages[0]["content"]
        items = [json.loads(x) for x in prompt.splitlines() if x.startswith('{"id"')]
        labels = []
        for it in items:
            e = detected_emotion(score_message(it["text"], valence=False))
            labels.append({"id": it["id"], "emotion": e, "intensity": 0 if e == "none" else 2})
        text = json.dumps({"labels": labels})
        if self.fence:
            text = f"Here are the labels:\n```json\n{text}\n```"
        return ChatResponse(text)


def test_judge_labels_a_message_table() -> None:
    eps = [
        _episode(t, "control", ["I need to cancel my booking.", "Thanks."]) for t in range(4)
    ] + [
        _episode(
            t, "anger", ["This is unacceptable, I'm angry!", "Thanks."], [("anger", "moderate")]
        )
        for t in range(4)
    ]
    df = score_episodes(eps, valence=False)
    judge = FakeJudge(fence=True)
    labelled = asyncio.run(label_with_judge(judge, df, batch_size=2))
    # 3 distinct texts, in batches of 2
    assert len(judge.requests) == 2
    md = judge.requests[0].metadata
    assert md["role"] == "judge" and md["purpose"] == "emotion_labels"
    assert JUDGE_RUBRIC.splitlines()[0] in judge.requests[0].messages[0]["content"]
    assert list(labelled.columns[: len(df.columns)]) == list(df.columns)
    assert {"judge_emotion", "judge_intensity"} <= set(labelled.columns)
    angry = labelled[labelled["text"] == "This is unacceptable, I'm angry!"]
    assert np.allclose(angry["anger_score"], 2 / 3) and (angry["confusion_score"] == 0).all()
    assert (angry["detected"] == "anger").all() and (angry["judge_intensity"] == 2).all()
    assert (labelled.loc[labelled["variant"] == "control", "detected"] == "none").all()
    out = manipulation_check(labelled, n_boot=50)
    assert not out["expression"].set_index("variant").loc["anger", "flag"]


def test_judge_labels_a_list_and_retries() -> None:
    judge = FakeJudge(bad=["I think the first one is angry.", '{"labels": [{"id": 1}]}'])
    out = asyncio.run(label_with_judge(judge, ["I'm so confused.", "Hello.", "I'm so confused."]))
    assert len(judge.requests) == 3
    retry = judge.requests[1].messages
    assert [m["role"] for m in retry] == ["user", "assistant", "user"]
    assert retry[1]["content"] == "I think the first one is angry."
    assert "could not be used" in retry[2]["content"]
    assert list(out["detected"]) == ["confusion", "none", "confusion"]
    assert list(out.columns[:6]) == ["text", *SCORE_COLUMNS, "valence"]
    assert out["valence"].isna().all()


def test_judge_gives_up_with_infra_error() -> None:
    judge = FakeJudge(bad=["nope", None, "{}", "[1, 2]", "never reached"])
    with pytest.raises(InfraError, match="in 4 attempts"):
        asyncio.run(label_with_judge(judge, ["I'm worried."], retries=3))
    assert len(judge.requests) == 4

    class Down(ModelClient):
        async def complete(self, request: ChatRequest) -> ChatResponse:
            raise InfraError("connection refused")

    with pytest.raises(InfraError, match="connection refused"):
        asyncio.run(label_with_judge(Down(), ["Hello."]))
    with pytest.raises(ValueError, match="no messages"):
        asyncio.run(label_with_judge(FakeJudge(), []))


def test_parse_judge_answer() -> None:
    ok = (
        '{"labels": [{"id": 2, "emotion": "Angry", "intensity": "3"},'
        ' {"id": 1, "emotion": "neutral"}]}'
    )
    assert parse_judge_answer(ok, 2) == [("none", 0), ("anger", 3)]
    assert parse_judge_answer('[{"emotion": "confusion", "intensity": 1.0}]', 1) == [
        ("confusion", 1)
    ]
    assert parse_judge_answer('Sure! {"emotion": "anxiety", "intensity": 2} done', 1) == [
        ("anxiety", 2)
    ]
    assert parse_judge_answer('[{"id": 1, "emotion": "anger", "intensity": 0}]', 1) == [("none", 0)]
    for bad, why in [
        ("", "empty"),
        ("no json here", "no JSON"),
        ('{"labels": [{"id": 1, "emotion": "joy", "intensity": 2}]}', "unknown emotion"),
        ('{"labels": [{"id": 1, "emotion": "anger", "intensity": 7}]}', "0 to 3"),
        ('{"labels": [{"id": 1, "emotion": "anger", "intensity": true}]}', "not a number"),
        ('{"labels": [{"id": 3, "emotion": "anger", "intensity": 1}]}', "outside"),
        ('{"labels": [{"id": 1, "emotion": "anger", "intensity": 1}]}', "no label for message"),
        ('{"answer": "anger"}', "no 'labels'"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_judge_answer(bad, 2)
