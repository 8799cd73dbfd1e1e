"""Per-variant summary of a run: success, reward, pass^k, errors, turns.

pass^k (Yao et al., tau-bench) is the probability that *all* of k i.i.d. trials of a task
succeed, estimated without bias per task as C(c, k) / C(n, k) (n scored trials, c successes)
and averaged over the tasks that have at least k scored trials.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from emotau.core import Status
from emotau.results._store import Key


def task_pass_hat_k(c: int, n: int, k: int) -> float:
    """Unbiased pass^k of one task with ``c`` successes in ``n`` trials: C(c, k) / C(n, k);
    0 when c < k, NaN when n < k. emotau's one definition of pass^k."""
    if k < 1 or c < 0 or n < 0 or c > n:
        raise ValueError(f"need k >= 1 and 0 <= c <= n (got c={c}, n={n}, k={k})")
    return math.nan if n < k else math.comb(c, k) / math.comb(n, k)


def pass_hat_k(successes_per_task: Iterable[tuple[int, int]], k: int) -> float | None:
    """Mean over tasks of :func:`task_pass_hat_k` for (n, c) pairs with n >= k; None if none
    qualifies."""
    vals = [task_pass_hat_k(c, n, k) for n, c in successes_per_task if n >= k]
    return sum(vals) / len(vals) if vals else None


def summarize(
    merged: Mapping[Key, Mapping[str, Any]],
    variants: Sequence[str],
    task_ids: Sequence[int],
    num_trials: int,
) -> dict[str, Any]:
    """The summary as plain data (what ``emotau summary --format json`` prints)."""
    expected = len(task_ids) * num_trials
    rows: list[dict[str, Any]] = []
    synthetic = False
    known = set(variants)
    labels = list(variants) + sorted({k[1] for k in merged} - known)
    by_variant: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for key, rec in merged.items():
        by_variant[key[1]].append(rec)
    completed, infra_error = Status.COMPLETED.value, Status.INFRA_ERROR.value
    for label in labels:
        recs = by_variant.get(label, [])
        scored = [r for r in recs if r.get("status") == completed and r.get("scored")]
        infra = sum(1 for r in recs if r.get("status") == infra_error)
        sim_err = sum(1 for r in recs if r.get("status") == completed and not r.get("scored"))
        # only results a scripted model made count: an infrastructure error is no result
        synthetic = synthetic or any(
            r.get("synthetic") for r in recs if r.get("status") == completed
        )
        per_task: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for r in scored:
            nc = per_task[int(r["task_id"])]
            nc[0] += 1
            nc[1] += 1 if r.get("success") else 0
        pairs = [(n, c) for n, c in per_task.values()]
        n_scored = len(scored)
        finished = n_scored + sim_err
        rows.append(
            {
                "variant": label,
                "expected": expected if label in known else None,
                "finished": finished,
                "episodes": n_scored,
                "success_rate": (sum(1 for r in scored if r.get("success")) / n_scored)
                if n_scored
                else None,
                "mean_reward": (sum(float(r.get("reward") or 0.0) for r in scored) / n_scored)
                if n_scored
                else None,
                "pass_k": {str(k): pass_hat_k(pairs, k) for k in range(1, num_trials + 1)},
                "infra_errors": infra,
                "simulator_errors": sim_err,
                "mean_turns": (sum(r.get("num_turns") or 0 for r in scored) / n_scored)
                if n_scored
                else None,
                "terminations": _count(r.get("termination") for r in recs),
            }
        )
    total_expected = expected * len(variants)
    total_finished = sum(r["finished"] for r in rows if r["variant"] in known)
    return {
        "synthetic": synthetic,
        "num_trials": num_trials,
        "num_tasks": len(task_ids),
        "expected_episodes": total_expected,
        "finished_episodes": total_finished,
        "complete": total_finished >= total_expected,
        "variants": rows,
    }


def _count(values: Iterable[Any]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for v in values:
        out[str(v)] += 1
    return dict(sorted(out.items()))


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.2f}"


def render_table(summary: Mapping[str, Any], title: str | None = None) -> Any:
    """A rich Table of the summary (imported lazily: rich is not needed for JSON output)."""
    from rich.table import Table

    k_max = int(summary["num_trials"])
    label = "SYNTHETIC (scripted models) - " if summary["synthetic"] else ""
    table = Table(
        title=f"{label}{title or 'Summary'}",
        caption=(
            f"{summary['finished_episodes']}/{summary['expected_episodes']} episodes finished"
            f"{'' if summary['complete'] else ' (INCOMPLETE)'}; rates in %; "
            "pass^k over tasks with >= k scored trials"
        ),
    )
    table.add_column("variant", style="bold")
    table.add_column("episodes", justify="right")
    table.add_column("success", justify="right")
    table.add_column("reward", justify="right")
    for k in range(1, k_max + 1):
        table.add_column(f"pass^{k}", justify="right")
    table.add_column("infra err", justify="right")
    table.add_column("sim err", justify="right")
    table.add_column("turns", justify="right")
    for row in summary["variants"]:
        eps = str(row["episodes"])
        if row["expected"] is not None and row["finished"] < row["expected"]:
            eps += f"/{row['expected']}"
        table.add_row(
            row["variant"],
            eps,
            _fmt(row["success_rate"]),
            _fmt(row["mean_reward"], pct=False),
            *[_fmt(row["pass_k"][str(k)]) for k in range(1, k_max + 1)],
            str(row["infra_errors"]),
            str(row["simulator_errors"]),
            _fmt(row["mean_turns"], pct=False),
        )
    return table
