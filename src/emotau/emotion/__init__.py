"""The emotions emotau's customers express, and an offline scorer of customer messages.

The vocabulary (:data:`EMOTIONS`, :data:`LABELS`, :data:`INTENSITIES`) and emotau's
hand-written cue lexicon (:func:`score_message`, :func:`detected_emotion`,
:func:`lexicon_label`). Whole-run statistics (the manipulation check, the judge labeller) are
in :mod:`emotau.analysis.emotion`.
"""

from emotau.emotion._lexicon import (
    DEFAULT_THRESHOLD,
    EMOTIONS,
    INTENSITIES,
    INTENSITY_CUTS,
    LABELS,
    SCORE_COLUMNS,
    detected_emotion,
    emotion_scores,
    lexicon_label,
    score_message,
    valence_available,
    valence_score,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "EMOTIONS",
    "INTENSITIES",
    "INTENSITY_CUTS",
    "LABELS",
    "SCORE_COLUMNS",
    "detected_emotion",
    "emotion_scores",
    "lexicon_label",
    "score_message",
    "valence_available",
    "valence_score",
]
