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
  be passed to :func:`manipulation_check` in place of the lexicon scores.

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

from __future__ import annotations

import asyncio
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from emotau.core._chat import ChatRequest, ModelClient
from emotau.core._errors import InfraError

__all__ = [
    "DEFAULT_THRESHOLD",
    "EMOTIONS",
    "INTENSITIES",
    "JUDGE_RUBRIC",
    "LABELS",
    "SCORE_COLUMNS",
    "detected_emotion",
    "label_with_judge",
    "manipulation_check",
    "parse_judge_answer",
    "score_episodes",
    "score_message",
]

EMOTIONS: tuple[str, ...] = ("frustration", "anxiety", "anger", "confusion")
LABELS: tuple[str, ...] = ("none", *EMOTIONS)
INTENSITIES: tuple[str, ...] = ("mild", "moderate", "severe")
SCORE_COLUMNS: tuple[str, ...] = tuple(f"{e}_score" for e in EMOTIONS)
DEFAULT_THRESHOLD = 0.3
"""Score at which an emotion counts as expressed: one mild cue (weight 0.6) passes, one weak
hint (0.3) alone does not. The judge's intensity 1 of 3 (score 0.33) also passes."""

_FR, _AX, _AN, _CO = range(4)


# ------------------------------------------------------------------------------ the lexicon
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# (pattern, (frustration, anxiety, anger, confusion), negatable). Patterns are lowercase
# regexes over text whose curly apostrophes are made straight; they must use only
# non-capturing groups. A cue matches whole words. All-zero rows are "stoppers": they consume
# stock phrases ("thanks again", "can't wait") so that their words do not count.
_CUES: list[tuple[str, tuple[float, float, float, float], bool]] = [
    # stoppers
    (r"(?:thanks|thank you|hello|hi|hey|nice to (?:talk|speak) to you) again", (0, 0, 0, 0), 0),
    (r"(?:can'?t|cannot) wait", (0, 0, 0, 0), 0),
    (r"i'?m afraid (?:so|not)", (0, 0, 0, 0), 0),
    (r"(?:no|not a|without) problem", (0, 0, 0, 0), 0),
    (r"(?:thanks|thank you) for (?:your |the )?patience|appreciate your patience", (0, 0, 0, 0), 0),
    (r"worst case(?: scenario)?", (0, 0.5, 0, 0), 0),
    # ---- anger
    (r"furious|livid|enraged|seething|fuming|irate", (0, 0, 1.7, 0), 1),
    (r"outrag(?:e|ed|eous)", (0, 0, 1.7, 0), 1),
    (r"infuriat(?:ed|ing|es)?", (0.3, 0, 1.6, 0), 1),
    (
        r"disgrace(?:ful)?|disgust(?:ed|ing)?|appall?(?:ed|ing)|deplorable|shameful|scandalous",
        (0, 0, 1.5, 0),
        1,
    ),
    (r"incompeten(?:t|ce)|pathetic|clueless|amateurish", (0, 0, 1.4, 0), 1),
    (r"useless", (0.4, 0, 1.0, 0), 1),
    (r"idiot(?:s|ic)?|moron(?:s|ic)?|stupid|imbeciles?|clowns", (0, 0, 1.3, 0), 1),
    (
        r"scam(?:med|mers?)?|rip[- ]?off|ripped off|daylight robbery|thie(?:f|ves)",
        (0, 0, 1.4, 0),
        1,
    ),
    (r"fraud(?:ulent)?", (0, 0.5, 0.7, 0), 1),
    (r"lie(?:d|s)? to me|liars?|lying to", (0, 0, 1.3, 0), 0),
    (r"how dare you|shame on you|screw you|go to hell", (0, 0, 1.8, 0), 0),
    (r"what the (?:hell|heck|fuck)|wtf|bullshit|the hell|bloody hell", (0.5, 0, 1.2, 0), 0),
    (
        r"damn(?:ed|it)?|f+u+c+k\w*|sh[i*]t|crap|pissed(?: off)?|ticked off|hacked off",
        (0.5, 0, 1.1, 0),
        0,
    ),
    (r"unacceptable|inexcusable|intolerable", (0.2, 0, 1.2, 0), 1),
    (
        r"not (?:at all |even remotely )?(?:acceptable|good enough|ok(?:ay)?|fair)",
        (0.2, 0, 1.0, 0),
        0,
    ),
    (r"unfair|unprofessional|rude(?:ly|ness)?|disrespect\w*|insult(?:ed|ing)?", (0, 0, 0.9, 0), 1),
    (r"condescending|patroni[sz]ing", (0, 0, 0.9, 0), 1),
    (r"ridiculous|absurd|ludicrous|preposterous|insane", (0.6, 0, 0.9, 0), 1),
    (
        r"(?:this is |what )?(?:an absolute |a complete |a total )?(?:joke|farce)",
        (0.5, 0, 0.9, 0),
        0,
    ),
    (r"unbelievable|unreal", (0.5, 0, 0.6, 0), 1),
    (r"angry|angered|anger", (0, 0, 1.2, 0), 1),
    (r"mad (?:at|about|with)|(?:so|really|very|hopping|bloody|genuinely) mad", (0, 0, 1.0, 0), 1),
    (
        r"cross (?:with|about)|(?:rather|quite|very|really|a bit|bit|pretty|so) cross",
        (0, 0, 0.8, 0),
        1,
    ),
    (r"upset", (0, 0.3, 0.9, 0), 1),
    (r"displeased|unhappy|dissatisfied", (0, 0, 0.7, 0), 1),
    (r"not (?:at all |very )?(?:happy|pleased|impressed|satisfied)", (0, 0, 0.7, 0), 0),
    (r"disappoint(?:ed|ing|ment)", (0.3, 0, 0.5, 0), 1),
    (r"let (?:me )?down", (0.2, 0, 0.6, 0), 0),
    (
        r"(?:terrible|awful|horrible|horrendous|atrocious|dreadful|abysmal|shocking|lousy|poor"
        r"|bad|worst) (?:service|experience|customer service|support|treatment|company|job)",
        (0, 0, 1.1, 0),
        0,
    ),
    (r"worst", (0, 0, 0.9, 0), 0),
    (r"terrible|awful|horrible|atrocious|abysmal|dreadful|shocking|appalling", (0.2, 0, 0.5, 0), 1),
    (r"your fault|you(?:'re| are) to blame|blame (?:you|your)", (0, 0, 1.1, 0), 0),
    (r"your (?:mistake|error|screw[- ]?up|incompetence)", (0, 0, 1.0, 0), 0),
    (r"theft|stealing|stole|robbery", (0, 0, 1.2, 0), 1),
    (r"ashamed|shame on", (0, 0, 1.0, 0), 0),
    (r"(?:refund|fix|sort|cancel|change) (?:me|it|this|that) now", (0.3, 0, 0.6, 0), 0),
    (r"you people|you lot", (0.2, 0, 0.9, 0), 0),
    (
        r"you(?:'ve| have| guys| people)? (?:screwed|messed|cocked|mucked) (?:it |this |things )?up"
        r"|you (?:made|make) a mistake",
        (0.2, 0, 1.0, 0),
        0,
    ),
    (
        r"(?:you(?:'ve| have| guys)?|company|staff|hotel|they(?:'ve)?) (?:got|gotten) "
        r"(?:this|it|that|my \w+) wrong",
        (0, 0, 0.7, 0),
        0,
    ),
    (r"should (?:never|not|n't) have (?:happened|been)", (0.2, 0, 0.9, 0), 0),
    (r"should(?:n'?t| not) have to", (0.6, 0, 0.4, 0), 0),
    (r"excuses|no excuse|(?:fobb|brush)ed off|(?:the )?run ?around", (0.3, 0, 1.0, 0), 0),
    (r"i demand|demand (?:a|an|that|my|to)|i insist|i expect (?:better|more)", (0, 0, 0.9, 0), 0),
    (r"compensat(?:e|ion)", (0, 0, 0.3, 0), 0),
    (
        r"(?:fix|sort) (?:it|this|that)(?: out)? (?:now|immediately|right now|at once)"
        r"|sort it out|put (?:it|this|that) right|make (?:it|this|that) right",
        (0.3, 0, 0.8, 0),
        0,
    ),
    (r"right now|immediately|at once", (0.2, 0.2, 0.3, 0), 0),
    (
        r"(?:speak|talk) to (?:a|your|the) (?:manager|supervisor|someone in charge)"
        r"|get me (?:a|your) (?:manager|supervisor)",
        (0.4, 0, 0.6, 0),
        0,
    ),
    (
        r"lawyers?|attorney|sue (?:you|your)|legal action|small claims|report (?:you|this) to"
        r"|chargeback|(?:bad|negative|terrible|1[- ]star|one[- ]star) review",
        (0, 0, 1.1, 0),
        0,
    ),
    (r"never (?:again|(?:stay|book|use) (?:with|here|you))", (0, 0, 0.7, 0), 0),
    (r"hate", (0.3, 0, 0.8, 0), 1),
    (r"nonsense|rubbish|garbage", (0.3, 0, 0.9, 0), 0),
    (r"sick of (?:being \w+|you)", (0.5, 0, 1.2, 0), 0),
    (r"wronged|cheated|mistreated|treated (?:badly|like dirt|like an idiot)", (0, 0, 1.0, 0), 0),
    # ---- frustration
    (r"frustrat(?:ed|ing|ion|es)?", (1.4, 0, 0.2, 0), 1),
    (r"exasperat(?:ed|ing|ion)|fed up|at (?:the end of )?my wits'? end", (1.4, 0, 0.3, 0), 1),
    (
        r"sick (?:and tired )?of|tired of|had enough|enough is enough|enough already"
        r"|enough of this|enough back and forth",
        (1.2, 0, 0.3, 0),
        1,
    ),
    (r"annoy(?:ed|ing|ance|s)?", (1.0, 0, 0.3, 0), 1),
    (r"irritat(?:ed|ing|ion|es)?", (1.0, 0, 0.3, 0), 1),
    (
        r"(?:waste|wasting|wasted) (?:of )?(?:my |our |so much |all my |more )?"
        r"(?:time|day|morning|afternoon|evening|hour|hours)",
        (1.5, 0, 0.3, 0),
        0,
    ),
    (r"how many (?:more )?times", (1.4, 0, 0.2, 0), 0),
    (
        r"for the (?:third|fourth|fifth|tenth|hundredth|umpteenth|nth|last) time",
        (1.2, 0, 0.3, 0),
        0,
    ),
    (
        r"(?:as|like) i (?:already |just |have |'ve )?(?:said|told you|mentioned|explained|stated"
        r"|wrote)",
        (1.1, 0, 0, 0),
        0,
    ),
    (
        r"already (?:told|said|explained|mentioned|gave|given|provided|sent|answered|did|done"
        r"|tried|asked)",
        (1.1, 0, 0, 0),
        0,
    ),
    (r"i (?:just )?told you", (0.8, 0, 0.1, 0), 0),
    (
        r"repeat(?:ing)? myself|keep (?:repeating|saying|telling you|asking)"
        r"|keeps? (?:asking|happening|failing|breaking|crashing|dropping)",
        (1.1, 0, 0, 0),
        0,
    ),
    (
        r"over and over|again and again|yet again|not again|(?:round|around) in circles"
        r"|same (?:thing|question|questions|answer) (?:again|over)",
        (1.1, 0, 0, 0),
        0,
    ),
    (r"back and forth", (0.8, 0, 0, 0), 0),
    (r"again\?+", (0.8, 0, 0.1, 0), 0),
    (r"again", (0.3, 0, 0, 0), 0),
    (r"(?:just|literally just) (?:answered|told you|said that|gave you)", (0.7, 0, 0, 0), 0),
    (
        r"still (?:not|no|nothing|haven'?t|hasn'?t|isn'?t|doesn'?t|don'?t|can'?t|waiting|broken"
        r"|wrong|unresolved|the same|no sign|charged)",
        (1.0, 0, 0.2, 0),
        0,
    ),
    (
        r"(?:take|takes|taking|took|taken) (?:so|too|this|that) long"
        r"|(?:takes|taking|taken|took) (?:forever|ages)",
        (1.2, 0, 0, 0),
        0,
    ),
    (r"forever", (0.6, 0, 0, 0), 0),
    (r"how long (?:does|will|is) (?:it|this|that) (?:take|going to take)", (0.7, 0.1, 0, 0), 0),
    (r"so long|too long|for ages|ages ago", (0.4, 0, 0, 0), 0),
    (
        r"(?:been|keep|kept) (?:waiting|on hold)|on hold|(?:hours|days|weeks) (?:now|already)",
        (0.6, 0.1, 0, 0),
        0,
    ),
    (
        r"get to the point|cut to the chase|move this along|speed (?:this|it|things) up|hurry up"
        r"|get (?:on with it|it done|this done|this over with)"
        r"|just (?:do|fix|cancel|get|process|change|book|sort|refund) (?:it|this|that)"
        r"|(?:i )?just want (?:it|this) (?:done|over|fixed|sorted)",
        (0.9, 0, 0.2, 0),
        0,
    ),
    (r"(?:just|please) move on|move on already", (0.8, 0, 0, 0), 0),
    (
        r"(?:my )?patience (?:is |has )?(?:wearing|running|gone|worn|thin|out)"
        r"|(?:lost|losing|out of|run out of|running out of) (?:my |all )?patience",
        (1.2, 0, 0.3, 0),
        0,
    ),
    (r"impatien(?:t|ce)", (1.0, 0, 0.1, 0), 1),
    (r"patience", (0.6, 0, 0, 0), 0),
    (r"tedious|tiresome|cumbersome|a chore|chore", (0.7, 0, 0, 0), 1),
    (r"hassle", (0.7, 0, 0, 0), 1),
    (r"exhausting|exhausted|draining|wearing me down|worn down|worn out", (0.9, 0, 0, 0), 1),
    (r"pointless|hopeless", (1.0, 0, 0.2, 0), 1),
    (r"u+g+h+|a+r+g+h+|sigh|g+r+r+|ffs", (0.9, 0, 0.2, 0), 0),
    (r"for (?:god'?s|heaven'?s|pete'?s|goodness'?|christ'?s) sake", (1.0, 0, 0.5, 0), 0),
    (r"come on|give me a break", (0.8, 0, 0.2, 0), 0),
    (r"(?:seriously|really)\?+", (0.7, 0, 0.3, 0), 0),
    (
        r"are you (?:kidding|serious|joking)|you(?:'ve| have|'re) got to be kidding",
        (1.0, 0, 0.4, 0),
        0,
    ),
    (r"whatever(?=\s*[.!]|\s*$)", (0.5, 0, 0.1, 0), 0),
    (
        r"why (?:is|does) (?:this|it|everything) (?:so |this |have to be so )?"
        r"(?:hard|difficult|complicated|slow|complex)|why does (?:this|it) have to be so \w+",
        (1.2, 0, 0.2, 0.1),
        0,
    ),
    (r"so (?:complicated|difficult|hard|slow)", (0.6, 0, 0, 0.2), 0),
    (r"nothing (?:works|is working|ever works)", (0.8, 0, 0.2, 0), 0),
    (r"drag(?:s|ging|ged)? on|dragging", (1.0, 0, 0, 0), 0),
    (
        r"no time for (?:this|that)|don'?t have (?:all day|time for this)"
        r"|i have better things to do",
        (1.0, 0, 0.2, 0),
        0,
    ),
    (r"nightmare", (0.6, 0.5, 0, 0), 0),
    (r"mess", (0.5, 0, 0.4, 0), 0),
    (r"(?:ok(?:ay)?|fine|sure|great)\.\.\.+", (0.5, 0, 0.1, 0), 0),
    # ---- anxiety
    (r"worr(?:y|ied|ies|ying|isome)", (0, 1.1, 0, 0), 1),
    (
        r"(?:can'?t|cannot|couldn'?t) stop (?:worrying|thinking about (?:it|this|that))",
        (0, 1.5, 0, 0),
        0,
    ),
    (r"nervous(?:ly|ness)?|anxious(?:ly)?|anxiety|apprehensive|jittery", (0, 1.1, 0, 0), 1),
    (r"uneasy|on edge|tense", (0, 0.8, 0, 0), 1),
    (r"scared|frightened", (0, 1.3, 0, 0), 1),
    (
        r"(?:i'?m |i am )?(?:so |really |very |quite )?afraid (?:of|that|it|this|i'll|i will"
        r"|i might|i may|i'?m going to|something|my|we|about)",
        (0, 1.2, 0, 0),
        1,
    ),
    (r"i'?m afraid|afraid", (0, 0.3, 0, 0), 1),
    (r"fear(?:ful|ing|s)?", (0, 0.9, 0, 0), 1),
    (
        r"terrified|petrified|panic(?:ked|king|ky|s)?|freak(?:ing|ed) out|dread(?:ing|ed)?",
        (0, 1.7, 0, 0),
        1,
    ),
    (r"stress(?:ed|ful|ing)?", (0.2, 1.0, 0, 0), 1),
    (
        r"losing sleep|can'?t sleep|sick with worry|worried sick|heart (?:is )?(?:racing|pounding)"
        r"|nervous wreck|a wreck",
        (0, 1.4, 0, 0),
        0,
    ),
    (r"concerned", (0, 0.8, 0, 0), 1),
    (r"concerns?", (0, 0.5, 0, 0), 1),
    (r"what if|what happens if|what would happen if|what will happen (?:if|to)", (0, 1.0, 0, 0), 0),
    (
        r"(?:are|r) you (?:absolutely |completely |totally |100% |really )?"
        r"(?:sure|certain|positive)",
        (0, 0.8, 0, 0.2),
        0,
    ),
    (r"just to be (?:safe|sure|certain)|to be on the safe side", (0, 0.7, 0, 0), 0),
    (r"make sure|making sure", (0, 0.3, 0, 0), 0),
    (r"(?:double|triple)[- ]?check(?:ed|ing)?|check (?:again|once more)", (0, 0.7, 0, 0), 0),
    (
        r"(?:really|actually) (?:went|gone|go|goes) through"
        r"|did (?:it|that|this) (?:actually |really )?go through"
        r"|(?:has|did) it (?:actually |really )?(?:work|worked)",
        (0, 0.9, 0, 0),
        0,
    ),
    (
        r"reassur(?:e|ed|ance|ing)|(?:tell|promise) me (?:it|this|that|everything|nothing)",
        (0, 1.0, 0, 0),
        0,
    ),
    (
        r"(?:is|will) (?:it|everything|that|this) (?:be |going to be )?(?:ok|okay|alright|all right"
        r"|fine|safe)\?|is (?:everything|something) (?:wrong|ok|okay|alright)",
        (0, 0.9, 0, 0),
        0,
    ),
    (
        r"(?:go|goes|going|went|gone) wrong|make a mistake|making a mistake|made a mistake"
        r"|(?:did|done) something wrong"
        r"|i(?:'ve| have)? (?:messed|screwed) (?:it |this |something |things |anything )?up"
        r"|mess(?:ed)? (?:anything|something|it|this|things) up",
        (0, 0.9, 0, 0),
        0,
    ),
    (
        r"(?:will|would|could|am|do) i (?:lose|be charged|get charged|be penali[sz]ed|be billed"
        r"|end up|be stuck|get in trouble)|lose (?:my|the) (?:booking|reservation|money|deposit"
        r"|room|account|data|number|order)|(?:be|get|getting) charged (?:twice|again|extra|more)"
        r"|(?:extra|hidden|unexpected) (?:fee|fees|charge|charges)|end up (?:in|with|paying)",
        (0, 0.9, 0, 0),
        0,
    ),
    (
        r"(?:cause|causing|get into|get in|be in) (?:any |more )?trouble"
        r"|(?:cause|causing) (?:any |more )?problems?",
        (0, 0.8, 0, 0),
        0,
    ),
    (r"(?:i )?hope(?:fully)?", (0, 0.3, 0, 0), 0),
    (
        r"sorry,? sorry|so sorry to (?:bother|ask)|sorry to (?:bother|keep asking)",
        (0, 0.6, 0, 0),
        0,
    ),
    (r"sorry", (0, 0.15, 0, 0), 0),
    (r"urgent(?:ly)?|emergency|time[- ]sensitive|running out of time", (0.1, 1.0, 0, 0), 0),
    (r"please hurry|hurry", (0.3, 0.8, 0, 0), 0),
    (r"asap|as soon as (?:possible|you can)|right away", (0.3, 0.5, 0, 0), 0),
    (
        r"too late|deadline|last minute"
        r"|(?:arrive|make it|get (?:it|there|here)|be (?:there|ready|done|fixed)|ready|done)"
        r" in time",
        (0, 0.5, 0, 0),
        0,
    ),
    (r"(?:really |very |so )important|i can'?t afford", (0, 0.6, 0, 0), 0),
    (r"risk(?:y|s)?|danger(?:ous)?|unsafe|is it safe", (0, 0.6, 0, 0), 1),
    (r"desperate(?:ly)?|helpless|overwhelm(?:ed|ing)", (0.2, 1.0, 0, 0.2), 1),
    # ---- confusion
    (r"confus(?:ed|ing|ion|es)", (0, 0, 0, 1.4), 1),
    (
        r"(?:do|did)(?:n'?t| not) (?:really |quite |fully |totally )?(?:understand|get it|get that"
        r"|get this|get what|get how|get why|follow|see what you mean)",
        (0, 0, 0, 1.3),
        0,
    ),
    (
        r"not (?:understanding|following)|hard to follow|can'?t follow|lost track|lost me",
        (0, 0, 0, 1.2),
        0,
    ),
    (
        r"i(?:'m| am) (?:so |completely |totally |a bit |a little |kind of |really )?lost",
        (0, 0, 0, 1.2),
        0,
    ),
    (
        r"not (?:quite |entirely |totally |really |100% |completely )?(?:sure|certain) "
        r"(?:i |that i )?(?:follow|understand|get it|understood)"
        r"|not sure what (?:you mean|that means|you'?re asking)",
        (0, 0, 0, 1.2),
        0,
    ),
    (
        r"(?:do(?:n'?t| not)|not sure i) know what (?:to do|i(?:'m| am) supposed to do)",
        (0, 0.4, 0, 0.9),
        0,
    ),
    (
        r"do(?:n'?t| not) know what (?:you mean|that means|you(?:'re| are) (?:asking|saying))",
        (0, 0, 0, 1.3),
        0,
    ),
    (
        r"not (?:quite |entirely |totally |really |100% |completely )?(?:sure|certain|clear)",
        (0, 0.2, 0, 0.7),
        0,
    ),
    (r"unsure|unclear", (0, 0.1, 0, 0.8), 1),
    (
        r"puzzl(?:ed|ing)|baffl(?:ed|ing)|bewilder(?:ed|ing)|perplex(?:ed|ing)|mystif(?:ied|ying)",
        (0, 0, 0, 1.3),
        1,
    ),
    (r"what do you mean|what(?:'s| is) that supposed to mean", (0, 0, 0, 1.3), 0),
    (r"what does (?:[\w'-]+ ){1,4}mean", (0, 0, 0, 1.2), 0),
    (
        r"what(?:'?s| is) the difference|how (?:is|are) (?:that|this|they) different",
        (0, 0, 0, 1.0),
        0,
    ),
    (r"difference between|meaning of", (0, 0, 0, 0.5), 0),
    (
        r"which (?:of (?:these|those|them|the two)|one) (?:is|do|did|should|applies)",
        (0, 0, 0, 0.6),
        0,
    ),
    (
        r"(?:can|could|would) you (?:please )?(?:explain|clarify|repeat|rephrase|say that again"
        r"|go over|walk me through|break (?:it|that|this) down)",
        (0, 0, 0, 0.7),
        0,
    ),
    (
        r"explain (?:that |this |it )?again"
        r"|(?:put|say|explain) (?:it |that |this )?(?:more )?simpl\w*"
        r"|in plain english|in simple terms|layman'?s terms|from the (?:beginning|start)",
        (0, 0, 0, 1.0),
        0,
    ),
    (r"simpler|more simply|simple (?:terms|words)", (0, 0, 0, 0.6), 0),
    (r"clarif(?:y|ication)", (0, 0, 0, 0.8), 0),
    (r"huh\??|wait,? what|what\?+|what now\?|come again\?", (0, 0, 0, 1.2), 0),
    (r"sorry,? (?:which|what)(?: one)?", (0, 0.1, 0, 0.8), 0),
    (r"um+|uh+|erm+|hmm+", (0, 0, 0, 0.4), 0),
    (
        r"wait(?:,|\.\.\.|!| a (?:sec|second|minute|moment))|wait wait|hold on|hang on",
        (0, 0, 0, 0.5),
        0,
    ),
    (
        r"which (?:one|option|part|step|of (?:these|those|them))(?: (?:applies|do i|should i"
        r"|is (?:mine|it|right|for me)))|applies to me",
        (0, 0, 0, 0.8),
        0,
    ),
    (
        r"(?:you(?:'re| are) saying|does that mean|so that means|do you mean|you mean)",
        (0, 0, 0, 0.7),
        0,
    ),
    (r"i thought (?:you said|it was|that|i)", (0, 0, 0, 0.6), 0),
    (
        r"no idea|(?:have|got) no clue|not a clue"
        r"|haven'?t (?:a|the (?:faintest|foggiest)) (?:clue|idea)",
        (0, 0.1, 0, 1.1),
        0,
    ),
    (
        r"what (?:am i|should i|do i) (?:supposed to do|meant to do|do now|need to do)"
        r"|what (?:now|next)\?|what do i do",
        (0, 0.3, 0, 0.9),
        0,
    ),
    (r"how (?:does|do) (?:that|this|it) (?:work|help)", (0, 0, 0, 0.6), 0),
    (
        r"makes? no sense|(?:does|do|did)(?:n'?t| not) make (?:any )?sense"
        r"|(?:none|nothing) of (?:this|that|it) makes (?:any )?sense",
        (0.2, 0, 0, 1.3),
        0,
    ),
    (r"mix(?:ed|ing)? (?:(?:it|them|things) )?up|muddled|misread|misunderst\w*", (0, 0, 0, 0.9), 0),
    (r"too (?:much|many) (?:information|options|steps|details|choices)", (0, 0.2, 0, 0.8), 0),
    (
        r"i (?:think|guess) i (?:understand|get it|follow)|if i understand (?:correctly|right)"
        r"|let me get this straight|just so i understand|(?:did|do) i understand",
        (0, 0, 0, 0.6),
        0,
    ),
]

_INTENSIFIERS = _words(
    "very so really extremely absolutely completely totally utterly incredibly truly seriously"
    " super deeply beyond thoroughly genuinely terribly awfully insanely bloody damn fucking"
    " freaking increasingly unbelievably especially too most"
)
_DIMINISHERS = frozenset(
    {"a bit", "a little", "slightly", "somewhat", "kind of", "kinda", "sort of", "a tad",
     "mildly", "a touch", "rather", "bit", "little", "fairly"}
)  # fmt: skip
_NEGATORS = _words(
    "not no never nothing without hardly nor neither cannot nobody dont cant wont didnt isnt"
    " arent wasnt doesnt havent hasnt wouldnt couldnt shouldnt aint"
)


_KEY = 3  # cues are looked up by the first three characters at a word start


class _Unknown(Exception):
    pass


def _strings(seq: Any, n: int) -> set[str]:
    """The strings of length ``n`` that a match of the parsed regex ``seq`` can start with,
    plus its complete matches shorter than ``n``."""
    out = {""}
    for op, av in seq:
        new: set[str] = set()
        for p in out:
            if len(p) >= n:
                new.add(p)
            else:
                new.update(p + q for q in _element(op, av, n - len(p)))
        out = new
    return out


def _element(op: Any, av: Any, n: int) -> set[str]:
    from re import _constants as k

    if op is k.LITERAL:
        return {chr(av)}
    if op is k.IN:
        chars: set[str] = set()
        for iop, iav in av:
            if iop is k.LITERAL:
                chars.add(chr(iav))
            elif iop is k.RANGE:
                chars.update(chr(c) for c in range(iav[0], iav[1] + 1))
            else:  # a category (\w) or a negated set
                raise _Unknown
        return chars
    if op is k.AT or op is k.ASSERT or op is k.ASSERT_NOT:
        return {""}
    if op is k.BRANCH:
        return set().union(*(_strings(alt, n) for alt in av[1]))
    if op is k.SUBPATTERN:
        return _strings(av[-1], n)
    if op is k.MAX_REPEAT or op is k.MIN_REPEAT:
        lo, hi, sub = av
        return set().union(*(_strings(list(sub) * t, n) for t in range(lo, min(hi, n) + 1)))
    raise _Unknown


def _prefixes(pattern: str) -> set[str] | None:
    """The first :data:`_KEY` characters a match of ``pattern`` can start with (shorter for
    complete short matches); None when unknown (the cue is then tried at every word)."""
    try:
        from re import _parser as parser

        return _strings(parser.parse(pattern), _KEY)
    except Exception:  # re's parser is internal: fall back to "try it everywhere"
        return None


def _compile_lexicon() -> tuple[list[tuple[re.Pattern[str], Any, bool]], dict[str, set[int]]]:
    """The cues in priority order (longer, more specific patterns first), each compiled with
    its word-end check, and an index: first characters -> cue numbers.

    Scanning a message tries, at each word start, only the cues whose match can begin with
    the next three characters; the first that matches wins and the scan goes on after it.
    That is what one big alternation would do, at a fraction of the cost (Python's regex
    engine tries every branch of an alternation at every word).
    """
    ordered = sorted(_CUES, key=lambda c: -len(c[0]))
    cues = []
    index: dict[str, set[int]] = {}
    for i, (p, w, n) in enumerate(ordered):
        rx = re.compile(f"(?:{p})(?![\\w'])")
        if rx.groups:
            raise AssertionError(f"cue {p!r} must use only non-capturing groups")
        cues.append((rx, w, bool(n)))
        for key in _prefixes(p) or {""}:
            index.setdefault(key, set()).add(i)
    return cues, index


_CUE_LIST, _CUE_INDEX = _compile_lexicon()
_WORD_START_RE = re.compile(r"(?<![\w'])[^\W_]")


@lru_cache(maxsize=1 << 16)
def _candidates(key: str) -> tuple[tuple[re.Pattern[str], Any, bool], ...]:
    """Cues that can match where the text continues with ``key``, in priority order."""
    ids: set[int] = set(_CUE_INDEX.get("", ()))
    for j in range(1, len(key) + 1):
        ids.update(_CUE_INDEX.get(key[:j], ()))
    return tuple(_CUE_LIST[i] for i in sorted(ids))


_BREAK_RE = re.compile(r"[.!?;:,()\"]|\bbut\b")
_CAPS_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{3,}(?![A-Za-z0-9])")
_LETTERS_RE = re.compile(r"[A-Za-z]{3,}")
_ELONGATED_RE = re.compile(r"([a-z])\1\1")
_ACRONYMS = _words(
    "USD EUR GBP CAD AUD JPY PDF URL SMS VIP API FAQ CEO USA NYC ATM PIN SIM ETA UTC GMT EST PST"
    " CST APN VPN WIFI LTE ISBN AAA SUV IMEI"
)


def _modifier(lower: str, start: int, negatable: bool) -> float:
    """x0 if negated, x1.4 after an intensifier, x0.6 after a diminisher, else x1."""
    window = _BREAK_RE.split(lower[max(0, start - 40) : start])[-1].split()[-3:]
    if not window:
        return 1.0
    if negatable and any(w in _NEGATORS or w.endswith("n't") for w in window):
        return 0.0
    last = window[-1]
    if last in _DIMINISHERS or (len(window) >= 2 and f"{window[-2]} {last}" in _DIMINISHERS):
        return 0.6
    if last in _INTENSIFIERS:
        return 1.4
    return 1.0


def _raw_scores(text: str) -> tuple[float, float, float, float]:
    lower = text.lower()
    if "\u2019" in lower or "\u2018" in lower:
        lower = lower.replace("\u2019", "'").replace("\u2018", "'")
    raw = [0.0, 0.0, 0.0, 0.0]
    hit = False
    end = 0
    for start_m in _WORD_START_RE.finditer(lower):
        start = start_m.start()
        if start < end:
            continue
        for rx, w, negatable in _candidates(lower[start : start + _KEY]):
            m = rx.match(lower, start)
            if m is None:
                continue
            end = m.end()
            if any(w):
                k = _modifier(lower, start, negatable)
                if k:
                    hit = True
                    raw[0] += w[0] * k
                    raw[1] += w[1] * k
                    raw[2] += w[2] * k
                    raw[3] += w[3] * k
            break
    q = lower.count("?")
    double_q = "??" in lower
    if double_q:
        raw[_CO] += 0.5
        hit = True
    elif q >= 3:
        raw[_CO] += 0.3
        hit = True
    if not hit:
        return (0.0, 0.0, 0.0, 0.0)
    # shouting scales every emotion the words expressed
    mult = 1.0
    caps = [w for w in _CAPS_RE.findall(text) if w not in _ACRONYMS]
    words = _LETTERS_RE.findall(text)
    if len(words) >= 3 and all(w.isupper() for w in words):
        mult += 0.6
    elif caps:
        mult += 0.25 * min(len(caps), 3)
    if "!!" in text:
        mult += 0.3
    else:
        mult += 0.1 * min(text.count("!"), 2)
    if double_q:
        mult += 0.2
    if _ELONGATED_RE.search(lower):
        mult += 0.15
    mult = min(mult, 2.0)
    return (
        1.0 - math.exp(-raw[0] * mult),
        1.0 - math.exp(-raw[1] * mult),
        1.0 - math.exp(-raw[2] * mult),
        1.0 - math.exp(-raw[3] * mult),
    )


_emotion_scores = lru_cache(maxsize=1 << 18)(_raw_scores)

# ------------------------------------------------------------------------------ valence
_VADER: Any = None
_VADER_MISSING = False


def _analyzer(required: bool) -> Any:
    global _VADER, _VADER_MISSING
    if _VADER is None and not _VADER_MISSING:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError:
            _VADER_MISSING = True
        else:
            _VADER = SentimentIntensityAnalyzer()
    if _VADER is None and required:
        raise ImportError(
            "valence needs the vaderSentiment package: pip install 'vaderSentiment>=3.3.2' "
            "(or pass valence=False)"
        )
    return _VADER


@lru_cache(maxsize=1 << 18)
def _valence(text: str) -> float:
    return float(_VADER.polarity_scores(text)["compound"])


def _want_valence(valence: bool | None) -> bool:
    if valence is False:
        return False
    return _analyzer(required=valence is True) is not None


# ------------------------------------------------------------------------------ one message
def score_message(text: str, *, valence: bool | None = None) -> dict[str, float]:
    """Scores of one customer message: ``frustration``, ``anxiety``, ``anger``, ``confusion``
    (0..1, see the module docstring) and ``valence`` (VADER compound, -1..1).

    ``valence``: None computes it when ``vaderSentiment`` is installed (NaN otherwise), True
    requires it (ImportError if missing), False skips it (NaN). Results are cached by text.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected the message text as str, got {type(text).__name__}")
    fr, ax, an, co = _emotion_scores(text)
    out = {"frustration": fr, "anxiety": ax, "anger": an, "confusion": co}
    out["valence"] = _valence(text) if _want_valence(valence) else math.nan
    return out


def detected_emotion(scores: Mapping[str, float], threshold: float = DEFAULT_THRESHOLD) -> str:
    """The emotion with the highest score among those at or above ``threshold``, else "none".

    ``scores`` maps emotion names (or ``<emotion>_score`` columns) to scores; other keys such
    as ``valence`` are ignored, missing or NaN emotions count as 0. Ties go to the emotion
    listed first in :data:`EMOTIONS`.
    """
    best, best_score = "none", -math.inf
    for e in EMOTIONS:
        s = scores.get(e, scores.get(f"{e}_score", 0.0))
        if s is None or s != s:  # NaN
            continue
        if s >= threshold and s > best_score:
            best, best_score = e, s
    return best


# ------------------------------------------------------------------------------ episodes
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
    _check_threshold(threshold)
    use_valence = _want_valence(valence)
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
                scores.append(_emotion_scores(text))
                vals.append(_valence(text) if use_valence else math.nan)
    df = pd.DataFrame(cols)
    df["turn_index"] = df["turn_index"].astype("Int64")
    mat = np.asarray(scores, dtype=float)
    for k, c in enumerate(SCORE_COLUMNS):
        df[c] = mat[:, k]
    df["valence"] = np.asarray(vals, dtype=float)
    df["detected"] = _detect_matrix(mat, threshold)
    df["text"] = texts
    return df


def _detect_matrix(mat: np.ndarray, threshold: float) -> np.ndarray:
    """Vectorised :func:`detected_emotion` over rows of a (n, 4) score matrix."""
    filled = np.where(np.isnan(mat), 0.0, mat)
    best = filled.argmax(axis=1)
    ok = filled[np.arange(len(filled)), best] >= threshold
    labels = np.asarray(EMOTIONS, dtype=object)[best]
    return np.where(ok, labels, "none").astype(object)


def _check_threshold(threshold: float) -> None:
    if not (isinstance(threshold, int | float) and 0 < threshold <= 1):
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")


# ------------------------------------------------------------------------------ the check
_REQUIRED = ("task_id", "variant", "trial", "turn_index", "n_user_turns", "intended",
             "intended_intensity", *SCORE_COLUMNS)  # fmt: skip


def _score_col(ep: pd.DataFrame, emotion: str) -> np.ndarray | None:
    if emotion == "any":
        return ep[list(SCORE_COLUMNS)].to_numpy().max(axis=1)
    if emotion in EMOTIONS:
        return ep[f"{emotion}_score"].to_numpy()
    return None


def _components(intended: str) -> list[str]:
    return ["any"] if intended == "none" else intended.split("+")


def _boot_compare(
    task_v: np.ndarray,
    hit_v: np.ndarray,
    task_r: np.ndarray,
    hit_r: np.ndarray,
    n_boot: int,
    seed: int,
    level: float,
) -> tuple[float, float, float, float]:
    """Task-bootstrap percentile intervals of the variant's rate and of (variant - reference).

    Tasks (the union of both arms') are drawn with replacement and each drawn task brings all
    its episodes in both arms, so the difference is paired by task. Returns (rate_low,
    rate_high, diff_low, diff_high).
    """
    tasks, inv = np.unique(np.concatenate([task_v, task_r]).astype(str), return_inverse=True)
    t = len(tasks)
    iv, ir = inv[: len(task_v)], inv[len(task_v) :]
    kv = np.bincount(iv, weights=hit_v, minlength=t)
    nv = np.bincount(iv, minlength=t).astype(float)
    kr = np.bincount(ir, weights=hit_r, minlength=t)
    nr = np.bincount(ir, minlength=t).astype(float)
    rng = np.random.default_rng(seed)
    rows = max(1, 2_000_000 // t)
    rate_parts, diff_parts = [], []
    for start in range(0, n_boot, rows):
        m = min(rows, n_boot - start)
        idx = rng.integers(0, t, size=(m, t))
        flat = (idx + t * np.arange(m)[:, None]).ravel()
        w = np.bincount(flat, minlength=m * t).reshape(m, t).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            rv = (w @ kv) / (w @ nv)
            rr = (w @ kr) / (w @ nr)
        rate_parts.append(rv)
        diff_parts.append(rv - rr)
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rl, rh = np.nanpercentile(np.concatenate(rate_parts), [tail, 100 - tail])
        dl, dh = np.nanpercentile(np.concatenate(diff_parts), [tail, 100 - tail])
    return float(rl), float(rh), float(dl), float(dh)


def manipulation_check(
    messages_df: pd.DataFrame,
    reference: str = "control",
    *,
    threshold: float = DEFAULT_THRESHOLD,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Did each arm's customer express its intended emotion, more than the reference arm's?

    ``messages_df`` is :func:`score_episodes` output (or :func:`label_with_judge` output).
    An episode *expresses* an emotion when the maximum of that emotion's score over its
    customer messages is at least ``threshold``. Returns a dict of DataFrames:

    ``expression``
        One row per non-reference arm and intended emotion (each component of a composite;
        ``any`` = the highest of the four scores for arms with no intended emotion, such as
        the ``neutral`` placebo): ``variant, intended, emotion, n_tasks, n_episodes,
        expressed, rate, rate_low, rate_high, reference, reference_episodes,
        reference_rate, diff, diff_low, diff_high, placebo, flag``. Intervals are
        ``level`` (95%) percentile bootstraps over tasks (``n_boot`` draws, seed ``seed``;
        the difference is paired by task). **Flag rule**: ``flag`` is True when the variant's
        rate is not clearly above the reference's, i.e. when the lower bound of the interval
        of ``diff = rate - reference_rate`` is <= 0 (a one-sided test at 2.5%), or when fewer
        than 2 tasks make an interval meaningless. For an emotional arm True means the
        manipulation failed; for a ``placebo`` row (no intended emotion) True is the
        desired outcome.
    ``confusion_counts`` / ``confusion_rates``
        Episodes by intended emotion (rows: ``none``, the four emotions, then any composite
        or custom label) and detected emotion (columns: ``none`` + the four; the argmax of the
        episode's maximum scores at ``threshold``), as counts and as row shares (NaN for rows
        with no episodes).
    ``intensity``
        One row per (emotion, requested intensity) over every arm that has that component:
        ``emotion, intensity, variants, n_episodes, mean_score`` (mean over episodes of the
        episode's mean score of that emotion across its customer messages), ``mean_max_score``,
        ``rate`` and ``monotonic`` (per emotion: True when ``mean_score`` rises strictly
        mild < moderate < severe over the intensities present, <NA> with fewer than two).
    ``stability``
        One row per arm and intended emotion (``any`` for arms without one) over episodes
        with at least two customer messages: ``variant, intended, emotion, n_episodes,
        first, last, diff`` (mean score in the first and last customer message, last - first).
    ``episodes``
        The episode-level table behind these: the key, ``intended``,
        ``intended_intensity``, ``n_user_turns``, maximum ``<emotion>_score`` per episode and
        ``detected``.
    """
    if not isinstance(messages_df, pd.DataFrame):
        raise ValueError(f"expected a DataFrame of messages, got {type(messages_df).__name__}")
    if messages_df.empty:
        raise ValueError("the message table is empty: no episodes to check")
    missing = [c for c in _REQUIRED if c not in messages_df.columns]
    if missing:
        raise ValueError(
            f"message table is missing column(s): {', '.join(missing)} (make it with "
            "score_episodes)"
        )
    _check_threshold(threshold)
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot!r}")
    arms = list(dict.fromkeys(messages_df["variant"]))
    if reference not in arms:
        raise ValueError(
            f"reference arm {reference!r} is not in the table (arms: {', '.join(map(str, arms))})"
        )

    key = ["variant", "task_id", "trial"]
    df = messages_df
    g = df.groupby(key, sort=False, dropna=False)
    ep = g[["intended", "intended_intensity", "n_user_turns"]].first()
    ep_max = g[list(SCORE_COLUMNS)].max().fillna(0.0)
    ep_mean = g[list(SCORE_COLUMNS)].mean().fillna(0.0)
    ep = ep.join(ep_max).reset_index()
    ep_mean = ep_mean.reset_index()
    ep["intended"] = ep["intended"].fillna("none").astype(str)
    ep["detected"] = _detect_matrix(ep[list(SCORE_COLUMNS)].to_numpy(dtype=float), threshold)

    expression = _expression(ep, arms, reference, threshold, level, n_boot, seed)
    counts, rates = _confusion(ep)
    intensity = _intensity(ep, ep_mean, threshold)
    stability = _stability(df, arms)
    return {
        "expression": expression,
        "confusion_counts": counts,
        "confusion_rates": rates,
        "intensity": intensity,
        "stability": stability,
        "episodes": ep,
    }


def _expression(
    ep: pd.DataFrame,
    arms: list[Any],
    reference: str,
    threshold: float,
    level: float,
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    ref = ep[ep["variant"] == reference]
    rows = []
    unknown: set[str] = set()
    for arm in arms:
        if arm == reference:
            continue
        sub = ep[ep["variant"] == arm]
        intended = str(sub["intended"].iloc[0])
        for emotion in _components(intended):
            sv, sr = _score_col(sub, emotion), _score_col(ref, emotion)
            if sv is None or sr is None:
                unknown.add(emotion)
                continue
            hv, hr = (sv >= threshold).astype(float), (sr >= threshold).astype(float)
            rate, ref_rate = float(hv.mean()), float(hr.mean())
            n_tasks = int(sub["task_id"].astype(str).nunique())
            if n_tasks >= 2:
                rl, rh, dl, dh = _boot_compare(
                    sub["task_id"].to_numpy(),
                    hv,
                    ref["task_id"].to_numpy(),
                    hr,
                    n_boot,
                    seed,
                    level,
                )
            else:
                rl = rh = dl = dh = math.nan
            rows.append(
                {
                    "variant": arm,
                    "intended": intended,
                    "emotion": emotion,
                    "n_tasks": n_tasks,
                    "n_episodes": len(sub),
                    "expressed": int(hv.sum()),
                    "rate": rate,
                    "rate_low": rl,
                    "rate_high": rh,
                    "reference": reference,
                    "reference_episodes": len(ref),
                    "reference_rate": ref_rate,
                    "diff": rate - ref_rate,
                    "diff_low": dl,
                    "diff_high": dh,
                    "placebo": intended == "none",
                    "flag": not (dl > 0),  # NaN (too few tasks) flags too
                }
            )
    if unknown:
        warnings.warn(
            f"no score for emotion(s) {', '.join(sorted(unknown))}: the scorer knows "
            f"{', '.join(EMOTIONS)}; those components are left out",
            stacklevel=3,
        )
    columns = ["variant", "intended", "emotion", "n_tasks", "n_episodes", "expressed", "rate",
               "rate_low", "rate_high", "reference", "reference_episodes", "reference_rate",
               "diff", "diff_low", "diff_high", "placebo", "flag"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _confusion(ep: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    extra = [x for x in dict.fromkeys(ep["intended"]) if x not in LABELS]
    index = pd.Index([*LABELS, *extra], name="intended")
    columns = pd.Index(list(LABELS), name="detected")
    counts = (
        pd.crosstab(ep["intended"], ep["detected"])
        .reindex(index=index, columns=columns, fill_value=0)
        .astype(int)
    )
    counts.index.name, counts.columns.name = "intended", "detected"
    totals = counts.sum(axis=1).replace(0, np.nan)
    rates = counts.div(totals, axis=0)
    return counts, rates


def _intensity(ep: pd.DataFrame, ep_mean: pd.DataFrame, threshold: float) -> pd.DataFrame:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    combos = ep.loc[ep["intended"] != "none", ["intended", "intended_intensity"]]
    for intended, intensity in combos.drop_duplicates().itertuples(index=False):
        emotions = str(intended).split("+")
        levels = (
            str(intensity).split("+")
            if isinstance(intensity, str)
            else ["moderate"] * len(emotions)
        )
        mask = (ep["intended"] == intended) & (
            ep["intended_intensity"] == intensity
            if isinstance(intensity, str)
            else ep["intended_intensity"].isna()
        )
        mask = mask.to_numpy()
        for emotion, level_ in zip(emotions, levels, strict=False):
            if emotion not in EMOTIONS:
                continue
            col = f"{emotion}_score"
            slot = groups.setdefault((emotion, level_), {"variants": [], "mean": [], "max": []})
            slot["variants"].extend(dict.fromkeys(ep.loc[mask, "variant"].astype(str)))
            slot["mean"].append(ep_mean.loc[mask, col].to_numpy())
            slot["max"].append(ep.loc[mask, col].to_numpy())
    order = {e: i for i, e in enumerate(EMOTIONS)}
    lvl = {x: i for i, x in enumerate(INTENSITIES)}
    rows = []
    for (emotion, level_), slot in sorted(
        groups.items(), key=lambda kv: (order[kv[0][0]], lvl.get(kv[0][1], 99), kv[0][1])
    ):
        mean = np.concatenate(slot["mean"])
        mx = np.concatenate(slot["max"])
        rows.append(
            {
                "emotion": emotion,
                "intensity": level_,
                "variants": ", ".join(dict.fromkeys(slot["variants"])),
                "n_episodes": len(mean),
                "mean_score": float(mean.mean()),
                "mean_max_score": float(mx.mean()),
                "rate": float((mx >= threshold).mean()),
            }
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "emotion",
            "intensity",
            "variants",
            "n_episodes",
            "mean_score",
            "mean_max_score",
            "rate",
        ],
    )
    mono: dict[str, Any] = {}
    for emotion, sub in out.groupby("emotion", sort=False):
        ranked = sub[sub["intensity"].isin(INTENSITIES)]
        ranked = ranked.assign(_o=ranked["intensity"].map(lvl)).sort_values("_o")
        vals = ranked["mean_score"].to_numpy()
        mono[emotion] = bool(np.all(np.diff(vals) > 0)) if len(vals) >= 2 else pd.NA
    out["monotonic"] = pd.array([mono[e] for e in out["emotion"]], dtype="boolean")
    return out


def _stability(df: pd.DataFrame, arms: list[Any]) -> pd.DataFrame:
    ok = df["turn_index"].notna() & (df["n_user_turns"] >= 2)
    sub = df[ok]
    ti = sub["turn_index"].astype(int)
    first = sub[ti == 0]
    last = sub[ti == sub["n_user_turns"] - 1]
    rows = []
    for arm in arms:
        f, la = first[first["variant"] == arm], last[last["variant"] == arm]
        if f.empty:
            intended = str(df.loc[df["variant"] == arm, "intended"].iloc[0])
        else:
            intended = str(f["intended"].iloc[0])
        for emotion in _components(intended):
            sf, sl = _score_col(f, emotion), _score_col(la, emotion)
            if sf is None or sl is None:
                continue
            mf = float(sf.mean()) if len(sf) else math.nan
            ml = float(sl.mean()) if len(sl) else math.nan
            rows.append(
                {
                    "variant": arm,
                    "intended": intended,
                    "emotion": emotion,
                    "n_episodes": len(f),
                    "first": mf,
                    "last": ml,
                    "diff": ml - mf,
                }
            )
    return pd.DataFrame(
        rows, columns=["variant", "intended", "emotion", "n_episodes", "first", "last", "diff"]
    )


# ------------------------------------------------------------------------------ LLM judge
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


def _judge_prompt(rubric: str, batch: Sequence[str]) -> str:
    items = "\n".join(
        json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in enumerate(batch, 1)
    )
    return f"{rubric.rstrip()}\n\nMessages ({len(batch)}), one JSON object per line:\n{items}\n"


async def _label_batch(
    client: ModelClient, rubric: str, batch: Sequence[str], retries: int
) -> list[tuple[str, int]]:
    prompt = _judge_prompt(rubric, batch)
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    error = ""
    for _attempt in range(retries + 1):
        resp = await client.complete(
            ChatRequest(
                messages=list(messages),
                metadata={"role": "judge", "purpose": "emotion_labels", "count": len(batch)},
            )
        )
        try:
            return parse_judge_answer(resp.content, len(batch))
        except ValueError as exc:
            error = str(exc)
            # show the judge its unusable answer, so that a deterministic model can change it
            messages = [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": resp.content or ""},
                {
                    "role": "user",
                    "content": f"That answer could not be used ({error}). Reply with only the "
                    f"JSON object, with one label for each of the {len(batch)} messages.",
                },
            ]
    raise InfraError(
        f"the judge gave no usable emotion labels after {retries + 1} attempts: {error}"
    )


async def label_with_judge(
    client: ModelClient,
    messages: pd.DataFrame | Sequence[str],
    rubric: str = JUDGE_RUBRIC,
    *,
    batch_size: int = 20,
    retries: int = 3,
    concurrency: int = 4,
) -> pd.DataFrame:
    """Label customer messages with an LLM judge instead of the lexicon.

    ``messages`` is a :func:`score_episodes` table (its ``text`` column is labelled) or a list
    of message texts. Distinct non-empty texts are sent ``batch_size`` at a time with
    ``rubric`` (at most ``concurrency`` requests in flight), as ``ChatRequest`` with metadata
    ``{"role": "judge", "purpose": "emotion_labels", "count": <batch size>}``. An unusable
    answer is retried ``retries`` times (the judge is shown its answer and the problem), then
    :class:`emotau.errors.InfraError` is raised; the client's own errors propagate.

    The result has the lexicon's columns: for a table, a copy whose ``<emotion>_score``
    columns hold ``intensity / 3`` for the judged emotion (0 for the others) and whose
    ``detected`` is the judged emotion ("none" at intensity 0), so it can go straight to
    :func:`manipulation_check`; ``valence`` is kept (the judge does not rate it). For a list,
    a table of ``text``, the four score columns, ``valence`` (NaN) and ``detected``. Both add
    ``judge_emotion`` and ``judge_intensity``. Placeholder rows (no text) keep NaN scores.
    """
    if batch_size < 1 or retries < 0 or concurrency < 1:
        raise ValueError("batch_size and concurrency must be >= 1 and retries >= 0")
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
    batches = [unique[i : i + batch_size] for i in range(0, len(unique), batch_size)]
    sem = asyncio.Semaphore(concurrency)

    async def one(batch: list[str]) -> list[tuple[str, int]]:
        async with sem:
            return await _label_batch(client, rubric, batch, retries)

    results = await asyncio.gather(*(one(b) for b in batches))
    labels: dict[str, tuple[str, int]] = {}
    for batch, res in zip(batches, results, strict=True):
        labels.update(zip(batch, res, strict=True))

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
    out["judge_emotion"] = emo
    out["judge_intensity"] = pd.array(
        [None if math.isnan(k) else int(k) for k in inten], dtype="Int64"
    )
    return out
