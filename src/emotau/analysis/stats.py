"""Statistics over scored episodes: pass^k, task-bootstrap intervals, paired tests, power.

Every function takes a DataFrame with one row per scored episode and the columns ``task_id``,
``variant``, ``trial``, ``success`` and ``reward``. Episodes of one task are correlated (the same
task is easy or hard in every trial), so all resampling is over *tasks*: intervals come from a
percentile bootstrap that draws tasks with replacement, and the permutation test flips the sign
of whole tasks. Each variant's bootstrap starts its own ``np.random.default_rng(seed)`` and draws
``integers(0, T, size=(rows, T))`` task indices (all n_boot rows at once unless n_boot * T is
over 2 million cells, then in row chunks), so results do not depend on the other variants.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd

from emotau.results import task_pass_hat_k

COLUMNS = ("task_id", "variant", "trial", "success", "reward")
DEFAULT_ICC = 0.3
"""Assumed intra-task correlation of success when none is given. tau-bench tasks are strongly
clustered (a task an agent fails once it tends to fail every time); 0.3 is an assumed
placeholder, not a measured value. Pass :func:`estimate_icc` of a real control arm instead."""

_CHUNK = 2_000_000  # bootstrap/permutation matrix cells held at once


def _frame(df: pd.DataFrame, required: Sequence[str] = COLUMNS) -> pd.DataFrame:
    """Check columns and values; return a copy with ``success`` as bool and ``reward`` as float."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame of episodes, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"episode table is missing column(s): {', '.join(missing)}")
    if df.empty:
        raise ValueError("episode table is empty: no scored episodes to analyse")
    out = df[list(required)].copy()
    nulls = [c for c in required if out[c].isna().any()]
    if nulls:
        raise ValueError(f"episode table has missing values in column(s): {', '.join(nulls)}")
    if not out["success"].isin([0, 1]).all():
        raise ValueError("column 'success' must hold booleans (or 0/1)")
    out["success"] = out["success"].astype(bool)
    if "reward" in out:
        out["reward"] = out["reward"].astype(float)
    key = [c for c in ("task_id", "variant", "trial") if c in out]
    if len(key) == 3 and out.duplicated(key).any():
        raise ValueError("episode table has duplicate (task_id, variant, trial) rows")
    return out


def _one_arm(df: pd.DataFrame, required: Sequence[str]) -> pd.DataFrame:
    """Validate a table that must hold a single arm (when it has a variant column at all)."""
    out = _frame(df, required)
    if "variant" in df.columns and df["variant"].nunique() > 1:
        raise ValueError("expected the episodes of one arm; filter the table by variant first")
    return out


#: pass^k of one task (``pass_hat_k(c, n, k)``): :func:`emotau.results.task_pass_hat_k`
pass_hat_k = task_pass_hat_k


def _pass_matrix(c: np.ndarray, n: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """Per-task pass^k (rows: tasks) for each k (columns); NaN where n < k."""
    return np.array(
        [[task_pass_hat_k(int(ci), int(ni), k) for k in ks] for ci, ni in zip(c, n, strict=True)],
        dtype=float,
    ).reshape(len(c), len(ks))


def _task_aggregates(df: pd.DataFrame) -> pd.DataFrame:
    """Successes, trials and reward sum per task (index task_id, sorted)."""
    return df.groupby("task_id", sort=True).agg(
        c=("success", "sum"), n=("success", "size"), r=("reward", "sum")
    )


def pass_k(df_variant: pd.DataFrame, k: int) -> float:
    """Mean pass^k over the tasks of one arm with at least k trials (NaN if there are none)."""
    df = _one_arm(df_variant, ("task_id", "success"))
    g = df.groupby("task_id")["success"].agg(["sum", "size"])
    vals = [pass_hat_k(int(c), int(n), k) for c, n in zip(g["sum"], g["size"], strict=True)]
    vals = [v for v in vals if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _bootstrap(
    n_tasks: int, n_boot: int, seed: int, stat: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Apply ``stat`` to task-count weight matrices (rows = draws); stack the (draws, m) results.

    Each draw resamples ``n_tasks`` task indices with replacement; a row of the weight matrix
    counts how often each task was drawn, so sums over resampled tasks are ``weights @ values``.
    """
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK // n_tasks)
    parts = []
    for start in range(0, n_boot, rows):
        m = min(rows, n_boot - start)
        idx = rng.integers(0, n_tasks, size=(m, n_tasks))
        flat = (idx + n_tasks * np.arange(m)[:, None]).ravel()
        weights = np.bincount(flat, minlength=m * n_tasks).reshape(m, n_tasks)
        with np.errstate(invalid="ignore", divide="ignore"):
            parts.append(stat(weights.astype(float)))
    return np.vstack(parts)


def _interval(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column of bootstrap draws (NaN draws ignored)."""
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
    return low, high


def summarize_variants(
    df: pd.DataFrame, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Tidy per-variant metrics with task-bootstrap percentile intervals.

    One row per (variant, metric); metric is ``success_rate``, ``mean_reward`` or ``pass^k``
    (k = 1 .. the variant's most trials per task). ``tasks`` counts the tasks the metric uses.
    """
    df = _frame(df)
    rows = []
    for variant in pd.unique(df["variant"]):
        agg = _task_aggregates(df[df["variant"] == variant])
        c, n, r = (agg[col].to_numpy() for col in ("c", "n", "r"))
        ks = list(range(1, int(n.max()) + 1))
        pm = _pass_matrix(c, n, ks)
        has = ~np.isnan(pm)
        pz = np.nan_to_num(pm)
        point = [c.sum() / n.sum(), r.sum() / n.sum(), *np.nanmean(pm, axis=0)]

        sums = np.column_stack([n, c, r, pz, has]).astype(float)  # one matmul per chunk

        def stat(w: np.ndarray, sums: np.ndarray = sums, kk: int = len(ks)) -> np.ndarray:
            t = w @ sums
            return np.column_stack([t[:, 1:3] / t[:, :1], t[:, 3 : 3 + kk] / t[:, 3 + kk :]])

        low, high = _interval(_bootstrap(len(c), n_boot, seed, stat), level)
        names = [("success_rate", None), ("mean_reward", None)] + [("pass^k", k) for k in ks]
        used = [len(c), len(c), *has.sum(axis=0)]
        for j, (metric, k) in enumerate(names):
            rows.append(
                {
                    "variant": variant,
                    "metric": metric,
                    "k": k,
                    "estimate": float(point[j]),
                    "low": float(low[j]),
                    "high": float(high[j]),
                    "tasks": int(used[j]),
                    "episodes": int(n.sum()),
                }
            )
    out = pd.DataFrame(rows)
    out["k"] = out["k"].astype("Int64")
    return out


def mcnemar_exact(ref_only: int, variant_only: int) -> float:
    """Exact McNemar p: two-sided binomial test of the discordant pairs at p = 0.5 (1 if none)."""
    total = ref_only + variant_only
    if total == 0:
        return 1.0
    # at p = 0.5 the binomial is symmetric: the outcomes at most as likely as k = min(a, b)
    # are the two tails i <= k and i >= total - k, so p = 2 P(X <= k), capped at 1
    k = min(ref_only, variant_only)
    term = tail = 1  # C(total, 0); each next binomial coefficient from the last, exactly
    for i in range(k):
        term = term * (total - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / 2**total)  # int / int: correctly rounded


def paired_permutation_test(
    task_diffs: Sequence[float] | np.ndarray,
    n_perm: int = 10_000,
    seed: int = 0,
    max_exact: int = 16,
) -> float:
    """Two-sided sign-flip test that the mean per-task difference is 0.

    Tasks whose difference is 0 cannot change the statistic and are dropped. With at most
    ``max_exact`` nonzero tasks all 2^m flips are enumerated (p = share with |sum| >= observed);
    otherwise ``n_perm`` seeded random flips give p = (1 + count) / (1 + n_perm).
    """
    d = np.asarray(task_diffs, dtype=float)
    d = d[d != 0]
    m = len(d)
    if m == 0:
        return 1.0
    observed = abs(d.sum())
    tol = 1e-9 * max(1.0, observed)
    if m <= max_exact:
        bits = (np.arange(2**m)[:, None] >> np.arange(m)) & 1
        return float(np.mean(np.abs((1 - 2 * bits) @ d) >= observed - tol))
    rng = np.random.default_rng(seed)
    count, rows = 0, max(1, _CHUNK // m)
    for start in range(0, n_perm, rows):
        raw = rng.integers(0, 256, size=(min(rows, n_perm - start), -(-m // 8)), dtype=np.uint8)
        signs = 1.0 - 2.0 * np.unpackbits(raw, axis=1, count=m)  # 8 fair coin flips per byte
        count += int(np.sum(np.abs(signs @ d) >= observed - tol))
    return (1 + count) / (1 + n_perm)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (same order as given, capped at 1)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out.tolist()


def compare_variants(
    df: pd.DataFrame,
    reference: str = "control",
    n_boot: int = 2000,
    seed: int = 0,
    n_perm: int = 10_000,
    level: float = 0.95,
) -> pd.DataFrame:
    """Each other variant vs ``reference`` on the (task_id, trial) pairs both arms have.

    One row per variant: pair counts, rates, difference in percentage points with a
    task-bootstrap interval, relative change, discordant counts, exact McNemar and task
    permutation p-values, and their Holm adjustments across the compared variants.
    """
    df = _frame(df)
    arms = list(pd.unique(df["variant"]))
    if reference not in arms:
        raise ValueError(f"reference arm {reference!r} not found; arms are: {', '.join(arms)}")
    ref = df[df["variant"] == reference][["task_id", "trial", "success"]]
    rows = []
    for variant in (a for a in arms if a != reference):
        var = df[df["variant"] == variant][["task_id", "trial", "success"]]
        pairs = ref.merge(var, on=["task_id", "trial"], suffixes=("_ref", "_var"))
        row: dict[str, object] = {"variant": variant, "reference": reference}
        row |= _paired(pairs, n_boot, seed, n_perm, level)
        rows.append(row)
    cols = [
        "variant", "reference", "tasks", "pairs", "ref_rate", "variant_rate", "diff_pp",
        "diff_low_pp", "diff_high_pp", "rel_change", "ref_only", "variant_only",
        "p_mcnemar", "p_permutation",
    ]  # fmt: skip
    out = pd.DataFrame(rows, columns=cols)
    for fam in ("p_mcnemar", "p_permutation"):
        ok = out[fam].notna()
        out[f"{fam}_holm"] = np.nan
        out.loc[ok, f"{fam}_holm"] = holm(out.loc[ok, fam].tolist())
    return out


def _paired(pairs: pd.DataFrame, n_boot: int, seed: int, n_perm: int, level: float) -> dict:
    """Statistics of one variant's (ref, variant) success pairs; NaNs when there are none."""
    a, b = pairs["success_ref"].to_numpy(), pairs["success_var"].to_numpy()
    ref_only, var_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    base = {"tasks": int(pairs["task_id"].nunique()), "pairs": len(pairs)}
    base |= {"ref_only": ref_only, "variant_only": var_only}
    if len(pairs) == 0:
        nan = math.nan
        keys = ("ref_rate", "variant_rate", "diff_pp", "diff_low_pp", "diff_high_pp")
        return base | dict.fromkeys((*keys, "rel_change", "p_mcnemar", "p_permutation"), nan)
    ref_rate, var_rate = float(a.mean()), float(b.mean())
    per_task = (
        pairs.assign(d=b.astype(int) - a.astype(int)).groupby("task_id")["d"].agg(["sum", "size"])
    )
    s, n = per_task["sum"].to_numpy(float), per_task["size"].to_numpy(float)

    sums = np.column_stack([s, n])

    def stat(w: np.ndarray) -> np.ndarray:
        t = w @ sums
        return t[:, :1] / t[:, 1:]

    low, high = _interval(_bootstrap(len(s), n_boot, seed, stat), level)
    return base | {
        "ref_rate": ref_rate,
        "variant_rate": var_rate,
        "diff_pp": 100 * (var_rate - ref_rate),
        "diff_low_pp": 100 * float(low[0]),
        "diff_high_pp": 100 * float(high[0]),
        "rel_change": var_rate / ref_rate - 1 if ref_rate > 0 else math.nan,
        "p_mcnemar": mcnemar_exact(ref_only, var_only),
        "p_permutation": paired_permutation_test(s / n, n_perm=n_perm, seed=seed),
    }


def estimate_icc(df: pd.DataFrame) -> float:
    """One-way ANOVA intra-task correlation of success for one arm, clipped to [0, 1].

    ICC = (MSB - MSW) / (MSB + (n0 - 1) MSW) with n0 = (N - sum n_i^2 / N) / (T - 1) for
    unequal trials per task. NaN when undefined (fewer than 2 tasks, no task with 2 trials,
    or no variation in success at all).
    """
    data = _one_arm(df, ("task_id", "success"))
    y = data["success"].to_numpy(float)
    g = data.groupby("task_id")["success"]
    sizes, means = g.size().to_numpy(float), g.mean().to_numpy(float)
    big_n, t = len(y), len(sizes)
    if t < 2 or big_n <= t:
        return math.nan
    grand = y.mean()
    msb = float(np.sum(sizes * (means - grand) ** 2) / (t - 1))
    task_mean = data["task_id"].map(g.mean()).to_numpy(float)
    msw = float(np.sum((y - task_mean) ** 2) / (big_n - t))
    n0 = (big_n - np.sum(sizes**2) / big_n) / (t - 1)
    denom = msb + (n0 - 1) * msw
    if denom <= 0:
        return math.nan
    return float(np.clip((msb - msw) / denom, 0.0, 1.0))


def minimum_detectable_effect(
    n_tasks: int,
    n_trials: int,
    baseline: float,
    icc: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    rho: float = 0.5,
) -> float:
    """Smallest true difference in success rate (0..1) a paired two-arm design detects.

    Normal approximation, variance evaluated at ``baseline`` only:
    V = p(1-p) / (n_tasks * n_trials) * (1 + (n_trials - 1) * icc) per arm (design effect of
    n_trials correlated trials per task), Var(diff) = 2 V (1 - rho) for two arms on the same
    tasks with task-level correlation ``rho`` between arms, and
    MDE = (z_{1-alpha/2} + z_{power}) * sqrt(Var(diff)), capped at 1. With icc = rho = 0 this is
    the textbook two-proportion formula. ``icc`` defaults to :data:`DEFAULT_ICC`. Evaluating V
    at the baseline alone slightly understates the MDE when baseline - MDE is nearer 0.5 (high
    baselines): at baseline 0.9 and an MDE of 0.1 by a factor sqrt((.09 + .16) / .18) ~ 1.18.
    """
    icc = DEFAULT_ICC if icc is None else icc
    if n_tasks < 1 or n_trials < 1:
        raise ValueError("n_tasks and n_trials must be at least 1")
    if not 0 < baseline < 1:
        raise ValueError(f"baseline success rate must be strictly between 0 and 1, got {baseline}")
    if not 0 <= icc <= 1:
        raise ValueError(f"icc must be in [0, 1], got {icc}")
    if not -1 <= rho < 1:
        raise ValueError(f"rho must be in [-1, 1), got {rho}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError("alpha and power must be strictly between 0 and 1")
    deff = 1 + (n_trials - 1) * icc
    var_arm = baseline * (1 - baseline) / (n_tasks * n_trials) * deff
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return float(min(1.0, z * math.sqrt(2 * var_arm * (1 - rho))))


def mde_table(
    n_tasks: int,
    trials: Sequence[int] = (1, 2, 3, 5, 10),
    baselines: Sequence[float] = (0.3, 0.5, 0.7, 0.9),
    icc: float | None = None,
    comparisons: int = 1,
    power: float = 0.8,
) -> pd.DataFrame:
    """:func:`minimum_detectable_effect` for a grid of trials and baseline success rates.

    Rows are baselines, columns trials per task; values are points (0..100). With
    ``comparisons`` > 1 the test level is alpha = 0.05 / comparisons, the bound Holm meets
    at worst.
    """
    if comparisons < 1:
        raise ValueError("comparisons must be at least 1")
    alpha = 0.05 / comparisons
    data = {
        t: [100 * minimum_detectable_effect(n_tasks, t, b, icc, alpha, power) for b in baselines]
        for t in trials
    }
    out = pd.DataFrame(data, index=pd.Index(list(baselines), name="baseline"))
    out.columns.name = "trials"
    return out
