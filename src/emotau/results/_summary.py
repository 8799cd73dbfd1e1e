"""Per-variant summary of a run: success, reward, pass^k, errors, turns.

pass^k (Yao et al., tau-bench) is the probability that *all* of k i.i.d. trials of a task
succeed, estimated without bias per task as C(c, k) / C(n, k) (n scored trials, c successes)
and averaged over the tasks that have at least k scored trials.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


#: the roles whose usage records keep, in the order they are shown
USAGE_ROLES = ("agent", "user", "judge")
_USAGE_COUNTS = ("calls", "prompt_tokens", "completion_tokens")


class UsageTotals:
    """Calls, tokens and cost per role, summed over records' ``usage``.

    ``cost_usd`` is None for a role none of whose records has a cost (no price configured);
    ``episodes`` counts the records that have the role (the judge only where it was called).
    """

    def __init__(self) -> None:
        self._roles: dict[str, dict[str, Any]] = {}

    def add(self, record: Mapping[str, Any]) -> None:
        usage = record.get("usage")
        if not isinstance(usage, Mapping):
            return
        for role, block in usage.items():
            if not isinstance(block, Mapping):
                continue  # "retries"
            t = self._roles.setdefault(
                str(role), {"episodes": 0, **dict.fromkeys(_USAGE_COUNTS, 0), "cost_usd": None}
            )
            t["episodes"] += 1
            for f in _USAGE_COUNTS:
                v = block.get(f)
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                    t[f] += int(v)
            cost = block.get("cost_usd")
            if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
                t["cost_usd"] = (t["cost_usd"] or 0.0) + float(cost)

    def count(self, records: Iterable[Mapping[str, Any]]) -> Iterator[Any]:
        """``records`` passed through, each one added on the way (one pass for both)."""
        for rec in records:
            self.add(rec)
            yield rec

    def as_dict(self) -> dict[str, dict[str, Any]]:
        order = [r for r in USAGE_ROLES if r in self._roles]
        order += sorted(set(self._roles) - set(USAGE_ROLES))
        out = {}
        for role in order:
            t = dict(self._roles[role])
            if t["cost_usd"] is not None:
                t["cost_usd"] = round(t["cost_usd"], 8)
            out[role] = t
        return out


def usage_totals(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per role: ``episodes``, ``calls``, ``prompt_tokens``, ``completion_tokens`` and
    ``cost_usd`` (None without a price), summed over ``records``."""
    totals = UsageTotals()
    for rec in records:
        totals.add(rec)
    return totals.as_dict()


def total_cost(usage: Mapping[str, Mapping[str, Any]]) -> float | None:
    """The cost of all roles together; None when no role has one."""
    costs = [t["cost_usd"] for t in usage.values() if t.get("cost_usd") is not None]
    return round(sum(costs), 8) if costs else None


def summarize(
    merged: Mapping[Key, Mapping[str, Any]],
    variants: Sequence[str],
    task_ids: Sequence[int],
    num_trials: int,
    usage: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The summary as plain data (what ``emotau summary --format json`` prints).

    ``usage``: the per-role totals (:func:`usage_totals`) to report; by default those of the
    ``merged`` records. :meth:`Run.summary` gives those of every recorded attempt (the
    infrastructure errors that a resume retried too: what the run spent).
    """
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
    usage = dict(usage) if usage is not None else usage_totals(merged.values())
    return {
        "synthetic": synthetic,
        "num_trials": num_trials,
        "num_tasks": len(task_ids),
        "expected_episodes": total_expected,
        "finished_episodes": total_finished,
        "complete": total_finished >= total_expected,
        "variants": rows,
        "usage": usage,
        "cost_usd": total_cost(usage),
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


def shown_ks(k_max: int) -> list[int]:
    """The k of the pass^k columns a narrow table shows: 1, 2, 4, 8, ... and ``k_max``."""
    ks = [k for k in (2**i for i in range(k_max.bit_length())) if k < k_max]
    return [*ks, k_max] if k_max >= 1 else []


#: the short column headers of the narrow table, explained once in its footer
ABBREVIATIONS = (
    "eps: scored episodes (/expected while some are missing); succ: success; p^k: pass^k over "
    "tasks with >= k scored trials; infra: infrastructure errors (retried on resume); sim: user "
    "simulator errors; turns: mean turns"
)


def render_table(
    summary: Mapping[str, Any],
    title: str | None = None,
    *,
    width: int | None = None,
    wide: bool = False,
) -> Any:
    """A rich Table of the summary (imported lazily: rich is not needed for JSON output).

    By default it is narrow: short headers explained in the footer, and pass^k for k = 1, 2,
    4, 8, ... and the largest k only. Given ``width`` (the terminal's columns), it picks the
    first layout that fits: with borders, without, then fewer pass^k columns, so that no cell
    is cut. ``wide``: every column with its full header (as wide as that takes).
    """
    k_max = int(summary["num_trials"])
    if wide:
        return _table(summary, title, list(range(1, k_max + 1)), wide=True, layout="boxed")
    ks = shown_ks(k_max)
    layouts = [(ks, "boxed"), (ks, "simple"), (ks, "tight")]
    layouts += [(few, "tight") for few in ([1, 2, k_max], [1, k_max], [1]) if len(few) < len(ks)]
    table = None
    for cols, layout in layouts:
        table = _table(summary, title, sorted(set(cols)), wide=False, layout=layout)
        if width is None or _measure(table, width) <= width:
            break
    return table


def usage_line(usage: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The table's footer line of calls, tokens and cost per role, e.g. ``usage: agent 6
    calls, 12,534 + 75 tokens (prompt + completion), $0.0125; user 3 calls, 1,910 + 53
    tokens; total $0.0125`` (a cost only where a price was set)."""
    if not usage:
        return None
    parts = []
    for i, (role, t) in enumerate(usage.items()):
        cost = t.get("cost_usd")
        parts.append(
            f"{role} {t['calls']:,} calls, {t['prompt_tokens']:,} + {t['completion_tokens']:,} "
            f"tokens{' (prompt + completion)' if i == 0 else ''}"
            + ("" if cost is None else f", {format_usd(cost)}")
        )
    total = total_cost(usage)
    if total is not None:
        parts.append(f"total {format_usd(total)}")
    return "usage: " + "; ".join(parts)


def format_usd(cost: float) -> str:
    """Dollars with 4 significant digits below $1 (``$0.01235``), cents above (``$12.35``)."""
    return f"${cost:,.2f}" if cost >= 1 else f"${cost:.4g}"


def _measure(table: Any, width: int) -> int:
    from rich.console import Console

    console = Console(width=max(width, 10_000))  # its natural width, unconstrained
    return int(console.measure(table).maximum)


def _table(
    summary: Mapping[str, Any], title: str | None, ks: list[int], *, wide: bool, layout: str
) -> Any:
    """``layout``: boxed (borders), simple (a rule under the header), tight (simple, one space
    between columns)."""
    from rich import box
    from rich.table import Table

    k_max = int(summary["num_trials"])
    label = "SYNTHETIC (scripted models) - " if summary["synthetic"] else ""
    caption = [
        f"{summary['finished_episodes']}/{summary['expected_episodes']} episodes finished"
        f"{'' if summary['complete'] else ' (INCOMPLETE)'}; rates in %"
        + ("; pass^k over tasks with >= k scored trials" if wide else "")
    ]
    if (line := usage_line(summary.get("usage") or {})) is not None:
        caption.append(line)
    if not wide:
        caption.append(ABBREVIATIONS)
        if len(ks) < k_max:
            run = summary.get("run") or "RUN"
            caption.append(
                f"p^k for k = {', '.join(map(str, ks))} of 1..{k_max}; every k: "
                f"`emotau summary {run} --wide` or `--format json`"
            )
    table = Table(
        title=f"{label}{title or 'Summary'}",
        caption="\n".join(caption),
        box=box.HEAVY_HEAD if layout == "boxed" else box.SIMPLE_HEAD,
        pad_edge=layout == "boxed",
        padding=(0, 1, 0, 0) if layout == "tight" else (0, 1),
        caption_justify="left",
    )
    names = (
        ["episodes", "success", "reward"]
        + [f"pass^{k}" for k in ks]
        + ["infra err", "sim err", "turns"]
        if wide
        else ["eps", "succ", "reward"] + [f"p^{k}" for k in ks] + ["infra", "sim", "turns"]
    )
    table.add_column("variant", style="bold", overflow="fold")
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    for row in summary["variants"]:
        eps = str(row["episodes"])
        if row["expected"] is not None and row["finished"] < row["expected"]:
            eps += f"/{row['expected']}"
        table.add_row(
            row["variant"],
            eps,
            _fmt(row["success_rate"]),
            _fmt(row["mean_reward"], pct=False),
            *[_fmt(row["pass_k"].get(str(k))) for k in ks],
            str(row["infra_errors"]),
            str(row["simulator_errors"]),
            _fmt(row["mean_turns"], pct=False),
        )
    return table
