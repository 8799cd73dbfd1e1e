from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from emotau.analysis import (
    DEFAULT_ICC,
    compare_variants,
    estimate_icc,
    holm,
    mcnemar_exact,
    minimum_detectable_effect,
    paired_permutation_test,
    pass_hat_k,
    pass_k,
    summarize_variants,
)


def episodes(outcomes: dict[str, dict[int, list[int]]], rewards: bool = False) -> pd.DataFrame:
    """{variant: {task_id: [success per trial]}} -> episode table (reward = success or 0.1*i)."""
    rows = [
        {
            "task_id": task,
            "variant": variant,
            "trial": trial,
            "success": bool(s),
            "reward": 0.1 * (trial + task % 3) if rewards else float(s),
        }
        for variant, tasks in outcomes.items()
        for task, trials in tasks.items()
        for trial, s in enumerate(trials)
    ]
    return pd.DataFrame(rows)


def random_episodes(
    n_tasks: int, n_trials: int, variants: dict[str, float], seed: int = 1
) -> pd.DataFrame:
    """Task difficulties shared across arms; each arm shifts them by its given offset."""
    rng = np.random.default_rng(seed)
    ease = rng.uniform(0.05, 0.95, n_tasks)
    parts = []
    for variant, shift in variants.items():
        p = np.clip(ease + shift, 0, 1)
        s = rng.random((n_tasks, n_trials)) < p[:, None]
        parts.append(
            pd.DataFrame(
                {
                    "task_id": np.repeat(np.arange(n_tasks), n_trials),
                    "variant": variant,
                    "trial": np.tile(np.arange(n_trials), n_tasks),
                    "success": s.ravel(),
                    "reward": s.ravel() * rng.uniform(0.5, 1.0, s.size),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def metric(summary: pd.DataFrame, variant: str, name: str, k: int | None = None) -> pd.Series:
    rows = summary[(summary["variant"] == variant) & (summary["metric"] == name)]
    if k is not None:
        rows = rows[rows["k"] == k]
    assert len(rows) == 1
    return rows.iloc[0]


# --- pass^k -------------------------------------------------------------------------------


@pytest.mark.parametrize(("c", "n", "k"), [(3, 4, 2), (5, 8, 3), (7, 7, 7), (10, 12, 1), (4, 9, 4)])
def test_pass_hat_k_is_comb_ratio(c: int, n: int, k: int) -> None:
    assert pass_hat_k(c, n, k) == pytest.approx(math.comb(c, k) / math.comb(n, k))


def test_pass_hat_k_edges() -> None:
    assert pass_hat_k(1, 4, 2) == 0
    assert pass_hat_k(0, 3, 1) == 0
    assert math.isnan(pass_hat_k(2, 2, 3))
    with pytest.raises(ValueError):
        pass_hat_k(1, 4, 0)


def test_pass_k_hand_computed() -> None:
    # task 0: 3/4, task 1: 1/4, task 2: 2/2 (only two trials)
    df = episodes({"v": {0: [1, 1, 0, 1], 1: [0, 0, 1, 0], 2: [1, 1]}})
    assert pass_k(df, 1) == pytest.approx((3 / 4 + 1 / 4 + 1) / 3)
    assert pass_k(df, 2) == pytest.approx((3 / 6 + 0 + 1) / 3)
    assert pass_k(df, 3) == pytest.approx((1 / 4 + 0) / 2)  # task 2 has too few trials
    assert math.isnan(pass_k(df, 5))


# --- summary and bootstrap ------------------------------------------------------------------


def test_summary_point_estimates_match_definitions() -> None:
    df = random_episodes(30, 6, {"control": 0.0, "anger": -0.2})
    df = df[~((df["task_id"] % 4 == 0) & (df["trial"] >= 3))]  # uneven trials per task
    summary = summarize_variants(df, n_boot=200)
    for variant, part in df.groupby("variant"):
        assert metric(summary, variant, "success_rate")["estimate"] == pytest.approx(
            part["success"].mean()
        )
        assert metric(summary, variant, "mean_reward")["estimate"] == pytest.approx(
            part["reward"].mean()
        )
        assert metric(summary, variant, "success_rate")["episodes"] == len(part)
        for k in range(1, 7):
            row = metric(summary, variant, "pass^k", k)
            assert row["estimate"] == pytest.approx(pass_k(part, k))
            assert row["tasks"] == (part.groupby("task_id").size() >= k).sum()
        assert set(summary[summary["variant"] == variant]["k"].dropna()) == set(range(1, 7))


def test_summary_intervals_contain_estimate_and_are_seeded() -> None:
    df = random_episodes(40, 4, {"control": 0.0, "frustration": -0.1})
    a = summarize_variants(df, n_boot=300, seed=3)
    assert (a["low"] <= a["estimate"]).all()
    assert (a["estimate"] <= a["high"]).all()
    assert (a["low"] < a["high"]).all()
    pd.testing.assert_frame_equal(a, summarize_variants(df, n_boot=300, seed=3))
    assert not a["low"].equals(summarize_variants(df, n_boot=300, seed=4)["low"])


def test_bootstrap_resamples_tasks_not_episodes() -> None:
    n_tasks, n_trials = 60, 10
    # perfectly clustered: half the tasks always succeed, half always fail (rate 0.5)
    clustered = episodes({"v": {t: [t % 2] * n_trials for t in range(n_tasks)}})
    # same size and rate, but trials independent of the task
    rng = np.random.default_rng(0)
    flat = rng.permutation([1, 0] * (n_tasks * n_trials // 2)).reshape(n_tasks, n_trials)
    independent = episodes({"v": {t: list(flat[t]) for t in range(n_tasks)}})
    assert clustered["success"].mean() == independent["success"].mean()

    def width(df: pd.DataFrame) -> float:
        row = metric(summarize_variants(df, n_boot=1000), "v", "success_rate")
        return row["high"] - row["low"]

    assert width(clustered) > 2 * width(independent)


def test_bootstrap_matches_slow_reference() -> None:
    df = episodes(
        {"v": {3: [1, 0, 1], 5: [0, 0], 8: [1, 1, 1], 9: [0, 1, 0], 11: [1]}}, rewards=True
    )
    n_boot, seed = 50, 7
    fast = summarize_variants(df, n_boot=n_boot, seed=seed)

    tasks = sorted(df["task_id"].unique())
    draws = np.random.default_rng(seed).integers(0, len(tasks), size=(n_boot, len(tasks)))
    values: dict[tuple[str, int | None], list[float]] = {}
    for draw in draws:
        # relabel so a task drawn twice counts as two tasks
        sample = pd.concat(
            [df[df["task_id"] == tasks[i]].assign(task_id=pos) for pos, i in enumerate(draw)]
        )
        values.setdefault(("success_rate", None), []).append(sample["success"].mean())
        values.setdefault(("mean_reward", None), []).append(sample["reward"].mean())
        for k in range(1, 4):
            values.setdefault(("pass^k", k), []).append(pass_k(sample, k))
    for (name, k), vals in values.items():
        row = metric(fast, "v", name, k)
        low, high = np.nanpercentile(vals, [2.5, 97.5])
        assert row["low"] == pytest.approx(low)
        assert row["high"] == pytest.approx(high)


def test_single_trial_has_only_pass_1() -> None:
    df = episodes({"control": {t: [t % 3 == 0] for t in range(9)}})
    summary = summarize_variants(df, n_boot=100)
    assert summary["k"].dropna().tolist() == [1]
    assert metric(summary, "control", "pass^k", 1)["estimate"] == pytest.approx(3 / 9)


# --- paired comparison ----------------------------------------------------------------------


def test_mcnemar_exact() -> None:
    assert mcnemar_exact(0, 5) == pytest.approx(2 * 0.5**5)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(7, 2) == pytest.approx(stats.binomtest(2, 9, 0.5).pvalue)
    for a in range(0, 40, 3):
        for b in range(0, 40, 5):
            want = stats.binomtest(min(a, b), a + b, 0.5).pvalue if a + b else 1.0
            assert mcnemar_exact(a, b) == pytest.approx(want, rel=1e-9), (a, b)
    assert mcnemar_exact(0, 2000) == pytest.approx(stats.binomtest(0, 2000, 0.5).pvalue)


def test_compare_hand_built_table() -> None:
    # pairs over tasks 0..3 x trials 0..2: both succeed 4, ref only 5, variant only 1, neither 2
    ref = {0: [1, 1, 1], 1: [1, 1, 0], 2: [1, 1, 1], 3: [0, 0, 1]}
    var = {0: [1, 0, 0], 1: [1, 0, 0], 2: [0, 1, 1], 3: [0, 1, 0]}
    # an extra variant trial without a reference partner is ignored by the inner join
    df = episodes({"base": ref, "anger:severe": {**var, 4: [1, 1, 1]}})
    out = compare_variants(df, reference="base", n_boot=500)
    assert len(out) == 1
    row = out.iloc[0]
    assert (row["variant"], row["reference"]) == ("anger:severe", "base")
    assert (row["pairs"], row["tasks"]) == (12, 4)
    assert (row["ref_only"], row["variant_only"]) == (5, 1)
    assert row["ref_rate"] == pytest.approx(9 / 12)
    assert row["variant_rate"] == pytest.approx(5 / 12)
    assert row["diff_pp"] == pytest.approx(100 * (5 / 12 - 9 / 12))
    assert row["rel_change"] == pytest.approx((5 / 12) / (9 / 12) - 1)
    assert row["diff_low_pp"] <= row["diff_pp"] <= row["diff_high_pp"]
    assert row["p_mcnemar"] == pytest.approx(stats.binomtest(1, 6, 0.5).pvalue)
    task_diffs = [(-2) / 3, (-1) / 3, (-1) / 3, 0.0]
    assert row["p_permutation"] == pytest.approx(paired_permutation_test(task_diffs))
    assert row["p_mcnemar_holm"] == pytest.approx(row["p_mcnemar"])  # a family of one


def test_compare_bootstrap_matches_slow_reference() -> None:
    ref = {0: [1, 1, 1], 1: [1, 0], 2: [0], 3: [1, 1, 0, 1], 4: [0, 1]}
    var = {0: [0, 1, 0], 1: [1, 0], 2: [1], 3: [0, 0, 0, 1], 4: [0, 0]}
    df = episodes({"control": ref, "frustration": var})
    n_boot, seed = 60, 11
    row = compare_variants(df, n_boot=n_boot, seed=seed).iloc[0]
    pairs = df[df["variant"] == "control"].merge(
        df[df["variant"] == "frustration"], on=["task_id", "trial"]
    )
    tasks = sorted(pairs["task_id"].unique())
    draws = np.random.default_rng(seed).integers(0, len(tasks), size=(n_boot, len(tasks)))
    diffs = []
    for draw in draws:
        sample = pd.concat([pairs[pairs["task_id"] == tasks[i]] for i in draw])
        diffs.append(100 * (sample["success_y"].mean() - sample["success_x"].mean()))
    assert row["diff_low_pp"] == pytest.approx(np.percentile(diffs, 2.5))
    assert row["diff_high_pp"] == pytest.approx(np.percentile(diffs, 97.5))


def test_compare_holm_across_variants_and_zero_reference() -> None:
    df = random_episodes(40, 3, {"control": -1.0, "a": 0.0, "b": -0.3, "c": 0.2})
    out = compare_variants(df, n_boot=200)
    assert out["variant"].tolist() == ["a", "b", "c"]
    assert (out["ref_rate"] == 0).all()
    assert out["rel_change"].isna().all()
    for fam in ("p_mcnemar", "p_permutation"):
        assert out[f"{fam}_holm"].tolist() == pytest.approx(holm(out[fam].tolist()))


def test_permutation_exact_by_hand() -> None:
    diffs = [0.5, -0.25, 1.0, 0.0, 0.75, 1 / 3]
    nonzero = [d for d in diffs if d != 0]
    observed = abs(sum(nonzero))
    flips = list(itertools.product([1, -1], repeat=len(nonzero)))
    extreme = sum(
        abs(sum(s * d for s, d in zip(signs, nonzero, strict=True))) >= observed - 1e-12
        for signs in flips
    )
    assert paired_permutation_test(diffs) == pytest.approx(extreme / len(flips))
    assert paired_permutation_test([1.0] * 4) == pytest.approx(2 / 16)
    assert paired_permutation_test([0.0, 0.0, 0.0]) == 1.0
    # zero differences are dropped before choosing exact enumeration (10 nonzero + 10 zeros)
    ten = [0.1 * (i + 1) * (-1) ** (i % 3 == 0) for i in range(10)]
    assert paired_permutation_test(ten + [0.0] * 10) == paired_permutation_test(ten)


def test_permutation_monte_carlo_close_to_exact() -> None:
    diffs = np.random.default_rng(5).normal(0.15, 0.5, 18)
    exact = paired_permutation_test(diffs, max_exact=18)
    mc = paired_permutation_test(diffs, n_perm=10_000, seed=1)
    assert 0.01 < exact < 0.99
    assert mc == pytest.approx(exact, abs=0.02)
    assert mc == paired_permutation_test(diffs, n_perm=10_000, seed=1)


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.6, 0.7]) == [1.0, 1.0, 1.0]
    assert holm([]) == []
    raw = np.random.default_rng(2).uniform(0, 0.3, 8)
    adj = np.array(holm(raw.tolist()))
    order = np.argsort(raw)
    assert (np.diff(adj[order]) >= 0).all()
    assert (adj >= raw).all()
    assert (adj <= 1).all()


# --- power and ICC --------------------------------------------------------------------------


def test_mde_textbook_and_monotone() -> None:
    n_tasks, n_trials, p = 100, 4, 0.6
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    textbook = z * math.sqrt(2 * p * (1 - p) / (n_tasks * n_trials))
    got = minimum_detectable_effect(n_tasks, n_trials, p, icc=0, rho=0)
    assert got == pytest.approx(textbook)
    # design effect and paired correlation scale the variance as documented
    var = p * (1 - p) / (n_tasks * n_trials) * (1 + (n_trials - 1) * 0.2) * 2 * (1 - 0.4)
    got = minimum_detectable_effect(n_tasks, n_trials, p, icc=0.2, rho=0.4)
    assert got == pytest.approx(z * math.sqrt(var))
    assert minimum_detectable_effect(n_tasks, n_trials, p, rho=0.7) < minimum_detectable_effect(
        n_tasks, n_trials, p, rho=0.2
    )
    base = minimum_detectable_effect(n_tasks, n_trials, p, icc=0.3)
    assert minimum_detectable_effect(2 * n_tasks, n_trials, p, icc=0.3) < base
    assert minimum_detectable_effect(n_tasks, 2 * n_trials, p, icc=0.3) < base
    assert minimum_detectable_effect(n_tasks, n_trials, p, icc=0.6) > base
    assert (
        minimum_detectable_effect(n_tasks, n_trials, p)
        == base
        == pytest.approx(minimum_detectable_effect(n_tasks, n_trials, p, icc=DEFAULT_ICC))
    )
    assert minimum_detectable_effect(1, 1, 0.5, rho=0) == 1.0
    with pytest.raises(ValueError, match="baseline"):
        minimum_detectable_effect(10, 2, 0.0)


def test_estimate_icc_hand_and_limits() -> None:
    # equal groups: means .75/.25, MSB = 0.5, MSW = 0.25, n0 = 4 -> (0.5-0.25)/(0.5+3*0.25) = 0.2
    assert estimate_icc(episodes({"v": {0: [1, 1, 1, 0], 1: [0, 0, 0, 1]}})) == pytest.approx(0.2)

    groups = {0: [1, 1, 0], 1: [0, 0], 2: [1, 1, 1, 0], 3: [1, 0, 1, 1, 1]}
    ys = [y for g in groups.values() for y in g]
    big_n, t, grand = len(ys), len(groups), sum(ys) / len(ys)
    msb = sum(len(g) * (sum(g) / len(g) - grand) ** 2 for g in groups.values()) / (t - 1)
    msw = sum((y - sum(g) / len(g)) ** 2 for g in groups.values() for y in g) / (big_n - t)
    n0 = (big_n - sum(len(g) ** 2 for g in groups.values()) / big_n) / (t - 1)
    hand = max(0.0, (msb - msw) / (msb + (n0 - 1) * msw))
    assert estimate_icc(episodes({"v": groups})) == pytest.approx(hand)

    clustered = episodes({"v": {t: [t % 3 == 0] * 5 for t in range(30)}})
    assert estimate_icc(clustered) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    indep = episodes({"v": {t: list(rng.random(10) < 0.5) for t in range(500)}})
    assert estimate_icc(indep) < 0.02
    assert math.isnan(estimate_icc(episodes({"v": {0: [1, 1], 1: [1, 1]}})))
    with pytest.raises(ValueError, match="one arm"):
        estimate_icc(episodes({"a": {0: [1, 0]}, "b": {0: [0, 1]}}))


# --- bad inputs and scale -------------------------------------------------------------------


def test_bad_inputs() -> None:
    df = episodes({"control": {0: [1, 0]}, "anger": {0: [0, 0]}})
    with pytest.raises(ValueError, match="empty"):
        summarize_variants(df.iloc[:0])
    with pytest.raises(ValueError, match=r"missing column.*reward"):
        summarize_variants(df.drop(columns="reward"))
    with pytest.raises(ValueError, match="reference arm 'nope' not found"):
        compare_variants(df, reference="nope")
    with pytest.raises(ValueError, match="duplicate"):
        compare_variants(pd.concat([df, df.iloc[:1]]))
    with pytest.raises(ValueError, match="success"):
        summarize_variants(df.assign(success=2))
    with pytest.raises(ValueError, match="one arm"):
        pass_k(df, 1)


def test_large_run_is_finite() -> None:
    df = random_episodes(400, 50, {"control": 0, "frustration": -0.1, "anger:severe": -0.3})
    df = pd.concat([df, random_episodes(400, 50, {"confusion": 0.05, "x": -0.05}, seed=2)])
    assert len(df) == 100_000
    summary = summarize_variants(df)
    assert np.isfinite(summary[["estimate", "low", "high"]].to_numpy()).all()
    out = compare_variants(df)
    assert len(out) == 4
    numeric = out.drop(columns=["variant", "reference"]).to_numpy(float)
    assert np.isfinite(numeric).all()
    assert out.set_index("variant").loc["anger:severe", "p_mcnemar_holm"] < 0.001
