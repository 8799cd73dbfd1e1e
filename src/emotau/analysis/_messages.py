"""The message table: one row per customer message of each episode, scored by the lexicon."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from emotau.emotion import (
    DEFAULT_THRESHOLD,
    EMOTIONS,
    SCORE_COLUMNS,
    emotion_scores,
    valence_available,
    valence_score,
)


def _intended(info: Mapping[str, Any] | None) -> tuple[str, str | None]:
    comps = [c for c in (info or {}).get("components") or () if c.get("emotion")]
    if not comps:
        return "none", None
    return (
        "+".join(str(c["emotion"]) for c in comps),
        "+".join(str(c.get("intensity") or "moderate") for c in comps),
    )


def score_episodes(
    episodes: Iterable[Mapping[str, Any]],
    *,
    valence: bool | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> pd.DataFrame:
    """One row per customer message of each episode (``run.episodes()`` records).

    Columns: ``task_id, variant, trial, turn_index`` (0-based among the episode's customer
    messages), ``n_user_turns``, ``intended`` (the arm's emotion(s) joined by "+", or "none"
    for control and placebo arms), ``intended_intensity`` (the emotional components'
    intensities joined by "+", or None), ``frustration_score, anxiety_score, anger_score,
    confusion_score``, ``valence`` (see :func:`score_message`), ``detected``
    (:func:`detected_emotion` at ``threshold``) and ``text``.

    An episode without customer messages keeps one placeholder row (``turn_index`` <NA>,
    ``n_user_turns`` 0, NaN scores, ``detected`` "none") so that it still counts, as not
    expressing anything, in :func:`manipulation_check`. Records need their ``turns`` (not
    ``episodes(light=True)``).

    Speed: scores are cached by text (scripted customers repeat a few hundred texts: 100k
    episodes take about 1 s). Distinct texts cost about 20 us each for the lexicon and
    40-70 us more for VADER, so for a large run of LLM-written messages pass
    ``valence=False`` (100k episodes x 5 distinct messages: ~10 s without, ~30 s with it).
    """
    episodes = list(episodes)
    if not episodes:
        raise ValueError("no episodes to score: the episode list is empty")
    check_threshold(threshold)
    use_valence = valence_available(valence)
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "task_id",
            "variant",
            "trial",
            "turn_index",
            "n_user_turns",
            "intended",
            "intended_intensity",
        )
    }
    texts: list[str | None] = []
    scores: list[tuple[float, float, float, float]] = []
    vals: list[float] = []
    nan4 = (math.nan,) * 4
    for i, ep in enumerate(episodes):
        if not isinstance(ep, Mapping):
            raise ValueError(f"episode {i} is a {type(ep).__name__}, not an episode record (dict)")
        turns = ep.get("turns")
        if turns is None:
            raise ValueError(
                f"episode {i} has no 'turns': load full records with run.episodes(), "
                "not run.episodes(light=True)"
            )
        missing = [k for k in ("task_id", "variant", "trial") if k not in ep]
        if missing:
            raise ValueError(f"episode {i} lacks {', '.join(missing)}")
        intended = _intended(ep.get("variant_info"))
        msgs = [str(t.get("content") or "") for t in turns if t.get("role") == "user"]
        n = len(msgs)
        key = (ep["task_id"], ep["variant"], ep["trial"])
        if n == 0:
            msgs_iter: list[str | None] = [None]
        else:
            msgs_iter = list(msgs)
        for j, text in enumerate(msgs_iter):
            cols["task_id"].append(key[0])
            cols["variant"].append(key[1])
            cols["trial"].append(key[2])
            cols["turn_index"].append(j if text is not None else None)
            cols["n_user_turns"].append(n)
            cols["intended"].append(intended[0])
            cols["intended_intensity"].append(intended[1])
            texts.append(text)
            if text is None:
                scores.append(nan4)
                vals.append(math.nan)
            else:
                scores.append(emotion_scores(text))
                vals.append(valence_score(text) if use_valence else math.nan)
    df = pd.DataFrame(cols)
    df["turn_index"] = df["turn_index"].astype("Int64")
    mat = np.asarray(scores, dtype=float)
    for k, c in enumerate(SCORE_COLUMNS):
        df[c] = mat[:, k]
    df["valence"] = np.asarray(vals, dtype=float)
    df["detected"] = detect_matrix(mat, threshold)
    df["text"] = texts
    return df


def detect_matrix(mat: np.ndarray, threshold: float) -> np.ndarray:
    """Vectorised :func:`detected_emotion` over rows of a (n, 4) score matrix."""
    filled = np.where(np.isnan(mat), 0.0, mat)
    best = filled.argmax(axis=1)
    ok = filled[np.arange(len(filled)), best] >= threshold
    labels = np.asarray(EMOTIONS, dtype=object)[best]
    return np.where(ok, labels, "none").astype(object)


def check_threshold(threshold: float) -> None:
    if not (isinstance(threshold, int | float) and 0 < threshold <= 1):
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")
