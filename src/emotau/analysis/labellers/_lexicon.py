"""The ``lexicon`` labeller: emotau's offline cue lexicon, as a labeller."""

from __future__ import annotations

from collections.abc import Sequence

from emotau.analysis.labellers._base import EmotionLabeller
from emotau.core import ModelClient
from emotau.emotion import lexicon_label


class LexiconLabeller(EmotionLabeller):
    """:func:`emotau.emotion.lexicon_label` of each message: the lexicon's detected emotion,
    with an intensity from its strongest score. As a second opinion it agrees with the
    lexicon by construction; it is the reference implementation of the interface."""

    name = "lexicon"
    title = "lexicon labels"

    async def label(
        self, texts: Sequence[str], judge: ModelClient | None, concurrency: int
    ) -> list[tuple[str, int]]:
        return [lexicon_label(t) for t in texts]
