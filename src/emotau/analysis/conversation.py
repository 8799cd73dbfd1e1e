"""Failure taxonomy and conversation behaviour of finished episodes.

Three parts, all over plain episode records or the table of :func:`emotau.analysis.tables.
episode_table`:

- **Agent behaviour** in its messages to the customer: apologies, acknowledging the customer's
  feelings, and clarifying questions, found by the regular expressions below (written for
  emotau; see each list for the exact rule). :func:`message_behaviours` tells one message.
- **Failure taxonomy**: :func:`classify_failure` gives each scored, failed episode one primary
  category and every reason that applies; :func:`failure_taxonomy` counts them per variant.
- **Summaries**: :func:`conversation_summary` (per-variant means with a task-clustered standard
  error) and :func:`behaviour_vs_success` (success with and without each behaviour).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from emotau.core import Status, Termination

# ------------------------------------------------------------------------ agent behaviour
_FEELING = (
    r"(?:frustrat\w*|upset\w*|annoy\w*|stress\w*|worr\w*|anxi\w*|concern\w*|disappoint\w*"
    r"|inconvenien\w*|confus\w*|angry|anger|aggravat\w*|exasperat\w*|unsettl\w*|overwhelm\w*"
    r"|irritat\w*|distress\w*|difficult|hard|tough|unfair|unacceptable|nerve-?wracking)"
)
_CUSTOMER_FEELS = (
    r"(?:frustrated|upset|worried|angry|anxious|confused|stressed|disappointed|annoyed"
    r"|concerned|overwhelmed|unhappy|irritated|nervous)"
)
_INTENSIFIERS = (
    r"(?: (?:so|very|really|truly|incredibly|extremely|understandably|completely|quite"
    r"|deeply|a bit|a little|particularly|especially))*"
)

#: an apology: any of these in the message (after :data:`NOT_APOLOGY` is blanked out)
APOLOGY_PATTERNS: tuple[str, ...] = (
    r"\bapolog(?:y|ies|i[sz]e[sd]?|i[sz]ing)\b",  # apology, my apologies, I apologise ...
    r"\bsorry\b",
    r"\bregret (?:the|any|that|this)\b",  # "we regret the inconvenience"
    r"\bpardon (?:the|my)\b",
    r"\bplease forgive\b",
)
#: phrases that mention an apology without making one ("no need to apologise")
NOT_APOLOGY = (
    r"\b(?:no need|nothing) to (?:apologi[sz]e|be sorry)\b|\bdon'?t (?:apologi[sz]e|be sorry)\b"
)

#: acknowledging feelings, anywhere in the message
ACKNOWLEDGEMENT_PATTERNS: tuple[str, ...] = (
    r"\bi hear you\b",
    r"\bi can (?:only |certainly |definitely )?imagine\b",
    r"\b(?:that|this) must (?:be|have been|feel)\b",
    r"\bunderstandabl[ey]\b",
    r"\b(?:completely|totally|perfectly|entirely|fully) (?:understand|understandable|valid)\b",
    r"\byour (?:frustration|concerns?|worry|worries|disappointment|anger|stress|anxiety"
    r"|confusion|upset|feelings?)\b",
    r"\byou(?:'re| are| must be| might be| may be| seem| sound|'ve been| have been)"
    rf"(?: \w+)? {_CUSTOMER_FEELS}\b",
    rf"\b(?:that|this|it)(?:'s| is| was| has been| must be| sounds| seems| can be){_INTENSIFIERS}"
    rf" {_FEELING}",
    r"(?:^|[.!?]\s+)i understand\s*(?:[.!]|$)",  # a bare "I understand."
)
#: an empathy verb, which counts only in a sentence that also names a feeling (:data:`_FEELING`)
EMPATHY_VERB = (
    r"\bi (?:can |do |completely |totally |fully |really |truly |absolutely )?"
    r"(?:understand|see|appreciate|recogni[sz]e|realize|realise|know|get)\b"
)

#: a request for information, anywhere in the message (with or without a question mark)
INFO_REQUEST_PATTERNS: tuple[str, ...] = (
    r"\b(?:could|can|would|will) you (?:please )?(?:provide|confirm|tell|share|give|send"
    r"|clarify|specify|let me know|check|verify|describe|spell|repeat|double-check|look up"
    r"|find|list|explain)\b",
    r"\b(?:please|kindly) (?:provide|share|confirm|tell me|let me know|specify|clarify|send"
    r"|give me|describe)\b",
    r"\bi(?:'ll| will| would)? need (?:your|the|to know|you to (?:provide|confirm|tell))\b",
    r"\bmay i (?:have|ask|get|know|see)\b",
)
#: inside a question sentence (one containing '?'): the question asks for information
QUESTION_INFO_PATTERNS: tuple[str, ...] = (
    r"\b(?:which|what|when|where|who|whom|whose|why|how)\b",
    r"\b(?:do|did|does) you (?:have|know|remember|recall|mean|prefer|happen|still)\b",
    r"\b(?:is|was|are|were) (?:it|that|this|these|those)\b",  # "is that correct?"
    r"\bor\b",  # a choice: "the standard or the deluxe room?"
)
#: closing or generic offers of help, never a clarifying question
QUESTION_CLOSING = (
    r"\b(?:anything|something) else\b|\bwhat else\b|\bhow (?:else )?(?:can|may|could) i"
    r" (?:help|assist)\b|\bhow are you\b"
)


def _any(patterns: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


_APOLOGY = _any(APOLOGY_PATTERNS)
_NOT_APOLOGY = re.compile(NOT_APOLOGY, re.IGNORECASE)
_ACK = _any(ACKNOWLEDGEMENT_PATTERNS)
_EMPATHY = re.compile(EMPATHY_VERB, re.IGNORECASE)
_FEEL = re.compile(rf"\b{_FEELING}", re.IGNORECASE)
_INFO = _any(INFO_REQUEST_PATTERNS)
_Q_INFO = _any(QUESTION_INFO_PATTERNS)
_CLOSING = re.compile(QUESTION_CLOSING, re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


def is_apology(text: str) -> bool:
    """An apology (``sorry``, ``apologi…``, ``my apologies``, ``we regret the…``)."""
    text = _NOT_APOLOGY.sub(" ", text.translate(_APOSTROPHES))
    return _APOLOGY.search(text) is not None


def is_acknowledgement(text: str) -> bool:
    """Acknowledges the customer's feelings.

    Either a phrase of :data:`ACKNOWLEDGEMENT_PATTERNS` ("I hear you", "that must be",
    "your frustration", "you're upset", "this is so frustrating", a bare "I understand."), or a
    sentence with an empathy verb ("I understand", "I can see", "I know") that also names a
    feeling ("how frustrating", "why you're upset", "your concern").
    """
    text = text.translate(_APOSTROPHES)
    if _ACK.search(text):
        return True
    return any(_EMPATHY.search(s) and _FEEL.search(s) for s in _SENTENCE.split(text) if s.strip())


def is_clarifying_question(text: str) -> bool:
    """Asks the customer for information.

    True when the message has an explicit request (:data:`INFO_REQUEST_PATTERNS`: "could you
    provide", "can you confirm", "please share", "I'll need your"), or a question sentence
    (one holding '?') that asks for information (:data:`QUESTION_INFO_PATTERNS`: a wh-word,
    "do you have/mean", "is that", a choice with "or") and is not a closing offer of help
    ("Is there anything else…?", "How can I help?"). A request for permission alone ("Shall I
    go ahead?", "Would you like me to proceed?") is not a clarifying question.
    """
    text = text.translate(_APOSTROPHES)
    if _INFO.search(text):
        return True
    for sentence in _SENTENCE.split(text):
        if "?" in sentence and _Q_INFO.search(sentence) and not _CLOSING.search(sentence):
            return True
    return False


@lru_cache(maxsize=65536)
def message_behaviours(text: str) -> tuple[bool, bool, bool]:
    """(apology, acknowledgement, clarifying question) of one agent message (cached)."""
    return is_apology(text), is_acknowledgement(text), is_clarifying_question(text)


# ------------------------------------------------------------------------ failure taxonomy
#: primary categories, in the order of precedence used to pick one
FAILURE_CATEGORIES: tuple[str, ...] = (
    "step_limit",
    "agent_tool_errors",
    "empty_reply",  # the agent spent its token budget on nothing (agent_empty_reply)
    Termination.USER_GAVE_UP.value,  # the category is named after the termination
    "transfer",
    "wrong_state",
    "missing_output",
    "nl_assertion",
    "other",
)
#: every reason flag; ``false_goal_met`` is a flag only, never the primary category
FAILURE_REASONS: tuple[str, ...] = (*FAILURE_CATEGORIES[:-1], "false_goal_met", "other")
_TERMINATION_REASONS = {
    Termination.MAX_STEPS: "step_limit",
    Termination.AGENT_ERROR: "agent_tool_errors",
    Termination.AGENT_EMPTY_REPLY: "empty_reply",
    Termination.USER_GAVE_UP: Termination.USER_GAVE_UP.value,
}
_TRANSFER_TERMINATIONS = frozenset({Termination.TRANSFER_TO_HUMAN, Termination.USER_TRANSFERRED})
#: a tool name prefix (transfer_to_human_agents and the like), not a termination
_TRANSFER_TOOL = "transfer_to_human"


@dataclass(frozen=True)
class Failure:
    """Why a scored episode failed: one primary ``category``, every reason, and the transfer
    direction (``unneeded``: handed off a customer it should have served; ``missed``: kept one
    it should have handed off). ``category`` is None for successes and unscored episodes."""

    category: str | None = None
    reasons: frozenset[str] = field(default_factory=frozenset)
    transfer_kind: str | None = None


def classify_failure(record: Mapping[str, Any]) -> Failure:
    """Classify one episode record (full or light); unknown breakdown shapes give ``other``.

    Termination reasons (``max_steps``, ``agent_error``, ``agent_empty_reply``, ``user_gave_up``)
    take precedence, then a
    wrong transfer, then the breakdown's own checks; see :data:`FAILURE_CATEGORIES`.
    """
    if not record.get("scored") or record.get("success"):
        return Failure()
    termination = record.get("termination")
    reasons: set[str] = set()
    if termination in _TERMINATION_REASONS:
        reasons.add(_TERMINATION_REASONS[termination])
    if termination == Termination.USER_GOAL_MET:
        reasons.add("false_goal_met")
    try:
        kind = _breakdown_reasons(record.get("reward_breakdown"), termination, reasons)
    except (TypeError, ValueError, AttributeError, KeyError):
        kind = None
    if kind is not None:
        reasons.add("transfer")
    primary = next((c for c in FAILURE_CATEGORIES[:-1] if c in reasons), "other")
    if primary == "other":
        reasons.add("other")
    return Failure(primary, frozenset(reasons), kind)


def _breakdown_reasons(bd: Any, termination: Any, reasons: set[str]) -> str | None:
    """Add the breakdown's failed checks to ``reasons``; return the transfer kind, if wrong."""
    if not isinstance(bd, Mapping):
        return None
    done = termination in _TRANSFER_TERMINATIONS
    if "db_match" in bd:  # emotau's built-in domains
        _hotel(bd, reasons)
        tr = bd.get("transfer")
        if isinstance(tr, Mapping) and "required" in tr and "done" in tr:
            return _transfer_kind(bool(tr["required"]), bool(tr["done"]))
        return None
    if "r_actions" in bd:  # tau-bench: transfers are not checked, a failed hand-off is wrong
        if not bd["r_actions"]:
            reasons.add("wrong_state")
        if _outputs_missing(bd.get("outputs")) or _below_one(bd, "r_outputs"):
            reasons.add("missing_output")
        return "unneeded" if done else None
    if _TAU2_KEYS & bd.keys():
        required = _tau2(bd, reasons)
        return _transfer_kind(bool(required), done) if required is not None or done else None
    return None


def _transfer_kind(required: bool, done: bool) -> str | None:
    if required == done:
        return None
    return "missed" if required else "unneeded"


def _outputs_missing(outputs: Any) -> bool:
    return isinstance(outputs, Mapping) and not all(bool(v) for v in outputs.values())


def _hotel(bd: Mapping[str, Any], reasons: set[str]) -> None:
    if bd.get("db_match") is False:
        reasons.add("wrong_state")
    if _outputs_missing(bd.get("outputs")):
        reasons.add("missing_output")


_TAU2_KEYS = frozenset(
    {"db_check", "reward_basis", "env_assertions", "action_checks", "nl_assertions"}
    | {"communicate_checks", "evaluation_error"}
)
#: tau2 reward type -> (check list, the field saying it passed, the reason when it did not)
_TAU2_CHECKS = {
    "ENV_ASSERTION": ("env_assertions", "met", "wrong_state"),
    "ACTION": ("action_checks", "action_match", "wrong_state"),
    "COMMUNICATE": ("communicate_checks", "met", "missing_output"),
    "NL_ASSERTION": ("nl_assertions", "met", "nl_assertion"),
}
#: upstream tau2's own termination names, as its note spells them -> reason
_TAU2_NOTES = {"max_steps": "step_limit", "too_many_errors": "agent_tool_errors"}


def _tau2(bd: Mapping[str, Any], reasons: set[str]) -> bool | None:
    """Add tau2's failed checks (those in ``reward_basis``, all when absent); return whether the
    gold actions include a transfer (None when there are no action checks)."""
    basis = bd.get("reward_basis")
    counted = set(basis) if isinstance(basis, list) and basis else set(_TAU2_CHECKS) | {"DB"}
    per_type = _mapping(bd.get("reward_breakdown"))
    if "DB" in counted and (
        _mapping(bd.get("db_check")).get("db_match") is False or _below_one(per_type, "DB")
    ):
        reasons.add("wrong_state")
    for rtype, (key, ok_field, reason) in _TAU2_CHECKS.items():
        failed = any(c.get(ok_field) is False for c in _mappings(bd.get(key)))
        if rtype in counted and (failed or _below_one(per_type, rtype)):
            reasons.add(reason)
    note = _mapping(bd.get("info")).get("note")
    for token, reason in _TAU2_NOTES.items():
        if isinstance(note, str) and token in note:
            reasons.add(reason)
    actions = [_mapping(c.get("action")) for c in _mappings(bd.get("action_checks"))]
    names = [str(a.get("name", "")) for a in actions]
    return any(n.startswith(_TRANSFER_TOOL) for n in names) if names else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _below_one(values: Mapping[str, Any], key: str) -> bool:
    value = values.get(key)
    return isinstance(value, int | float) and not isinstance(value, bool) and value < 1


# ------------------------------------------------------------------------ summaries
POOLED = "(pooled)"
#: measures of :func:`conversation_summary` (episode-table columns; booleans become rates)
SUMMARY_MEASURES: tuple[str, ...] = (
    "num_turns",
    "user_turns",
    "agent_messages",
    "user_chars_mean",
    "agent_chars_mean",
    "num_tool_calls",
    "turns_before_first_tool",
    "any_apology",
    "any_acknowledgement",
    "any_clarifying_question",
)
#: behaviour -> its boolean episode-table column
BEHAVIOURS = {
    "apology": "any_apology",
    "acknowledgement": "any_acknowledgement",
    "clarifying_question": "any_clarifying_question",
}


def _check(df: Any, columns: Sequence[str]) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected the episode table (a DataFrame), got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"episode table is missing column(s): {', '.join(missing)}")
    if df.empty:
        raise ValueError("episode table is empty")
    return df


def _variants(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["variant"]))


def failure_taxonomy(episode_df: pd.DataFrame) -> pd.DataFrame:
    """Per variant and category: counts and shares of the scored episodes' failures.

    Columns: ``variant, category, n_scored, n_failed, n_primary`` (episodes with this primary
    category), ``share`` (of the failures; sums to 1 per variant with failures), ``rate`` (of
    the scored episodes), ``n_flagged`` and ``share_flagged`` (episodes with this reason among
    others; overlapping) and ``detail`` (the transfer directions). ``false_goal_met`` rows are
    flags only: their ``n_primary`` is always 0.
    """
    flags = [f"fail_{r}" for r in FAILURE_REASONS]
    df = _check(episode_df, ["variant", "scored", "success", "failure", "transfer_kind", *flags])
    rows = []
    for variant in _variants(df):
        sub = df[df["variant"] == variant]
        scored = sub[sub["scored"].astype(bool)]
        failed = scored[~scored["success"].astype(bool)]
        nf = len(failed)
        for cat in FAILURE_REASONS:
            n_primary = int((failed["failure"] == cat).sum())
            n_flag = int(failed[f"fail_{cat}"].astype(bool).sum())
            kinds = failed["transfer_kind"].dropna().value_counts() if cat == "transfer" else {}
            rows.append(
                {
                    "variant": variant,
                    "category": cat,
                    "n_scored": len(scored),
                    "n_failed": nf,
                    "n_primary": n_primary,
                    "share": n_primary / nf if nf else math.nan,
                    "rate": n_primary / len(scored) if len(scored) else math.nan,
                    "n_flagged": n_flag,
                    "share_flagged": n_flag / nf if nf else math.nan,
                    "detail": ", ".join(f"{k}={v}" for k, v in sorted(dict(kinds).items())),
                }
            )
    return pd.DataFrame(rows)


def clustered_mean(values: Sequence[float] | np.ndarray, clusters: Sequence[Any]) -> tuple:
    """(n, mean, se) of the non-missing values; se is the cluster-robust (task-clustered)
    standard error sqrt(G/(G-1) * sum_g (sum_i (x_gi - mean))^2) / n (NaN with < 2 clusters)."""
    x = pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").to_numpy(float)
    g = np.asarray(clusters)
    ok = ~np.isnan(x)
    x, g = x[ok], g[ok]
    n = len(x)
    if n == 0:
        return 0, math.nan, math.nan
    mean = float(x.mean())
    sums = pd.Series(x - mean).groupby(g).sum().to_numpy()
    k = len(sums)
    se = math.sqrt(k / (k - 1) * float((sums**2).sum())) / n if k > 1 else math.nan
    return n, mean, se


def conversation_summary(episode_df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per variant, the mean of each of :data:`SUMMARY_MEASURES` over completed episodes.

    Columns: ``variant, measure, n, mean, se, ci_low, ci_high``. The interval is a normal one,
    mean +- z * se, with the task-clustered standard error of :func:`clustered_mean` (episodes
    of one task are correlated). Boolean measures (``any_*``) are rates of episodes.
    ``turns_before_first_tool`` is over episodes with at least one tool call.
    """
    df = _check(episode_df, ["task_id", "variant", "status", *SUMMARY_MEASURES])
    z = NormalDist().inv_cdf(0.5 + level / 2)
    df = df[df["status"] == Status.COMPLETED]
    rows = []
    for variant in _variants(df):
        sub = df[df["variant"] == variant]
        for measure in SUMMARY_MEASURES:
            n, mean, se = clustered_mean(sub[measure].to_numpy(object), sub["task_id"].to_numpy())
            rows.append(
                {
                    "variant": variant,
                    "measure": measure,
                    "n": n,
                    "mean": mean,
                    "se": se,
                    "ci_low": mean - z * se,
                    "ci_high": mean + z * se,
                }
            )
    return pd.DataFrame(rows)


def behaviour_vs_success(episode_df: pd.DataFrame) -> pd.DataFrame:
    """Success of scored episodes with and without each behaviour, per variant and pooled.

    Columns: ``variant`` (:data:`POOLED` for all variants together), ``behaviour``, ``n_with``,
    ``successes_with``, ``success_with``, ``n_without``, ``successes_without``,
    ``success_without``, ``difference`` (with - without). Episodes without turns (light
    records) are left out.
    """
    df = _check(episode_df, ["variant", "scored", "success", *BEHAVIOURS.values()])
    df = df[df["scored"].astype(bool)]
    groups = [(v, df[df["variant"] == v]) for v in _variants(df)] + [(POOLED, df)]
    rows = []
    for variant, sub in groups:
        for name, col in BEHAVIOURS.items():
            has = sub[col]
            known = has.notna().to_numpy()
            flag = has[known].astype(bool).to_numpy()
            ok = sub["success"].to_numpy(bool)[known]
            rows.append({"variant": variant, "behaviour": name, **_split(ok, flag)})
    return pd.DataFrame(rows)


def _split(success: np.ndarray, flag: np.ndarray) -> dict[str, Any]:
    n_w, n_wo = int(flag.sum()), int((~flag).sum())
    s_w, s_wo = int(success[flag].sum()), int(success[~flag].sum())
    rate_w = s_w / n_w if n_w else math.nan
    rate_wo = s_wo / n_wo if n_wo else math.nan
    return {
        "n_with": n_w,
        "successes_with": s_w,
        "success_with": rate_w,
        "n_without": n_wo,
        "successes_without": s_wo,
        "success_without": rate_wo,
        "difference": rate_w - rate_wo,
    }
