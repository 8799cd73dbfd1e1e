"""Manipulation check: did the simulated customer really express the emotion it was told to?

What this module is
-------------------
* :func:`score_message` scores one customer message, offline and without downloads, with a
  small **hand-written cue lexicon** (written for emotau, not copied from any published emotion
  lexicon): weighted English words and phrases for ``frustration``, ``anxiety``, ``anger`` and
  ``confusion``. Each cue has a weight per emotion (0.3 = weak hint, 0.6 = mild, 1.0 = clear,
  1.5+ = strong); a cue may count for two emotions ("fed up" is mostly frustration, a little
  anger). The raw score of an emotion is the sum of its matched cue weights, where

  - a cue right after an intensifier ("very", "so", "really", "absolutely" ...) counts x1.4 and
    right after a diminisher ("a bit", "slightly", "kind of" ...) x0.6;
  - an emotion-state word (``worried``, ``angry``, ``confused`` ...) preceded, within three
    words of the same clause, by a negator (``not``, ``no``, ``never``, ``n't``, ``nothing``,
    ``without``, ``hardly``) counts 0 ("I'm not worried", "no worries", "don't worry").
    Phrases that carry their own negation ("I don't understand", "not good enough") are cues
    in themselves and are never negated;
  - the whole message is scaled by its shouting: +0.25 per ALL-CAPS word of 3+ letters (at
    most 3), +0.6 for an all-caps message, +0.3 for "!!", +0.1 per single "!" (at most 2),
    +0.2 for "??" and +0.15 for elongated words ("sooo"); the factor is capped at 2.
    "??" and three or more question marks are also confusion cues.

  The score is ``1 - exp(-raw)``: 0 for no cue, about 0.45 for one mild cue, 0.63 for one
  clear cue, 0.8+ for a strong or intensified cue, approaching 1. Valence is VADER's
  ``compound`` (-1..1) from the ``vaderSentiment`` package (MIT; ships its lexicon in the
  wheel), or NaN when it is not installed or ``valence=False``.
* :func:`detected_emotion` is the argmax over the four emotions whose score is at least the
  threshold (default :data:`DEFAULT_THRESHOLD` = 0.3, i.e. one mild cue), else ``"none"``.
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
