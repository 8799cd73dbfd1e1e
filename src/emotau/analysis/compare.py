"""Two runs on the same variants (for example two agent models): who suffers more?

:func:`compare_runs` pairs the runs' episodes on (task, trial) within each variant and tests
B against A with the statistics of :func:`emotau.analysis.stats.compare_variants` (exact
McNemar, permutation test over tasks, Holm across variants). With a reference arm in both
runs it also estimates the difference in drops, (B_v - B_ref) - (A_v - A_ref), from per-task
success rates with a task-bootstrap interval: does emotion hurt B less than A?
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emotau.analysis._format import Table, ci, markdown_table, md_cell, num, p_value, pct, signed
from emotau.analysis.report import pick_reference
from emotau.analysis.stats import compare_variants, holm
from emotau.core import UserError, is_finished

_COLUMNS = ("task_id", "variant", "trial", "success", "reward")


@dataclass
class RunComparison:
    labels: tuple[str, str]
    reference: str | None
    table: pd.DataFrame  # one row per common variant
    warnings: list[str] = field(default_factory=list)
    #: whether scripted models produced run A's and run B's episodes
    synthetic_runs: tuple[bool, bool] = (False, False)

    @property
    def synthetic(self) -> bool:
        return any(self.synthetic_runs)

    def synthetic_note(self) -> str | None:
        """The SYNTHETIC line: which of the runs scripted models produced; None if neither."""
        if not self.synthetic:
            return None
        runs = zip(self.labels, "AB", self.synthetic_runs, strict=True)
        which = [f"{name} ({ab})" for name, ab, synthetic in runs if synthetic]
        return (
            f"SYNTHETIC (scripted models): scripted models produced {' and '.join(which)}; "
            "these numbers test the pipeline, not an agent"
        )

    def to_markdown(self) -> str:
        a, b = self.labels
        tag = " - SYNTHETIC (scripted models)" if self.synthetic else ""
        lines = [f"# emotau compare: {md_cell(a)} (A) vs {md_cell(b)} (B){tag}", ""]
        if (note := self.synthetic_note()) is not None:
            lines += [f"**Warning:** {md_cell(note)}"]
        lines += [f"**Warning:** {md_cell(w)}" for w in self.warnings]
        lines.append("")
        # two tables, each header once: the success rates, then the drops from the reference
        headers = [
            "variant", "pairs", f"A ({a})", f"B ({b})", "B - A (points)", "95% CI",
            "McNemar p (Holm)", "permutation p (Holm)",
        ]  # fmt: skip
        rows = [
            [
                str(r.variant), num(r.pairs, 0), pct(r.rate_a), pct(r.rate_b),
                signed(r.diff_pp), ci(r.diff_low_pp, r.diff_high_pp, scale=1),
                f"{p_value(r.p_mcnemar)} ({p_value(r.p_mcnemar_holm)})",
                f"{p_value(r.p_permutation)} ({p_value(r.p_permutation_holm)})",
            ]
            for r in self.table.itertuples()
        ]  # fmt: skip
        lines += ["## Success rate", "", *markdown_table(Table(headers, rows))]
        if "did_pp" in self.table and self.table["did_pp"].notna().any():
            drops = [
                [str(r.variant), signed(r.drop_a_pp), signed(r.drop_b_pp), signed(r.did_pp),
                 ci(r.did_low_pp, r.did_high_pp, scale=1)]
                for r in self.table.itertuples()
                if r.variant != self.reference
            ]  # fmt: skip
            lines += [
                "",
                f"## Difference from {md_cell(str(self.reference))} (points; negative: a drop)",
                "",
                *markdown_table(Table(["variant", "A", "B", "B - A (points)", "95% CI"], drops)),
            ]
        return "\n".join(lines)


def _scored(run: Any) -> tuple[pd.DataFrame, bool]:
    """The run's scored episodes, and whether any of its episodes is synthetic."""
    rows = []
    synthetic = False
    for r in run.store.iter_merged(light=True):
        synthetic = synthetic or bool(r.get("synthetic"))
        if is_finished(r) and r.get("scored"):
            rows.append({k: r.get(k) for k in _COLUMNS})
    df = pd.DataFrame(rows, columns=list(_COLUMNS))
    df["success"] = df["success"].astype(bool)
    df["reward"] = pd.to_numeric(df["reward"], errors="coerce").fillna(0.0)
    return df, synthetic


def compare_runs(
    run_a: Any,
    run_b: Any,
    *,
    reference: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> RunComparison:
    """Compare run B against run A variant by variant (paths or :class:`emotau.Run`)."""
    from emotau.results import Run

    ra = run_a if isinstance(run_a, Run) else Run.open(run_a)
    rb = run_b if isinstance(run_b, Run) else Run.open(run_b)
    if ra.path.resolve() == rb.path.resolve():
        raise UserError("compare needs two different runs; both paths are the same run")
    da, db = ra.frozen["identity"]["domain"], rb.frozen["identity"]["domain"]
    if da != db:
        raise UserError(f"the runs are on different domains ({da} vs {db}): not comparable")
    common = [v for v in ra.variants if v in set(rb.variants)]
    if not common:
        raise UserError(
            f"the runs share no variant (A: {', '.join(ra.variants)}; B: {', '.join(rb.variants)})"
        )
    ref = pick_reference(reference, common, "a variant of both runs (common")
    (a, synth_a), (b, synth_b) = _scored(ra), _scored(rb)
    warnings = _identity_warnings(ra.frozen["identity"], rb.frozen["identity"], common)
    labels = (ra.path.name, rb.path.name) if ra.path.name != rb.path.name else ("A", "B")
    only = sorted(set(ra.variants) ^ set(rb.variants))
    if only:
        warnings.append(f"variants in only one run are left out: {', '.join(only)}")
    ta, tb = set(a["task_id"]), set(b["task_id"])
    if ta != tb:
        warnings.append(
            f"the runs scored different tasks; only the {len(ta & tb)} tasks both have are paired"
        )
    if ref is None and reference is None:
        warnings.append("no 'control' arm in both runs: no difference in drops (use --reference)")
    rows = []
    for v in common:
        pair = pd.concat(
            [a[a["variant"] == v].assign(variant="A"), b[b["variant"] == v].assign(variant="B")]
        )
        row: dict[str, Any] = {"variant": v}
        if pair["variant"].nunique() < 2:
            warnings.append(f"variant {v!r} has no scored episodes in one of the runs")
            rows.append(row)
            continue
        cmp = compare_variants(pair, reference="A", n_boot=n_boot, seed=seed).iloc[0]
        row |= {
            "tasks": cmp["tasks"],
            "pairs": cmp["pairs"],
            "rate_a": cmp["ref_rate"],
            "rate_b": cmp["variant_rate"],
            "diff_pp": cmp["diff_pp"],
            "diff_low_pp": cmp["diff_low_pp"],
            "diff_high_pp": cmp["diff_high_pp"],
            "p_mcnemar": cmp["p_mcnemar"],
            "p_permutation": cmp["p_permutation"],
        }
        if ref is not None and v != ref:
            row |= _difference_in_drops(a, b, v, ref, n_boot, seed)
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in ("tasks", "pairs", "rate_a", "rate_b", "diff_pp", "diff_low_pp", "diff_high_pp"):
        if col not in table:
            table[col] = np.nan
    for fam in ("p_mcnemar", "p_permutation"):
        if fam not in table:
            table[fam] = np.nan
        ok = table[fam].notna()
        table[f"{fam}_holm"] = np.nan
        if ok.any():
            table.loc[ok, f"{fam}_holm"] = holm(table.loc[ok, fam].tolist())
    for col in ("drop_a_pp", "drop_b_pp", "did_pp", "did_low_pp", "did_high_pp"):
        if col not in table:
            table[col] = np.nan
    table["synthetic_a"], table["synthetic_b"] = synth_a, synth_b
    return RunComparison(labels, ref, table, warnings, (synth_a, synth_b))


def _identity_warnings(ia: dict[str, Any], ib: dict[str, Any], common: list[str]) -> list[str]:
    """What makes two runs less comparable than their shared labels suggest."""
    out = []
    ta, tb = int(ia.get("num_trials") or 1), int(ib.get("num_trials") or 1)
    if ta != tb:
        out.append(
            f"the runs have {ta} and {tb} trials per task: only trials 0..{min(ta, tb) - 1} are "
            "paired (the other trials are left out of every number here)"
        )
    va, vb = ia.get("variants") or {}, ib.get("variants") or {}
    changed = [v for v in common if v in va and v in vb and va[v] != vb[v]]
    if changed:
        out.append(
            f"variant(s) {', '.join(changed)} have different prompt texts in the two runs: "
            "their rows compare different customers"
        )
    for key, what in (("domain_version", "domain version"), ("domain_digest", "domain data")):
        if ia.get(key) != ib.get(key):
            out.append(f"the runs differ in {what} ({ia.get(key)} vs {ib.get(key)})")
    return out


def _difference_in_drops(
    a: pd.DataFrame, b: pd.DataFrame, v: str, ref: str, n_boot: int, seed: int
) -> dict[str, float]:
    """(B_v - B_ref) - (A_v - A_ref) from per-task success rates over the (task, trial)
    episodes all four cells have, with a percentile task-bootstrap interval (in points)."""
    frames = [df[df["variant"] == arm] for df in (a, b) for arm in (v, ref)]
    shared = set.intersection(*(set(zip(f["task_id"], f["trial"], strict=True)) for f in frames))
    cells = []
    for sub in frames:
        keep = [k in shared for k in zip(sub["task_id"], sub["trial"], strict=True)]
        cells.append(sub[keep].groupby("task_id")["success"].mean())
    m = pd.concat(cells, axis=1, join="inner").to_numpy(dtype=float)
    if len(m) == 0:
        return {}
    drops = np.column_stack([m[:, 0] - m[:, 1], m[:, 2] - m[:, 3]])  # A drop, B drop per task
    point = drops.mean(axis=0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(m), size=(n_boot, len(m)))
    boot = drops[idx].mean(axis=1)
    did = boot[:, 1] - boot[:, 0]
    return {
        "drop_a_pp": 100 * point[0],
        "drop_b_pp": 100 * point[1],
        "did_pp": 100 * (point[1] - point[0]),
        "did_low_pp": 100 * float(np.percentile(did, 2.5)),
        "did_high_pp": 100 * float(np.percentile(did, 97.5)),
    }


def write_comparison(result: RunComparison, out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(result.to_markdown(), encoding="utf-8")
    result.table.to_csv(out / "compare.csv", index=False)
    return out
