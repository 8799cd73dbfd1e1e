"""emotau's offline emotion scorer: a hand-written cue lexicon for customer messages.

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
* :func:`lexicon_label` is the same verdict as a judge gives it: (emotion, intensity 0..3).

This package is low in the house (it needs neither numpy nor pandas), so that the scripted
models can use it; the manipulation check over whole runs is :mod:`emotau.analysis.emotion`,
whose docstring lists the limits of this scorer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

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
@lru_cache(maxsize=1)
def _vader() -> Any:
    """VADER's analyzer, built once; None when vaderSentiment is not installed."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        return None
    return SentimentIntensityAnalyzer()


def valence_available(valence: bool | None = None) -> bool:
    """Whether valence is computed: ``False`` never, ``None`` when vaderSentiment is
    installed, ``True`` always (ImportError when it is not installed)."""
    if valence is False:
        return False
    if _vader() is None and valence is True:
        raise ImportError(
            "valence needs the vaderSentiment package: pip install 'vaderSentiment>=3.3.2' "
            "(or pass valence=False)"
        )
    return _vader() is not None


@lru_cache(maxsize=1 << 18)
def valence_score(text: str) -> float:
    """VADER's compound score of ``text`` (-1..1), cached by text; needs vaderSentiment."""
    analyzer = _vader()
    if analyzer is None:
        valence_available(True)  # raises the ImportError with the install line
    return float(analyzer.polarity_scores(text)["compound"])


def emotion_scores(text: str) -> tuple[float, float, float, float]:
    """The four emotion scores of ``text`` in :data:`EMOTIONS` order (cached by text)."""
    return _emotion_scores(text)


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
    out["valence"] = valence_score(text) if valence_available(valence) else math.nan
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


#: :func:`lexicon_label`'s intensity from the strongest score: below the threshold (0.3, so
#: "none") 0; up to 0.6 (about one mild cue) 1; up to 0.9 (a clear or intensified cue) 2; from
#: 0.9 (strong words, stacked cues, shouting) 3
INTENSITY_CUTS = (0.6, 0.9)


def lexicon_label(text: str) -> tuple[str, int]:
    """(emotion, intensity 0..3) of one message, as an LLM judge would label it: the emotion
    is :func:`detected_emotion`, the intensity comes from the strongest score
    (:data:`INTENSITY_CUTS`)."""
    scores = score_message(text, valence=False)
    emotion = detected_emotion(scores)
    if emotion == "none":
        return "none", 0
    strongest = max(scores[e] for e in EMOTIONS)
    return emotion, 1 + sum(strongest >= cut for cut in INTENSITY_CUTS)
