"""Episode and turn tables from episode records, in one streaming pass.

:func:`episode_table` gives one row per episode, :func:`turn_table` one row per turn and
:func:`build_tables` both at once. Each takes any iterable of records (``run.episodes()``, or a
generator reading shard files) and keeps only column lists, never the records, so memory grows
with the table, not with the trajectories. Light records (``run.episodes(light=True)``) work
too (they keep ``usage``): the columns that need ``turns`` are then missing values
(``<NA>``/NaN).

Missing values: counts are nullable integers (``Int64``), the behaviour flags nullable
booleans; ``turns_before_first_tool`` is ``<NA>`` when the agent never called a tool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from emotau.analysis.conversation import FAILURE_REASONS, classify_failure, message_behaviours
from emotau.core import UserError, record_key

USAGE_ROLES = ("agent", "user", "judge")
USAGE_FIELDS = ("calls", "prompt_tokens", "completion_tokens", "latency_s", "cost_usd")
_USAGE_INT = ("calls", "prompt_tokens", "completion_tokens")

#: episode-table columns and their dtypes, in order
EPISODE_COLUMNS: dict[str, str] = {
    "task_id": "int64",
    "variant": "str",
    "trial": "int64",
    "status": "str",
    "scored": "bool",
    "reward": "float64",
    "success": "bool",
    "termination": "str",
    "synthetic": "bool",
    "emotion": "str",
    "intensity": "str",
    "num_turns": "Int64",
    "num_agent_steps": "Int64",
    "num_tool_calls": "Int64",
    "tool_errors": "Int64",
    "user_turns": "Int64",
    "agent_messages": "Int64",
    "user_chars_mean": "float64",
    "agent_chars_mean": "float64",
    "turns_before_first_tool": "Int64",
    "duration_s": "float64",
    **{
        f"{role}_{f}": "Int64" if f in _USAGE_INT else "float64"
        for role in USAGE_ROLES
        for f in USAGE_FIELDS
    },
    "retries": "Int64",
    "failure": "str",
    "transfer_kind": "str",
    **{f"fail_{r}": "bool" for r in FAILURE_REASONS},
    "apologies": "Int64",
    "acknowledgements": "Int64",
    "clarifying_questions": "Int64",
    "any_apology": "boolean",
    "any_acknowledgement": "boolean",
    "any_clarifying_question": "boolean",
}
#: turn-table columns and their dtypes, in order
TURN_COLUMNS: dict[str, str] = {
    "task_id": "int64",
    "variant": "str",
    "trial": "int64",
    "turn_index": "int64",
    "role": "str",
    "content": "str",
    "chars": "int64",
    "n_tool_calls": "int64",
    "tool_errors": "int64",
    "is_message": "bool",
    "stop": "str",
    "t": "float64",
    "duration_s": "float64",
}
#: episode columns computed from ``turns`` (missing for light records)
_TURN_STATS = (
    "tool_errors",
    "user_turns",
    "agent_messages",
    "user_chars_mean",
    "agent_chars_mean",
    "turns_before_first_tool",
    "apologies",
    "acknowledgements",
    "clarifying_questions",
    "any_apology",
    "any_acknowledgement",
    "any_clarifying_question",
)


def episode_table(episodes: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per episode; columns :data:`EPISODE_COLUMNS` (see the module docs)."""
    return _build(episodes, episodes=True, turns=False)[0]


def turn_table(episodes: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per turn; columns :data:`TURN_COLUMNS`.

    ``chars`` is the length of ``content`` (0 when None), ``n_tool_calls``/``tool_errors`` the
    turn's tool calls and those with an error, ``is_message`` whether the turn reached the other
    party (a customer message, or an agent turn without tool calls), ``stop`` the customer's
    stop reason. Light records have no turns and add no rows.
    """
    return _build(episodes, episodes=False, turns=True)[1]


def build_tables(episodes: Iterable[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(:func:`episode_table`, :func:`turn_table`) in one pass over ``episodes``."""
    ep, tu = _build(episodes, episodes=True, turns=True)
    return ep, tu


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` to a Parquet file (needs pyarrow)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UserError("writing Parquet needs pyarrow: pip install 'pyarrow>=16'") from None
    df.to_parquet(path, index=False)


# ------------------------------------------------------------------------ the one pass
def _build(
    records: Iterable[Mapping[str, Any]], *, episodes: bool, turns: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if isinstance(records, str | bytes | Mapping) or not isinstance(records, Iterable):
        raise ValueError("expected an iterable of episode records (dicts)")
    ep: dict[str, list[Any]] = {c: [] for c in EPISODE_COLUMNS}
    tu: dict[str, list[Any]] | None = {c: [] for c in TURN_COLUMNS} if turns else None
    seen: set[tuple[int, str, int]] = set()
    for i, rec in enumerate(records):
        key = _key(rec, i)
        if key in seen:
            raise ValueError(f"duplicate episode key {key}: pass merged records (run.episodes())")
        seen.add(key)
        stats = _turns(rec.get("turns"), key, tu)
        if episodes:
            _episode_row(ep, rec, key, stats)
    if not seen:
        raise ValueError("no episode records given")
    seen.clear()
    return _frame(ep, EPISODE_COLUMNS), _frame(tu or {c: [] for c in TURN_COLUMNS}, TURN_COLUMNS)


def _key(rec: Any, i: int) -> tuple[int, str, int]:
    if not isinstance(rec, Mapping):
        raise ValueError(f"episode record {i} is a {type(rec).__name__}, not a dict")
    try:
        return record_key(rec)
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"episode record {i} is missing its key fields (task_id, variant, trial)"
        ) from None


def _frame(cols: dict[str, list[Any]], dtypes: dict[str, str]) -> pd.DataFrame:
    """Convert column by column, dropping each list once converted (lower peak memory)."""
    arrays = {}
    for c, dtype in dtypes.items():
        arrays[c] = pd.array(cols.pop(c), dtype=dtype)
    return pd.DataFrame(arrays, copy=False)


def _turns(
    turns: Any, key: tuple[int, str, int], tu: dict[str, list[Any]] | None
) -> dict[str, Any] | None:
    """Episode statistics of ``turns`` (None without turns); append turn rows to ``tu``."""
    if not isinstance(turns, list):
        return None
    n_user = n_agent = user_chars = agent_chars = errors = 0
    before_tool: int | None = None
    behaviour = [0, 0, 0]
    for index, turn in enumerate(turns):
        if not isinstance(turn, Mapping):
            continue
        role, content = turn.get("role"), turn.get("content")
        text = content if isinstance(content, str) else ""
        calls = turn.get("tool_calls") or ()
        n_err = sum(1 for c in calls if isinstance(c, Mapping) and c.get("error"))
        errors += n_err
        if role == "user":
            n_user += 1
            user_chars += len(text)
        elif role == "agent" and calls:
            if before_tool is None:
                before_tool = n_user
        elif role == "agent":
            n_agent += 1
            agent_chars += len(text)
            for j, hit in enumerate(message_behaviours(text)):
                behaviour[j] += hit
        if tu is not None:
            _turn_row(tu, key, index, turn, role, content, len(text), len(calls), n_err)
    return {
        "tool_errors": errors,
        "user_turns": n_user,
        "agent_messages": n_agent,
        "user_chars_mean": user_chars / n_user if n_user else None,
        "agent_chars_mean": agent_chars / n_agent if n_agent else None,
        "turns_before_first_tool": before_tool,
        "apologies": behaviour[0],
        "acknowledgements": behaviour[1],
        "clarifying_questions": behaviour[2],
        "any_apology": behaviour[0] > 0,
        "any_acknowledgement": behaviour[1] > 0,
        "any_clarifying_question": behaviour[2] > 0,
    }


def _turn_row(
    tu: dict[str, list[Any]],
    key: tuple[int, str, int],
    index: int,
    turn: Mapping[str, Any],
    role: Any,
    content: Any,
    chars: int,
    n_calls: int,
    n_err: int,
) -> None:
    tu["task_id"].append(key[0])
    tu["variant"].append(key[1])
    tu["trial"].append(key[2])
    tu["turn_index"].append(index)
    tu["role"].append(role)
    tu["content"].append(content if isinstance(content, str) else None)
    tu["chars"].append(chars)
    tu["n_tool_calls"].append(n_calls)
    tu["tool_errors"].append(n_err)
    tu["is_message"].append(role == "user" or (role == "agent" and not n_calls))
    tu["stop"].append(turn.get("stop"))
    tu["t"].append(_num(turn.get("t")))
    tu["duration_s"].append(_num(turn.get("duration_s")))


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _episode_row(
    ep: dict[str, list[Any]],
    rec: Mapping[str, Any],
    key: tuple[int, str, int],
    stats: dict[str, Any] | None,
) -> None:
    ep["task_id"].append(key[0])
    ep["variant"].append(key[1])
    ep["trial"].append(key[2])
    for name in ("status", "termination"):
        ep[name].append(rec.get(name))
    for name in ("scored", "success", "synthetic"):
        ep[name].append(bool(rec.get(name)))
    ep["reward"].append(_num(rec.get("reward")))
    emotion, intensity = variant_emotion(rec.get("variant_info"))
    ep["emotion"].append(emotion)
    ep["intensity"].append(intensity)
    for name in ("num_turns", "num_agent_steps", "num_tool_calls"):
        ep[name].append(_int(rec.get(name)))
    ep["duration_s"].append(_num(rec.get("duration_s")))
    _usage(ep, rec.get("usage"))
    failure = classify_failure(rec)
    ep["failure"].append(failure.category)
    ep["transfer_kind"].append(failure.transfer_kind)
    for reason in FAILURE_REASONS:
        ep[f"fail_{reason}"].append(reason in failure.reasons)
    for name in _TURN_STATS:
        ep[name].append(None if stats is None else stats[name])


def _usage(ep: dict[str, list[Any]], usage: Any) -> None:
    usage = usage if isinstance(usage, Mapping) else {}
    for role in USAGE_ROLES:
        block = usage.get(role)
        block = block if isinstance(block, Mapping) else {}
        for f in USAGE_FIELDS:
            conv = _int if f in _USAGE_INT else _num
            ep[f"{role}_{f}"].append(conv(block.get(f)))
    ep["retries"].append(_int(usage.get("retries")))


def variant_emotion(variant_info: Any) -> tuple[str | None, str | None]:
    """(emotion, intensity) of a variant from ``variant_info.components``.

    ``emotion`` joins the components' emotions with '+' ("frustration+confusion"), or is
    "none" for control and placebo arms; ``intensity`` is the emotional components' intensity
    (joined with '+' when they differ), "none" without emotion. (None, None) when unknown.
    """
    comps = variant_info.get("components") if isinstance(variant_info, Mapping) else None
    if not isinstance(comps, list):
        return None, None
    emotional = [c for c in comps if isinstance(c, Mapping) and c.get("emotion")]
    if not emotional:
        return "none", "none"
    emotion = "+".join(str(c["emotion"]) for c in emotional)
    levels = [str(c.get("intensity")) for c in emotional]
    return emotion, levels[0] if len(set(levels)) == 1 else "+".join(levels)
