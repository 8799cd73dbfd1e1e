"""The manipulation check: did the customers of each arm express their emotion, more than
the reference arm's? (:func:`manipulation_check`; the module :mod:`emotau.analysis.emotion`
documents it.)"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from emotau.analysis._messages import check_threshold, detect_matrix
from emotau.emotion import DEFAULT_THRESHOLD, EMOTIONS, INTENSITIES, LABELS, SCORE_COLUMNS

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
    check_threshold(threshold)
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
    ep["detected"] = detect_matrix(ep[list(SCORE_COLUMNS)].to_numpy(dtype=float), threshold)

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
