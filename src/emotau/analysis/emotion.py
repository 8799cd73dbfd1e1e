"""Manipulation check: did the simulated customer really express the emotion it was told to?

What this module is
-------------------
* :func:`score_message` and :func:`detected_emotion` score one customer message with emotau's
  hand-written cue lexicon, offline (how it scores: :mod:`emotau.emotion`, where it lives).
* :func:`score_episodes` turns episode records into one row per customer message.
* :func:`manipulation_check` summarises a message table per arm: expression rates against a
  reference arm with task-bootstrap intervals and a flag, an intended x detected confusion
  matrix, scores by requested intensity, and the first vs last customer message.
* :func:`label_with_judge` is the alternative labeller: an LLM judge (the run's ``judge``
  role) with the fixed rubric :data:`JUDGE_RUBRIC`; its table has the same columns, so it can
  be passed to :func:`manipulation_check` in place of the lexicon scores. Any labeller of
  :mod:`emotau.analysis.labellers` (a plugin too) does the same through :func:`label_messages`.

Where the code is: the lexicon in :mod:`emotau.emotion` (the scripted models use it too), the
message table in ``_messages``, the check in ``_manipulation``, the labellers in
:mod:`emotau.analysis.labellers`. This module is their public face.

Limits of the lexicon scorer (read before trusting a number)
------------------------------------------------------------
* English only; surface cues only. It misses sarcasm ("great, just great"), emotion conveyed
  by content rather than words (a curt "Fine." from an angry customer), and cues it does not
  list; it can fire on quoted or hypothetical wording ("my friend was furious"). It does not
  see the agent's turns or the conversation's history.
* Negation is a three-word window; "I can't say I'm not worried" is read wrongly.
* Frustration and anger share vocabulary and are the classes most often mixed up. Weights and
  the threshold were set by hand on a few dozen hand-written sentences and are not
  calibrated: a score is an ordinal intensity, not a probability. On 40 further sentences
  written before they were looked at, 35 (88%) got the right label; the tests' 90
  sentences now include those 40, so their accuracy is no longer an unbiased estimate.
* The offline scripted customer prepends stock phrases (``phrases`` in the built-in variants)
  whose ordinary emotion words this lexicon also lists, so checks on scripted runs are
  optimistic plumbing tests, not evidence about an LLM customer. For LLM customers, validate
  on a labelled sample or compare with :func:`label_with_judge`.
"""

from emotau.analysis._manipulation import manipulation_check
from emotau.analysis._messages import score_episodes
from emotau.analysis.labellers import (
    JUDGE_RUBRIC,
    label_messages,
    label_with_judge,
    parse_judge_answer,
)
from emotau.emotion import (
    DEFAULT_THRESHOLD,
    EMOTIONS,
    INTENSITIES,
    LABELS,
    SCORE_COLUMNS,
    detected_emotion,
    score_message,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "EMOTIONS",
    "INTENSITIES",
    "JUDGE_RUBRIC",
    "LABELS",
    "SCORE_COLUMNS",
    "detected_emotion",
    "label_messages",
    "label_with_judge",
    "manipulation_check",
    "parse_judge_answer",
    "score_episodes",
    "score_message",
]
