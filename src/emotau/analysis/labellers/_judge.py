"""The ``judge`` labeller: the run's judge model labels customer messages with a fixed rubric."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

from emotau.analysis.labellers._base import EmotionLabeller, label_messages
from emotau.core import ModelClient
from emotau.emotion import LABELS
from emotau.models import ask_judge

JUDGE_RUBRIC = """\
You are annotating customer messages from customer-service chats. For EACH message, decide
which emotion the customer expresses in that message alone, and how strongly.

Emotion (exactly one of):
- "frustration": impatience with a slow or repetitive process: complaints about waiting,
  repeating themselves, wasted time, wanting it over with. Aimed at the situation.
- "anger": feeling wronged: blame, accusation, hostility, moral outrage, insults, demands,
  rejecting excuses. Aimed at the company or the agent.
- "anxiety": worry about consequences: fear that something will go wrong, asking for
  reassurance, double-checking, urgency, nervous apologies.
- "confusion": not understanding: asking what something means, asking for things to be
  explained again or more simply, losing track, mixing things up.
- "none": no emotion beyond ordinary politeness (neutral requests, facts, thanks).
If several apply, pick the strongest. Judge what the words express, not what the customer
asks for; polite, matter-of-fact messages are "none".

Intensity (integer):
0 = not expressed (use with "none"), 1 = mild (a hint, a soft word), 2 = moderate (clearly
stated), 3 = severe (intense: strong words, shouting in capitals, stacked punctuation,
hostility or panic).

Answer with ONLY a JSON object, no other text, in this form, with one entry per message id:
{"labels": [{"id": 1, "emotion": "anger", "intensity": 2},
            {"id": 2, "emotion": "none", "intensity": 0}]}
"""

_SYNONYMS = {
    "neutral": "none", "no emotion": "none", "calm": "none", "null": "none", "": "none",
    "frustrated": "frustration", "impatience": "frustration", "impatient": "frustration",
    "anxious": "anxiety", "worry": "anxiety", "worried": "anxiety", "fear": "anxiety",
    "angry": "anger", "hostility": "anger", "confused": "confusion",
}  # fmt: skip
_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def _load_json(text: str) -> Any:
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE_RE.findall(text)]
    for open_, close in (("{", "}"), ("[", "]")):
        a, b = text.find(open_), text.rfind(close)
        if 0 <= a < b:
            candidates.append(text[a : b + 1])
    for c in candidates:
        try:
            return json.loads(c)
        except (json.JSONDecodeError, ValueError):
            continue
    raise ValueError("the answer holds no JSON object")


def _intensity_value(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError(f"intensity {v!r} is not a number")
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v.strip())
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or not 0 <= v <= 3:
        raise ValueError(f"intensity {v!r} is not an integer from 0 to 3")
    return v


def parse_judge_answer(text: str | None, n: int) -> list[tuple[str, int]]:
    """The (emotion, intensity) labels of messages 1..n from a judge's answer.

    Accepts ``{"labels": [...]}`` or a bare list, possibly inside a code fence or other text;
    entries are matched by ``id`` (or by position when no entry has one). Emotion names are
    normalised ("Angry" -> "anger", "neutral" -> "none"); intensity 0 means "none". Raises
    ValueError when the answer is not usable.
    """
    if not text or not text.strip():
        raise ValueError("the answer is empty")
    data = _load_json(text)
    if isinstance(data, dict):
        for k in ("labels", "results", "messages", "answers"):
            if isinstance(data.get(k), list):
                data = data[k]
                break
        else:
            if n == 1 and "emotion" in data:
                data = [data]
            else:
                raise ValueError("the JSON object has no 'labels' list")
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise ValueError("'labels' must be a list of objects")
    has_ids = any("id" in x for x in data)
    out: dict[int, tuple[str, int]] = {}
    for pos, item in enumerate(data, start=1):
        i = item.get("id") if has_ids else pos
        try:
            i = int(i)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"label id {item.get('id')!r} is not a number") from None
        if not 1 <= i <= n:
            raise ValueError(f"label id {i} is outside 1..{n}")
        raw = str(item.get("emotion") or "").strip().lower()
        emotion = _SYNONYMS.get(raw, raw)
        if emotion not in LABELS:
            raise ValueError(f"unknown emotion {item.get('emotion')!r}")
        intensity = _intensity_value(item.get("intensity", 0 if emotion == "none" else None))
        if emotion == "none" or intensity == 0:
            emotion, intensity = "none", 0
        if i in out and out[i] != (emotion, intensity):
            raise ValueError(f"message {i} has two different labels")
        out[i] = (emotion, intensity)
    absent = [i for i in range(1, n + 1) if i not in out]
    if absent:
        raise ValueError(f"no label for message(s) {', '.join(map(str, absent[:10]))}")
    return [out[i] for i in range(1, n + 1)]


def judge_prompt(rubric: str, batch: Sequence[str]) -> str:
    """The prompt for one batch: the rubric, then one JSON object per message."""
    items = "\n".join(
        json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in enumerate(batch, 1)
    )
    return f"{rubric.rstrip()}\n\nMessages ({len(batch)}), one JSON object per line:\n{items}\n"


class JudgeLabeller(EmotionLabeller):
    """The run's judge model labels ``batch_size`` messages per call with ``rubric``; an
    unusable answer is asked again (:func:`emotau.models.ask_judge`) ``retries`` times, then
    :class:`emotau.core.InfraError`."""

    name = "judge"
    title = "LLM judge"
    uses_judge = True

    def __init__(self, rubric: str = JUDGE_RUBRIC, batch_size: int = 20, retries: int = 3) -> None:
        if batch_size < 1 or retries < 0:
            raise ValueError("batch_size must be >= 1 and retries >= 0")
        self.rubric, self.batch_size, self.retries = rubric, batch_size, retries

    async def label(
        self, texts: Sequence[str], judge: ModelClient | None, concurrency: int
    ) -> list[tuple[str, int]]:
        if judge is None:
            raise ValueError("the judge labeller needs the run's judge model")
        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        sem = asyncio.Semaphore(concurrency)

        async def one(batch: Sequence[str]) -> list[tuple[str, int]]:
            meta = {"role": "judge", "purpose": "emotion_labels", "count": len(batch)}
            async with sem:
                return await ask_judge(
                    judge, judge_prompt(self.rubric, batch),
                    lambda answer: parse_judge_answer(answer, len(batch)),
                    metadata=meta, attempts=self.retries + 1,
                    wanted=f"the JSON object, with one label for each of the {len(batch)} messages",
                    what="emotion labels",
                )  # fmt: skip

        results = await asyncio.gather(*(one(b) for b in batches))
        return [label for res in results for label in res]


async def label_with_judge(
    client: ModelClient,
    messages: Any,
    rubric: str = JUDGE_RUBRIC,
    *,
    batch_size: int = 20,
    retries: int = 3,
    concurrency: int = 4,
) -> Any:
    """Label customer messages with an LLM judge instead of the lexicon.

    ``messages`` is a :func:`~emotau.analysis.emotion.score_episodes` table (its ``text``
    column is labelled) or a list of message texts. Distinct non-empty texts are sent
    ``batch_size`` at a time with ``rubric`` (at most ``concurrency`` requests in flight), as
    ``ChatRequest`` with metadata ``{"role": "judge", "purpose": "emotion_labels", "count":
    <batch size>}``. An unusable answer is retried ``retries`` times (the judge is shown its
    answer and the problem), then :class:`emotau.core.InfraError` is raised; the client's own
    errors propagate. The result is :func:`label_messages`'s (columns ``judge_emotion`` and
    ``judge_intensity`` added).
    """
    labeller = JudgeLabeller(rubric, batch_size, retries)
    return await label_messages(labeller, messages, judge=client, concurrency=concurrency)
