"""Emotion labellers: what labels each customer message with an emotion and an intensity.

One interface (:class:`EmotionLabeller`) in one registry (:data:`LABELLERS`, entry-point
group ``emotau.labellers``). The built-ins are ordinary plugins: ``lexicon`` (emotau's offline
cue lexicon) and ``judge`` (the run's judge model, with a fixed rubric).
"""

from emotau.analysis.labellers._base import LABELLERS, EmotionLabeller, label_messages
from emotau.analysis.labellers._judge import (
    JUDGE_RUBRIC,
    JudgeLabeller,
    judge_prompt,
    label_with_judge,
    parse_judge_answer,
)
from emotau.analysis.labellers._lexicon import LexiconLabeller

__all__ = [
    "JUDGE_RUBRIC",
    "LABELLERS",
    "EmotionLabeller",
    "JudgeLabeller",
    "LexiconLabeller",
    "judge_prompt",
    "label_messages",
    "label_with_judge",
    "parse_judge_answer",
]
