"""The emotion labeller interface, its registry, and the table it fills."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from emotau.core import ModelClient, Registry, subclass_of
from emotau.emotion import EMOTIONS, LABELS


class EmotionLabeller(ABC):
    """Labels customer messages: one of :data:`emotau.emotion.LABELS` and an intensity 0..3
    (0 only with ``"none"``) for each message.

    A labeller is a class registered in the entry-point group ``emotau.labellers`` under its
    :attr:`name`; emotau builds it with no arguments. ``emotau analyze --labeller NAME`` (or
    ``analyze(run, labeller=NAME)``) labels every distinct customer message of a run with it
    and repeats the manipulation check on its labels, next to the lexicon's.
    """

    #: the name it is registered under
    name: ClassVar[str] = ""
    #: the report's name for its labels, e.g. "LLM judge"
    title: ClassVar[str] = ""
    #: True: :meth:`label` is given the run's judge model (built from the run's frozen spec)
    uses_judge: ClassVar[bool] = False

    @abstractmethod
    async def label(
        self, texts: Sequence[str], judge: ModelClient | None, concurrency: int
    ) -> Sequence[tuple[str, int]]:
        """One ``(emotion, intensity)`` per text, in order. ``texts`` are distinct and not
        blank; ``judge`` is the run's judge client when :attr:`uses_judge` (else None); at
        most ``concurrency`` model calls should be in flight."""


#: the emotion labellers (entry-point group ``emotau.labellers``)
LABELLERS: Registry[type[EmotionLabeller]] = Registry(
    "emotion labeller", check=subclass_of(EmotionLabeller, named=True)
)


def _checked(found: Sequence[Any], n: int, who: str) -> list[tuple[str, int]]:
    found = list(found)
    if len(found) != n:
        raise ValueError(f"the {who} labeller gave {len(found)} labels for {n} messages")
    out = []
    for item in found:
        ok = isinstance(item, tuple | list) and len(item) == 2
        emotion, k = item if ok else (None, None)
        if not (emotion in LABELS and isinstance(k, int) and not isinstance(k, bool)):
            raise ValueError(f"the {who} labeller gave {item!r}: expected (emotion, 0..3)")
        if not 0 <= k <= 3 or (emotion == "none") != (k == 0):
            raise ValueError(f"the {who} labeller gave {item!r}: intensity 0 is 'none' only")
        out.append((emotion, k))
    return out


async def label_messages(
    labeller: EmotionLabeller,
    messages: pd.DataFrame | Sequence[str],
    *,
    judge: ModelClient | None = None,
    concurrency: int = 4,
    prefix: str = "judge",
) -> pd.DataFrame:
    """Label a message table (:func:`~emotau.analysis.emotion.score_episodes`, its ``text``
    column) or a list of texts with ``labeller``; each distinct non-blank text is labelled once.

    The result has the lexicon's columns: for a table, a copy whose ``<emotion>_score``
    columns hold ``intensity / 3`` for the labelled emotion (0 for the others) and whose
    ``detected`` is the labelled emotion, so it can go straight to
    :func:`~emotau.analysis.emotion.manipulation_check`; ``valence`` is kept. For a list, a
    table of ``text``, the four score columns, ``valence`` (NaN) and ``detected``. Both add
    ``<prefix>_emotion`` and ``<prefix>_intensity``. Placeholder rows (no text) keep NaN scores.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if isinstance(messages, pd.DataFrame):
        if "text" not in messages.columns:
            raise ValueError("the message table has no 'text' column (make it with score_episodes)")
        out = messages.copy()
        texts = list(out["text"])
    else:
        if isinstance(messages, str):
            raise ValueError("give a list of message texts, not one string")
        texts = list(messages)
        if not texts:
            raise ValueError("no messages to label")
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("messages must all be strings")
        out = pd.DataFrame({"text": texts})
    unique = [t for t in dict.fromkeys(t for t in texts if isinstance(t, str)) if t.strip()]
    found = await labeller.label(unique, judge, concurrency) if unique else []
    labels = dict(zip(unique, _checked(found, len(unique), labeller.name), strict=True))

    emo: list[Any] = []
    inten: list[float] = []
    for t in texts:
        if not isinstance(t, str):
            emo.append(None)
            inten.append(math.nan)
        else:
            e, k = labels.get(t, ("none", 0))
            emo.append(e)
            inten.append(float(k))
    k_arr = np.asarray(inten, dtype=float)
    for e in EMOTIONS:
        is_e = np.asarray([x == e for x in emo])
        out[f"{e}_score"] = np.where(np.isnan(k_arr), np.nan, np.where(is_e, k_arr / 3.0, 0.0))
    if "valence" not in out.columns:
        out["valence"] = math.nan
    out["detected"] = [x if x is not None else "none" for x in emo]
    out[f"{prefix}_emotion"] = emo
    out[f"{prefix}_intensity"] = pd.array(
        [None if math.isnan(k) else int(k) for k in inten], dtype="Int64"
    )
    return out
