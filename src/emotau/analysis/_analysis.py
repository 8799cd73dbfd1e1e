"""The analysis of one run: every table the report shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class Analysis:
    """Everything the report shows; each table is a pandas DataFrame (empty when not
    applicable, with a line in ``warnings`` saying why)."""

    run: str
    meta: dict[str, Any]
    variants: list[str]
    reference: str | None
    episodes: pd.DataFrame  # the episode table (one row per merged record)
    messages: pd.DataFrame  # per customer message: emotion scores (no text); judge labels
    summary: pd.DataFrame  # summarize_variants (tidy)
    comparison: pd.DataFrame  # compare_variants against the reference arm
    design: dict[str, Any]  # tasks, trials, ICC, minimum detectable effect
    manipulation: dict[str, pd.DataFrame]
    taxonomy: pd.DataFrame
    conversation: pd.DataFrame
    behaviour: pd.DataFrame
    infra: pd.DataFrame  # infrastructure errors: key, error
    completeness: pd.DataFrame  # per variant: expected, finished, infra errors, missing
    task_matrix: pd.DataFrame  # success rate, task x variant
    emotion_turns: pd.DataFrame  # mean strongest emotion score by variant and turn
    conversations: list[dict[str, Any]]  # the browser's sample of full episodes
    conversations_total: int
    warnings: list[str] = field(default_factory=list)
    #: the manipulation check on the LLM judge's labels (``emotion_judge=True``), plus
    #: ``agreement``: judge vs lexicon per message (:func:`judge_agreement`)
    manipulation_judge: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: the judge that labelled the messages: model, endpoint, synthetic, calls and tokens
    judge: dict[str, Any] = field(default_factory=dict)
    #: calls, tokens and cost per role over every recorded attempt (``emotau summary``'s)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return bool(self.episodes["synthetic"].any()) if len(self.episodes) else False
