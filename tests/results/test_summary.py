from __future__ import annotations

from math import comb

import pytest

from emotau.results._summary import pass_hat_k, summarize


def test_pass_hat_k_against_hand_values() -> None:
    # task A: 3 of 4 trials succeed; task B: 1 of 4; task C: 4 of 4
    pairs = [(4, 3), (4, 1), (4, 4)]
    assert pass_hat_k(pairs, 1) == pytest.approx((3 / 4 + 1 / 4 + 1) / 3)
    assert pass_hat_k(pairs, 2) == pytest.approx((3 / 6 + 0 + 1) / 3)
    assert pass_hat_k(pairs, 4) == pytest.approx((0 + 0 + 1) / 3)
    assert pass_hat_k(pairs, 5) is None
    # unbiasedness: the estimator's expectation equals p^k for a Bernoulli(p) task
    p, n, k = 0.7, 5, 3
    expect = sum(
        comb(n, c) * p**c * (1 - p) ** (n - c) * comb(c, k) / comb(n, k) for c in range(n + 1)
    )
    assert expect == pytest.approx(p**k)


def _rec(task, variant, trial, success, status="completed", scored=True, turns=4):
    return {
        "task_id": task,
        "variant": variant,
        "trial": trial,
        "status": status,
        "scored": scored,
        "success": success,
        "reward": 1.0 if success else 0.0,
        "num_turns": turns,
        "termination": "user_goal_met",
        "synthetic": True,
    }


def test_summarize_counts_errors_apart() -> None:
    recs = [
        _rec(0, "control", 0, True),
        _rec(0, "control", 1, True),
        _rec(1, "control", 0, False),
        _rec(1, "control", 1, True, turns=8),
        _rec(0, "anger", 0, False),
        _rec(0, "anger", 1, True),
        _rec(1, "anger", 0, False, status="infra_error", scored=False),
        _rec(1, "anger", 1, False, scored=False),  # simulator error: finished, not scored
    ]
    merged = {(r["task_id"], r["variant"], r["trial"]): r for r in recs}
    s = summarize(merged, ["control", "anger"], [0, 1], 2)
    control, anger = s["variants"]
    assert control["episodes"] == 4 and control["success_rate"] == 0.75
    assert control["pass_k"]["2"] == pytest.approx((1 + 0) / 2)
    assert control["mean_turns"] == 5
    assert anger["episodes"] == 2 and anger["infra_errors"] == 1 and anger["simulator_errors"] == 1
    assert anger["success_rate"] == 0.5  # the infra error is not scored as a failure
    assert anger["pass_k"]["2"] == 0.0  # only task 0 has two scored trials
    assert s["expected_episodes"] == 8 and s["finished_episodes"] == 7 and not s["complete"]
